"""``harness new-plugin NAME``: a minimal installable plugin package.

The package has a ``pyproject.toml`` declaring the ``harness`` entry point,
the component (a small but real method to edit), and a test that runs the
component through negbench's contract kit (:mod:`harness.testing`).  It
passes its own tests unchanged::

    harness new-plugin soft-hard --kind sampler
    pip install -e soft-hard
    pytest soft-hard                  # the contracts
    harness validate soft-hard        # contracts + a smoke run per family
    harness bench --task scifact --model minilm-adapter --loss infonce \\
        --sampler soft-hard
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import UsageError

__all__ = ["KINDS", "new_plugin"]

KINDS = ("sampler", "loss", "model", "task")

_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "{title}: a negbench {kind} plugin"
requires-python = ">=3.11"
dependencies = ["negbench"]

# negbench finds the plugin through this entry point once the package is
# installed: `harness plugins` lists it, `harness bench --{kind} {name}` runs it.
[project.entry-points.harness]
{module} = "{module}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_SAMPLER = '''\
"""{title}: TODO describe the method and cite its paper here.

Negatives are drawn without replacement in proportion to
softmax(score / temperature) over the candidates that are not known
positives: a low temperature approaches top-k hard negatives, a high one
uniform random negatives (the "softmax sampling" family of hard-negative
mining, e.g. Robinson et al., "Contrastive Learning with Hard Negative
Samples", ICLR 2021).
"""

from __future__ import annotations

import torch

from harness import CandidateBatch, Sampler, hookimpl
from harness.sampling import log_weighted_draw

__all__ = ["{cls}"]


class {cls}(Sampler):
    """K negatives drawn in proportion to softmax(score / temperature)."""

    name = "{name}"
    families = frozenset({{"retrieval", "sts", "kge"}})
    pool = "mined"  # the model's current top-scored candidates

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.temperature = temperature

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        logits = (batch.scores / self.temperature).masked_fill(
            batch.known_positive, float("-inf")
        )
        # negbench's helper: K draws without replacement in proportion to
        # exp(logits) (Gumbel-top-k), never a -inf column, and with
        # replacement in a row that has fewer than K allowed candidates
        return log_weighted_draw(logits, num_negatives, generator)


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [{cls}]
'''

_LOSS = '''\
"""{title}: TODO describe the method and cite its paper here.

A margin ranking loss over the sampled negatives: every negative scored
within ``margin`` of the positive costs (margin - (positive - negative)),
averaged over the valid negatives of each anchor (the classic triplet /
margin-ranking objective, e.g. Weinberger & Saul, JMLR 2009).
"""

from __future__ import annotations

import torch

from harness import Loss, hookimpl

__all__ = ["{cls}"]


class {cls}(Loss):
    """Mean hinge over the valid negatives of each anchor."""

    name = "{name}"
    families = frozenset({{"retrieval", "sts", "kge"}})

    def __init__(self, margin: float = 0.2) -> None:
        super().__init__()  # a Loss is a torch.nn.Module
        if margin <= 0:
            raise ValueError("margin must be > 0")
        self.margin = margin

    def forward(
        self, positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        hinge = torch.relu(self.margin - (positive[:, None] - negative))
        hinge = torch.where(mask, hinge, torch.zeros_like(hinge))
        return hinge.sum(dim=1) / mask.sum(dim=1).clamp(min=1)


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [{cls}]
'''

_MODEL = '''\
"""{title}: TODO describe the model and cite its paper here.

A knowledge-graph embedding model: a query (head, relation) scores a tail by
the bilinear-diagonal product <e_h, w_r, e_t> (DistMult; Yang et al.,
"Embedding Entities and Relations for Learning and Inference in Knowledge
Bases", ICLR 2015).  Head queries arrive as inverse relations, so the model
only ever scores tails.  For text models subclass ``harness.TextEncoder``
and for multi-label classifiers ``harness.LabelModel`` instead (see
docs/writing-plugins.md).
"""

from __future__ import annotations

import torch

from harness import KGEModel, Model, hookimpl

__all__ = ["{cls}"]


class {cls}(KGEModel):
    """Entity and relation vectors; score = sum(e_h * w_r * e_t)."""

    name = "{name}"
    default_lr = 1e-2

    def __init__(self, *, lr: float | None = None, dim: int = 64) -> None:
        super().__init__(lr=lr)  # a Model is a torch.nn.Module
        if dim < 1:
            raise ValueError("dim must be >= 1")
        self.dim = dim

    @property
    def built(self) -> bool:
        return hasattr(self, "entities")

    def build(self, num_entities: int, num_relations: int) -> None:
        self.entities = torch.nn.Embedding(num_entities, self.dim)
        self.relations = torch.nn.Embedding(num_relations, self.dim)
        torch.nn.init.xavier_uniform_(self.entities.weight)
        torch.nn.init.xavier_uniform_(self.relations.weight)

    def score_pairs(
        self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor
    ) -> torch.Tensor:
        query = self.entities(heads) * self.relations(relations)  # (B, D)
        return torch.einsum("bd,bkd->bk", query, self.entities(tails))

    def score_shared(
        self,
        heads: torch.Tensor,
        relations: torch.Tensor,
        tails: torch.Tensor | None = None,
    ) -> torch.Tensor:
        query = self.entities(heads) * self.relations(relations)
        table = self.entities.weight if tails is None else self.entities(tails)
        return query @ table.T


@hookimpl
def harness_register_models() -> list[type[Model]]:
    return [{cls}]
'''

_TASK = '''\
"""{title}: TODO describe the dataset, its license, and cite its paper here.

A link-prediction task on your own graph: ``harness bench --task
{name}:FOLDER`` reads ``train.txt``, ``valid.txt`` and ``test.txt`` (one
tab-separated ``head relation tail`` triple per line) from FOLDER and runs
negbench's knowledge-graph protocol on it: negatives from the run's sampler,
filtered rank-based evaluation (MRR, Hits@k) over both directions.  Tasks of
the other families subclass ``negbench_plugins.tasks.retrieval.RetrievalTask``,
``.sts.STSTask`` or ``.multilabel.MultiLabelTask`` the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import Task, hookimpl
from harness.data import DataLocator, DatasetSource
from harness.types import DatasetRef
from negbench_plugins.tasks.kg_data import graph_files
from negbench_plugins.tasks.kge import KGETask

__all__ = ["{cls}"]


class {cls}(KGETask):
    """Link prediction on the graph in FOLDER (``{name}:FOLDER``)."""

    name = "{name}"
    description = "TODO: one line the leaderboard shows (entities, relations, facts)."
    accepts_argument = True
    # protocol defaults for this graph; `--param task.{name}.epochs=N` overrides
    defaults = {{"epochs": 20, "batch_size": 256, "num_negatives": 32}}

    def __init__(self, *, argument: str = "", **protocol: Any) -> None:
        super().__init__(**protocol)
        if not argument:
            raise ValueError("use {name}:FOLDER with the folder of the triples")
        self.folder = Path(argument).expanduser().resolve()
        self.source = DatasetSource(
            name=self.folder.name,
            files=graph_files,
            how_to_get="Put train.txt, valid.txt and test.txt in the folder.",
        )

    def locate(self, locator: DataLocator) -> DatasetRef:
        # fingerprints the three files: a changed graph is a different dataset
        return locator.locate_path(self.name, self.folder, self.source)


@hookimpl
def harness_register_tasks() -> list[type[Task]]:
    return [{cls}]
'''

_TEST = '''\
"""{title} through negbench's contract kit: the checks every {kind} passes."""

from harness.testing import {contract}

from {module} import {cls}


class Test{cls}({contract}):
    {attr} = {cls}
'''

_TASK_TEST = '''\
"""{title} through negbench's contract kit: the checks every task passes,
on a small generated graph written for the test."""

import random
from pathlib import Path

import pytest

from harness.testing import TaskContract

from {module} import {cls}


def write_graph(folder: Path, entities: int = 40, relations: int = 3) -> Path:
    """Relation r links entity e to e + r + 1 (a learnable toy graph)."""
    rng = random.Random(0)
    facts = [
        (f"e{{h}}", f"r{{r}}", f"e{{(h + r + 1) % entities}}")
        for h in range(entities)
        for r in range(relations)
    ]
    rng.shuffle(facts)
    splits = {{"test": facts[:10], "valid": facts[10:20], "train": facts[20:]}}
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        lines = "".join("\\t".join(fact) + "\\n" for fact in rows)
        (folder / f"{{split}}.txt").write_text(lines)
    return folder


class Test{cls}(TaskContract):
    task_cls = {cls}
    task_kwargs = {{"epochs": 2}}


@pytest.fixture(autouse=True)
def _graph_folder(tmp_path: Path) -> None:
    Test{cls}.task_argument = str(write_graph(tmp_path / "graph"))
'''

_README = """\
# {dist}

A negbench {kind} plugin.

    pip install -e .
    pytest                          # negbench's contracts for a {kind}
    harness validate {dist}         # contracts + a smoke run per task family
    harness bench --{kind} {name} ...

Edit `src/{module}/__init__.py`; keep `name` unique among negbench's {kind}s
(`harness list {plural}`).
"""


_SOURCES = {"sampler": _SAMPLER, "loss": _LOSS, "model": _MODEL, "task": _TASK}


def new_plugin(name: str, kind: str, parent: Path) -> Path:
    """Write the package ``parent/NAME`` and return its folder."""
    if kind not in KINDS:
        raise UsageError(f"--kind {kind}: choose one of {', '.join(KINDS)}")
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name):
        raise UsageError(
            f"plugin name {name!r}: use lower-case words joined by '-' "
            "(it becomes the component's registry name)"
        )
    folder = parent / name
    if folder.exists():
        raise UsageError(f"{folder} already exists; nothing was written")
    module = name.replace("-", "_")
    fields = {
        "dist": name,
        "name": name,
        "module": module,
        "kind": kind,
        "plural": "losses" if kind == "loss" else f"{kind}s",
        "title": name.replace("-", " ").capitalize(),
        "cls": "".join(part.capitalize() for part in name.split("-"))
        + kind.capitalize(),
        "contract": f"{kind.capitalize()}Contract",
        "attr": f"{kind}_cls",
    }
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"src/{module}/__init__.py": _SOURCES[kind],
        f"tests/test_{module}.py": _TASK_TEST if kind == "task" else _TEST,
    }
    for relative, template in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(template.format(**fields))
    return folder
