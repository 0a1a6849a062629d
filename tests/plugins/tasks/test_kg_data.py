"""Knowledge-graph reading, fact look-ups and Bernoulli statistics."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from harness.data import DataLocator
from harness.errors import DataError
from negbench_plugins.tasks import kg_data
from negbench_plugins.tasks.kg_data import (
    SOURCES,
    FactIndex,
    both_directions,
    read_graph,
    relation_head_probability,
    two_hop,
)


@pytest.fixture(scope="module")
def nations(data_dir: Path):
    return read_graph("nations", data_dir / "nations")


def test_nations_matches_its_source_card(nations) -> None:
    # SOURCE.md: 1,592 / 199 / 201 triples; 14 entities, 55 relations
    assert (len(nations.train), len(nations.valid), len(nations.test)) == (
        1592,
        199,
        201,
    )
    assert (nations.num_entities, nations.num_relations) == (14, 55)
    assert nations.entities == sorted(nations.entities)  # PyKEEN's id order


def test_wn18rr_reads_the_gzipped_train_split(data_dir: Path) -> None:
    graph = read_graph("wn18rr", data_dir / "wn18rr")
    assert (len(graph.train), len(graph.valid), len(graph.test)) == (
        86835,
        3034,
        3134,
    )
    assert graph.num_relations == 11


@pytest.mark.parametrize("dense", [True, False], ids=["bitmap", "sorted-keys"])
def test_fact_index_agrees_with_python_sets(nations, dense, monkeypatch) -> None:
    if not dense:  # the binary-search path that large graphs take
        monkeypatch.setattr(kg_data, "DENSE_KEY_SPACE", 0)
    facts, r = FactIndex(nations), nations.num_relations
    assert (facts.train.bitmap is not None) == dense
    train = {tuple(row) for row in both_directions(nations.train, r).tolist()}
    held = {
        tuple(row)
        for row in both_directions(torch.cat([nations.valid, nations.test]), r).tolist()
    }
    gen = torch.Generator().manual_seed(0)
    heads = torch.randint(14, (50,), generator=gen)
    rels = torch.randint(2 * r, (50,), generator=gen)
    cands = torch.randint(14, (50, 14), generator=gen)
    queries = facts.query(heads, rels)
    got_train = facts.contains(facts.train, queries, cands)
    got_held = facts.contains(facts.heldout, queries, cands)
    for i in range(50):
        for j in range(14):
            key = (int(heads[i]), int(rels[i]), int(cands[i, j]))
            assert bool(got_train[i, j]) == (key in train)
            assert bool(got_held[i, j]) == (key in held)
    rows, entities = facts.answers(facts.all, queries)
    for i in range(50):
        expected = {
            t
            for (h, rr, t) in train | held
            if h == int(heads[i]) and rr == int(rels[i])
        }
        assert set(entities[rows == i].tolist()) == expected


def test_bernoulli_probability_matches_a_naive_count(nations) -> None:
    probability = relation_head_probability(nations)
    train = nations.train.tolist()
    for relation in (0, 7, 30):
        rows = [t for t in train if t[1] == relation]
        tph = len(rows) / len({h for h, _, _ in rows})
        hpt = len(rows) / len({t for _, _, t in rows})
        assert probability[relation] == pytest.approx(tph / (tph + hpt))


def test_two_hop_neighbourhood(nations) -> None:
    adjacency = two_hop(nations)
    dense = adjacency.to_dense() > 0
    for h, _, t in nations.train.tolist()[:20]:
        assert dense[h, t] and dense[t, h] and dense[h, h]


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_text("a\tr\tb\n")
    (tmp_path / "valid.txt").write_text("a\tr\tb\nbroken line\n")
    with pytest.raises(DataError, match=r"valid.txt:2: expected"):
        read_graph("bad", tmp_path)


def test_gzip_and_plain_splits_read_alike(tmp_path: Path) -> None:
    for split in ("valid", "test"):
        (tmp_path / f"{split}.txt").write_text("a\tr\tb\n")
    with gzip.open(tmp_path / "train.txt.gz", "wt") as handle:
        handle.write("a\tr\tb\nb\tr\tc\n")
    graph = read_graph("tiny", tmp_path)
    assert graph.entities == ["a", "b", "c"] and len(graph.train) == 2


def test_pykeen_copy_is_used_when_no_data_dir_has_it(tmp_path: Path) -> None:
    locator = DataLocator(data_dirs=[tmp_path], cache_dir=tmp_path / "c", offline=True)
    ref = locator.locate(SOURCES["kinship"])
    assert ref.origin == "package" and "pykeen" in ref.path
    graph = read_graph("kinship", Path(ref.path))
    assert (graph.num_entities, len(graph.train)) == (104, 8544)


def test_missing_graph_offline_is_one_clear_line(tmp_path: Path) -> None:
    locator = DataLocator(data_dirs=[tmp_path], cache_dir=tmp_path / "c", offline=True)
    with pytest.raises(Exception, match="dataset 'codex-s' not found") as info:
        locator.locate(SOURCES["codex-s"])
    assert "\n" not in str(info.value)
