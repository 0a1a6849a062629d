"""Knowledge graphs: reading triple files, indexing them, fast fact look-ups.

Every dataset is three tab-separated files ``head<TAB>relation<TAB>tail``
(``train``, ``valid``, ``test``, each ``.txt`` or ``.txt.gz``).  Entity and
relation ids are assigned in sorted label order, the way PyKEEN's
``TriplesFactory`` does, so ids (and therefore scores) line up with PyKEEN's
when its evaluator is used as the reference (on every graph whose valid and
test splits add no label to train's: all but WN18RR and FB15k-237, below).

Held-out triples whose entity or relation never occurs in ``train``:
WN18RR has 210 in valid and 210 in test, FB15k-237 9 and 28, the other
graphs none.  The references disagree on them.  LibKGE (and the ConvE and
RotatE code behind the published WN18RR/FB15k-237 numbers) indexes the
entities of all three splits and evaluates on the full test file; PyKEEN
indexes ``train`` only and drops such triples with a warning ("In total N
from M triples were filtered out").  :func:`read_graph` keeps them by
default (``unseen="keep"``, LibKGE; 40,943 WN18RR entities, as its data card
says) and counts them in :attr:`KnowledgeGraph.unseen`; ``"drop"`` is
PyKEEN's filter and ``"error"`` refuses the first one, naming ``file:line``.

Queries are tail predictions ``(entity, relation')`` where ``relation'`` is
``r`` for the original direction and ``r + R`` for the inverse one (head
prediction).  A fact of a query is the integer key
``query * E + answer`` with ``query = entity * 2R + relation'``, so "is this
candidate a known answer" is one ``searchsorted`` over a sorted key array
instead of a Python set per query.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from harness.data import DatasetSource
from harness.errors import DataError

from .datafiles import numbered_lines, require_file

__all__ = [
    "SOURCES",
    "FactIndex",
    "FactSet",
    "KnowledgeGraph",
    "read_graph",
    "relation_head_probability",
]

SPLITS = ("train", "valid", "test")

#: what :func:`read_graph` does with a held-out triple unseen in train
Unseen = Literal["keep", "drop", "error"]

logger = logging.getLogger(__name__)

Triple = tuple[str, str, str]

_CONVE = "https://github.com/TimDettmers/ConvE/raw/master/{archive}"
_HOW = (
    "Put the {name} folder (train/valid/test .txt or .txt.gz, tab-separated "
    "head/relation/tail) into a data dir (--data-dir or HARNESS_DATA_DIR)."
)


def split_file(folder: Path, split: str) -> Path | None:
    for name in (f"{split}.txt", f"{split}.txt.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def graph_files(folder: Path) -> list[Path] | None:
    files = [split_file(folder, split) for split in SPLITS]
    return None if any(f is None for f in files) else [f for f in files if f]


def _pykeen_folder(name: str) -> Path | None:
    """The copy inside the installed ``pykeen`` wheel, without importing it."""
    spec = importlib.util.find_spec("pykeen")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / name
    return folder if graph_files(folder) else None


def _source(
    name: str, archive: str | None = None, pykeen: str | None = None
) -> DatasetSource:
    return DatasetSource(
        name=name,
        files=graph_files,
        url=_CONVE.format(archive=archive) if archive else None,
        how_to_get=_HOW.format(name=name),
        embedded=(lambda: _pykeen_folder(pykeen)) if pykeen else None,
        check=lambda folder: read_graph(name, folder),
    )


#: the knowledge graphs negbench knows by name (ConvE releases and CoDEx)
SOURCES: dict[str, DatasetSource] = {
    "wn18rr": _source("wn18rr", "WN18RR.tar.gz"),
    "fb15k-237": _source("fb15k-237", "FB15k-237.tar.gz"),
    "codex-s": _source("codex-s"),
    "codex-m": _source("codex-m"),
    "nations": _source("nations", "nations.tar.gz", pykeen="nations"),
    "umls": _source("umls", "umls.tar.gz", pykeen="umls"),
    "kinship": _source("kinship", "kinship.tar.gz", pykeen="kinships"),
}


def _numbered_triples(path: Path) -> Iterator[tuple[int, Triple]]:
    for number, line in numbered_lines(path):
        parts = line.split("\t")
        if len(parts) == 3:
            head, relation, tail = parts[0].strip(), parts[1].strip(), parts[2].strip()
            if head and relation and tail:
                yield number, (head, relation, tail)
                continue
        if line.strip():
            raise DataError(
                f"{path}:{number}: expected 'head<TAB>relation<TAB>tail', "
                f"got {line[:80]!r}"
            )


def read_triples(path: Path) -> list[Triple]:
    """Labelled triples of one file; a malformed line is a one-line DataError."""
    triples = [triple for _, triple in _numbered_triples(path)]
    if not triples:
        raise DataError(f"{path}: no triples")
    return triples


@dataclass(slots=True)
class KnowledgeGraph:
    """A graph's splits as id tensors. shape of each split: (N, 3) long (h, r, t)."""

    name: str
    entities: list[str]
    relations: list[str]
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    #: per held-out split, the triples with an entity or relation that is not
    #: in train (kept or dropped as ``read_graph(unseen=...)`` said)
    unseen: dict[str, int] = field(default_factory=dict)
    facts: FactIndex = field(init=False)

    def __post_init__(self) -> None:
        self.facts = FactIndex(self)

    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def num_relations(self) -> int:
        """Original relations, without the inverses."""
        return len(self.relations)


def _heldout(
    path: Path,
    train_path: Path,
    known: tuple[set[str], set[str]],
    unseen: Unseen,
) -> tuple[list[Triple], int]:
    """A valid/test split's triples, and how many have a label unseen in train."""
    entities, relations = known
    triples: list[Triple] = []
    count = 0
    for number, (head, relation, tail) in _numbered_triples(path):
        if head in entities and tail in entities and relation in relations:
            triples.append((head, relation, tail))
            continue
        count += 1
        if unseen == "error":
            if relation not in relations:
                what = f"relation {relation!r}"
            else:
                what = f"entity {head if head not in entities else tail!r}"
            raise DataError(
                f"{path}:{number}: {what} does not occur in {train_path.name}"
            )
        if unseen == "keep":
            triples.append((head, relation, tail))
    if count and unseen == "drop":
        logger.warning(
            "%s: dropped %d of %d triples whose entity or relation is not in %s",
            path,
            count,
            count + len(triples),
            train_path.name,
        )
    if not triples:
        dropped = f" after dropping {count} unseen in train" if count else ""
        raise DataError(f"{path}: no triples{dropped}")
    return triples, count


def read_graph(name: str, folder: Path, *, unseen: Unseen = "keep") -> KnowledgeGraph:
    """Read the three splits of ``folder`` and index them.

    :param unseen: a valid/test triple whose entity or relation is not in
        train is kept (LibKGE, the default), dropped (PyKEEN) or an error.
    """
    paths = {
        split: require_file(folder, f"{split}.txt", f"{split}.txt.gz")
        for split in SPLITS
    }
    labelled = {"train": read_triples(paths["train"])}
    known = (
        {e for h, _, t in labelled["train"] for e in (h, t)},
        {r for _, r, _ in labelled["train"]},
    )
    counts = {}
    for split in SPLITS[1:]:
        labelled[split], counts[split] = _heldout(
            paths[split], paths["train"], known, unseen
        )
    entities = sorted({e for t in labelled.values() for h, _, x in t for e in (h, x)})
    relations = sorted({r for t in labelled.values() for _, r, _ in t})
    entity_id = {e: i for i, e in enumerate(entities)}
    relation_id = {r: i for i, r in enumerate(relations)}

    def ids(triples: list[Triple]) -> torch.Tensor:
        return torch.tensor(
            [(entity_id[h], relation_id[r], entity_id[t]) for h, r, t in triples],
            dtype=torch.long,
        )

    return KnowledgeGraph(
        name=name,
        entities=entities,
        relations=relations,
        train=ids(labelled["train"]),
        valid=ids(labelled["valid"]),
        test=ids(labelled["test"]),
        unseen=counts,
    )


def both_directions(triples: torch.Tensor, num_relations: int) -> torch.Tensor:
    """(query entity, relation', answer) rows: tail queries then head queries.

    shape: (N, 3) -> (2N, 3); the head query of (h, r, t) is (t, r + R, h).
    """
    inverse = torch.stack(
        [triples[:, 2], triples[:, 1] + num_relations, triples[:, 0]], dim=1
    )
    return torch.cat([triples, inverse])


#: key spaces up to this size also get a dense bitmap (1 byte per key): a
#: gather instead of a binary search, 10x cheaper per training step on UMLS
#: (3.4M keys); FB15k-237's space (1e11) keeps the sorted keys only
DENSE_KEY_SPACE = 1 << 24


class FactSet:
    """A set of (query, entity) keys: sorted, plus a bitmap for small spaces."""

    def __init__(self, keys: torch.Tensor, space: int) -> None:
        self.keys: torch.Tensor = torch.unique(keys)
        self.bitmap: torch.Tensor | None = None
        if space <= DENSE_KEY_SPACE:
            self.bitmap = torch.zeros(space, dtype=torch.bool)
            self.bitmap[self.keys] = True

    def contains_keys(self, wanted: torch.Tensor) -> torch.Tensor:
        # index_select over the flat keys: a third of the time of advanced
        # indexing (``bitmap[wanted]``) on the CPU, the same values
        flat = wanted.reshape(-1)
        if self.bitmap is not None:
            return self.bitmap.index_select(0, flat).view(wanted.shape)
        keys = self.keys
        if len(keys) == 0:
            return torch.zeros(wanted.shape, dtype=torch.bool)
        position = torch.searchsorted(keys, flat).clamp_(max=len(keys) - 1)
        return (keys.index_select(0, position) == flat).view(wanted.shape)


class FactIndex:
    """The graph's facts as key sets, for membership tests and filtered evaluation.

    A fact (h, r, t) is the key ``query(h, r) * E + t`` (inverse relations
    ``r + R`` for the head direction).
    """

    def __init__(self, graph: KnowledgeGraph) -> None:
        self.num_entities = graph.num_entities
        self.num_queries_relations = 2 * graph.num_relations
        r = graph.num_relations
        space = self.num_entities * self.num_queries_relations * self.num_entities
        train = self._keys(both_directions(graph.train, r))
        heldout = self._keys(both_directions(torch.cat([graph.valid, graph.test]), r))
        self.train = FactSet(train, space)
        self.heldout = FactSet(heldout, space)
        self.all = FactSet(torch.cat([train, heldout]), space)

    def query(self, entities: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        return entities * self.num_queries_relations + relations

    def _keys(self, rows: torch.Tensor) -> torch.Tensor:
        return self.query(rows[:, 0], rows[:, 1]) * self.num_entities + rows[:, 2]

    def contains(
        self, facts: FactSet, queries: torch.Tensor, candidates: torch.Tensor
    ) -> torch.Tensor:
        """shape: (B,), (B, C) -> (B, C) bool: is (query, candidate) in ``facts``."""
        wanted = queries[:, None] * self.num_entities + candidates
        return facts.contains_keys(wanted)

    def answers(
        self, facts: FactSet, queries: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every known answer of each query, as (row, entity) index pairs."""
        keys = facts.keys
        low = torch.searchsorted(keys, queries * self.num_entities)
        high = torch.searchsorted(keys, (queries + 1) * self.num_entities)
        counts = high - low
        rows = torch.repeat_interleave(torch.arange(len(queries)), counts)
        starts = torch.repeat_interleave(low - torch.cumsum(counts, 0) + counts, counts)
        flat = starts + torch.arange(int(counts.sum()))
        return rows, keys[flat] % self.num_entities


def relation_head_probability(graph: KnowledgeGraph) -> torch.Tensor:
    """Bernoulli corruption: P(corrupt the head) per relation. shape: (R,).

    ``tph / (tph + hpt)`` with tph the mean number of tails per (head,
    relation) and hpt the mean number of heads per (relation, tail) in the
    training set (Wang et al., AAAI 2014; OpenKE ``Base.cpp``).
    """
    train, r = graph.train, graph.num_relations
    probability = torch.full((r,), 0.5)
    for relation in range(r):
        rows = train[train[:, 1] == relation]
        if len(rows) == 0:
            continue
        tph = len(rows) / len(torch.unique(rows[:, 0]))
        hpt = len(rows) / len(torch.unique(rows[:, 2]))
        probability[relation] = tph / (tph + hpt)
    return probability


def two_hop(graph: KnowledgeGraph) -> torch.Tensor:
    """Sparse undirected adjacency of the training graph, self-loops added.

    shape: (E, E) sparse COO float; ``(A @ A)[e] > 0`` is the 2-hop
    neighbourhood of ``e`` (HaSa's structural false-negative proxies).
    """
    e = graph.num_entities
    heads, tails = graph.train[:, 0], graph.train[:, 2]
    loops = torch.arange(e)
    rows = torch.cat([heads, tails, loops])
    cols = torch.cat([tails, heads, loops])
    keys = torch.unique(rows * e + cols)
    indices = torch.stack([keys // e, keys % e])
    return torch.sparse_coo_tensor(
        indices, torch.ones(len(keys)), (e, e), check_invariants=False
    ).coalesce()
