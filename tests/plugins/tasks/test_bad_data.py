"""Bad data in every reader: one line that names the file (and line) and says why.

Each case builds a tiny broken dataset in ``tmp_path`` and calls the reader
directly; the last test runs ``harness bench`` on one of them end to end.
"""

from __future__ import annotations

import gzip
import json
import logging
import sqlite3
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TOY, write_tiny_beir
from conftest import TOY_ARFF_HEADER as HEADER
from conftest import TOY_LABEL_XML as XML

from harness.errors import DataError
from negbench_plugins.tasks.beir import read_beir
from negbench_plugins.tasks.kg_data import read_graph
from negbench_plugins.tasks.multilabel_data import (
    read_arff,
    read_goemotions,
    read_mulan,
    read_reuters,
)
from negbench_plugins.tasks.sts_data import read_sts_year, read_stsb


def error_of(read: Callable[[], object]) -> str:
    with pytest.raises(DataError) as caught:
        read()
    message = str(caught.value)
    assert "\n" not in message
    return message


def truncated_gzip(path: Path, text: str, keep: int = 300) -> int:
    """Write the first ``keep`` bytes of ``text`` gzipped; return the broken line."""
    blob = gzip.compress(text.encode(), mtime=0)[:keep]
    path.write_bytes(blob)
    readable = zlib.decompressobj(wbits=31).decompress(blob)
    assert len(readable) < len(text.encode()), "not truncated: keep fewer bytes"
    return readable.count(b"\n") + 1


def varied_lines(template: str, count: int = 2000) -> str:
    """Lines that compress badly, so a cut gzip stream really is cut short."""
    return "".join(template.format(i=i, j=i * 7919 % 2003) for i in range(count))


# -- BEIR ------------------------------------------------------------------------------


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    return write_tiny_beir(tmp_path / "t")


def test_beir_missing_file_names_the_path(beir: Path) -> None:
    (beir / "qrels" / "test.tsv").unlink()
    assert error_of(lambda: read_beir(beir)) == (
        f"{beir}/qrels/test.tsv: file not found"
    )
    (beir / "corpus.jsonl").unlink()
    assert error_of(lambda: read_beir(beir)) == (
        f"{beir}/corpus.jsonl: file not found (nor corpus.jsonl.gz)"
    )


def test_beir_truncated_gzip_names_the_line(beir: Path) -> None:
    text = (beir / "corpus.jsonl").read_text()
    (beir / "corpus.jsonl").unlink()
    gz = beir / "corpus.jsonl.gz"
    line = truncated_gzip(gz, text)
    assert error_of(lambda: read_beir(beir)) == (
        f"{gz}:{line}: unreadable: the gzip data ends early (truncated file?)"
    )
    gz.write_bytes(text.encode())  # named .gz, but plain text
    assert error_of(lambda: read_beir(beir)) == (
        f"{gz}:1: unreadable: corrupt gzip data (Not a gzipped file (b'{{\"'))"
    )


def test_beir_garbled_json_line(beir: Path) -> None:
    corpus = beir / "corpus.jsonl"
    lines = corpus.read_text().splitlines(keepends=True)
    lines[4] = lines[4][:30] + "\n"  # cut inside the text field
    corpus.write_text("".join(lines))
    assert error_of(lambda: read_beir(beir)) == (
        f"{corpus}:5: invalid JSON (Unterminated string starting at column 24)"
    )
    lines[4] = '{"_id": "d4", "text": "a\tb"}\n'  # a raw tab inside a string
    corpus.write_text("".join(lines))
    assert error_of(lambda: read_beir(beir)) == (
        f"{corpus}:5: invalid JSON (Invalid control character at column 25)"
    )
    lines[4] = '["d4", "text"]\n'
    corpus.write_text("".join(lines))
    assert error_of(lambda: read_beir(beir)) == (
        f"{corpus}:5: expected an object with an '_id' field"
    )


def test_beir_bytes_that_are_not_utf8(beir: Path) -> None:
    queries = beir / "queries.jsonl"
    lines = queries.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"doc", b"d\xffc")
    queries.write_bytes(b"\n".join(lines))
    assert error_of(lambda: read_beir(beir)) == f"{queries}:3: not valid UTF-8"


def test_beir_qrels_ids_must_be_known(beir: Path) -> None:
    qrels = beir / "qrels" / "test.tsv"
    good = qrels.read_text()
    qrels.write_text(good + "q41\td999\t1\n")
    assert error_of(lambda: read_beir(beir)) == (
        f"{qrels}:22: corpus id 'd999' is not in the corpus file"
    )
    qrels.write_text(good + "q999\td1\t1\n")
    assert error_of(lambda: read_beir(beir)) == (
        f"{qrels}:22: query id 'q999' is not in the queries file"
    )


@pytest.mark.parametrize("score", ["abc", "1.5", "inf", "nan", ""])
def test_beir_qrels_score_must_be_an_integer_grade(beir: Path, score: str) -> None:
    # "inf" used to escape as an OverflowError traceback, "1.5" was read as 1
    qrels = beir / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text() + f"q41\td1\t{score}\n")
    assert error_of(lambda: read_beir(beir)) == (
        f"{qrels}:22: score {score!r} is not an integer relevance grade"
    )


def test_beir_qrels_carriage_return_inside_a_line(beir: Path) -> None:
    # csv.Error escaped as a traceback
    qrels = beir / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text() + "q41\td1\r\t1\n")
    assert error_of(lambda: read_beir(beir)) == (
        f"{qrels}:22: a carriage return inside the line"
    )


def test_beir_qrels_score_may_be_written_as_a_whole_float(beir: Path) -> None:
    qrels = beir / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text() + "q41\td1\t2.0\n")
    assert read_beir(beir).qrels["test"]["q41"]["d1"] == 2


def test_beir_empty_files(beir: Path) -> None:
    qrels = beir / "qrels" / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n")
    assert error_of(lambda: read_beir(beir)) == f"{qrels}: no relevance judgements"
    (beir / "queries.jsonl").write_text("\n")
    assert error_of(lambda: read_beir(beir)) == f"{beir}/queries.jsonl: no queries"
    (beir / "corpus.jsonl").write_text("")
    assert error_of(lambda: read_beir(beir)) == f"{beir}/corpus.jsonl: no documents"


def test_beir_duplicate_query_id(beir: Path) -> None:
    queries = beir / "queries.jsonl"
    queries.write_text(queries.read_text() + json.dumps({"_id": "q3", "text": "x"}))
    assert error_of(lambda: read_beir(beir)) == (
        f"{queries}:61: duplicate query id 'q3'"
    )


# -- knowledge graphs ------------------------------------------------------------------


def graph(folder: Path, test: str = "c\tr\ta\n", valid: str = "a\tr\tc\n") -> Path:
    folder.mkdir()
    (folder / "train.txt").write_text("a\tr\tb\nb\tr\tc\n")
    (folder / "valid.txt").write_text(valid)
    (folder / "test.txt").write_text(test)
    return folder


def test_kg_missing_split(tmp_path: Path) -> None:
    folder = graph(tmp_path / "g")
    (folder / "test.txt").unlink()
    assert error_of(lambda: read_graph("g", folder)) == (
        f"{folder}/test.txt: file not found (nor test.txt.gz)"
    )


def test_kg_truncated_gzip(tmp_path: Path) -> None:
    folder = graph(tmp_path / "g")
    (folder / "train.txt").unlink()
    gz = folder / "train.txt.gz"
    line = truncated_gzip(gz, varied_lines("e{i}\tr\te{j}\n"))
    assert error_of(lambda: read_graph("g", folder)) == (
        f"{gz}:{line}: unreadable: the gzip data ends early (truncated file?)"
    )


def test_kg_unseen_labels_are_kept_and_counted_by_default(tmp_path: Path) -> None:
    # LibKGE's convention (and the published WN18RR/FB15k-237 protocol)
    folder = graph(tmp_path / "g", test="c\tr\ta\nzed\tr\ta\nc\tr2\ta\n")
    kept = read_graph("g", folder)
    assert kept.entities == ["a", "b", "c", "zed"] and kept.relations == ["r", "r2"]
    assert len(kept.test) == 3 and kept.unseen == {"valid": 0, "test": 2}


def test_kg_unseen_drop_is_pykeens_filter(tmp_path: Path, caplog) -> None:
    folder = graph(tmp_path / "g", test="c\tr\ta\nzed\tr\ta\nc\tr2\ta\n")
    with caplog.at_level(logging.WARNING):
        dropped = read_graph("g", folder, unseen="drop")
    assert dropped.entities == ["a", "b", "c"] and dropped.relations == ["r"]
    assert dropped.test.tolist() == [[2, 0, 0]]
    assert dropped.unseen == {"valid": 0, "test": 2}
    assert caplog.messages == [
        f"{folder}/test.txt: dropped 2 of 3 triples whose entity or relation "
        "is not in train.txt"
    ]
    only_unseen = graph(tmp_path / "h", valid="zed\tr\ta\n")
    assert error_of(lambda: read_graph("h", only_unseen, unseen="drop")) == (
        f"{only_unseen}/valid.txt: no triples after dropping 1 unseen in train"
    )


def test_kg_unseen_error_names_file_line_and_label(tmp_path: Path) -> None:
    folder = graph(tmp_path / "g", test="c\tr\ta\n\nc\tr\tzed\n")
    assert error_of(lambda: read_graph("g", folder, unseen="error")) == (
        f"{folder}/test.txt:3: entity 'zed' does not occur in train.txt"
    )
    (folder / "test.txt").write_text("c\tr2\tzed\n")
    assert error_of(lambda: read_graph("g", folder, unseen="error")) == (
        f"{folder}/test.txt:1: relation 'r2' does not occur in train.txt"
    )


def test_kg_empty_split_and_bad_bytes(tmp_path: Path) -> None:
    folder = graph(tmp_path / "g", valid="\n\n")
    assert error_of(lambda: read_graph("g", folder)) == (
        f"{folder}/valid.txt: no triples"
    )
    (folder / "valid.txt").write_bytes(b"a\tr\tc\nc\tr\t\xe9\n")
    assert error_of(lambda: read_graph("g", folder)) == (
        f"{folder}/valid.txt:2: not valid UTF-8"
    )


# -- MULAN ARFF + XML ------------------------------------------------------------------


def mulan(
    folder: Path,
    train: str = HEADER + "1,0,2,1\n",
    test: str = HEADER + "3,1,4,0\n",
    xml: str = XML,
) -> Path:
    folder.mkdir()
    (folder / "toy-train.arff").write_text(train)
    (folder / "toy-test.arff").write_text(test)
    (folder / "toy.xml").write_text(xml)
    return folder


def test_mulan_missing_file(tmp_path: Path) -> None:
    folder = mulan(tmp_path / "m")
    (folder / "toy.xml").unlink()
    assert error_of(lambda: read_mulan("toy", folder)) == (
        f"{folder}/toy.xml: file not found (nor toy.xml.gz)"
    )


@pytest.mark.parametrize(
    ("train", "problem"),
    [
        (HEADER.replace("@data\n", "") + "1,0,2,1\n", ": no @data line"),
        (HEADER.replace("f2 numeric", "f2"), ":4: Bad @ATTRIBUTE format"),
        (HEADER.replace("f2 numeric", "f2 numbers"), ":4: Bad @ATTRIBUTE type"),
        (
            HEADER.replace("f2 numeric", "f1 numeric") + "1,0,2,1\n",
            ":4: Bad @ATTRIBUTE name f1, this name is already in use in line 2.",
        ),
        (HEADER.replace("@relation toy\n", ""), ":1: Invalid layout of the ARFF file"),
        (HEADER + "% no rows\n\n", ":6: no data rows after @data"),
        (HEADER + "1,0,2,1\n1,0,2\n", ":8: Bad @DATA instance format: 1,0,2"),
        # a '%' in the quoted value broke liac-arff's own message: a TypeError
        (HEADER + "1,0,2,1\n1,0%,2\n", ":8: Bad @DATA instance format: 1,0%,2"),
        # liac-arff fails to unpack a bare '@attribute': a ValueError
        (
            HEADER.replace("f2 numeric", ""),
            ":4: not a valid ARFF line (ValueError: not enough values to unpack",
        ),
        (HEADER + "1,0,2,1\n1,7,2,1\n", ":8: Data value 7 not found in nominal"),
        (
            HEADER + "1,0,2,1\n% a comment\n?,0,2,1\n",
            ":9: attribute 'f1' is missing ('?'); MULAN data has no gaps",
        ),
        (
            HEADER + "{0 1,1 1}\n{0 ?}\n",
            ":8: attribute 'f1' is missing ('?'); MULAN data has no gaps",
        ),
        (
            HEADER + "{0 1,1 1}\n1,0,2,1\n",
            ":8: expected a sparse row '{index value, ...}' like the first one",
        ),
    ],
    ids=[
        "no-data",
        "attribute-format",
        "attribute-type",
        "duplicate-attribute",
        "no-relation",
        "no-rows",
        "short-row",
        "percent-in-row",
        "bare-attribute",
        "nominal-value",
        "missing-value",
        "missing-sparse-value",
        "dense-row-in-sparse-file",
    ],
)
def test_arff_errors_name_file_and_line(tmp_path: Path, train: str, problem: str):
    folder = mulan(tmp_path / "m", train=train)
    message = error_of(lambda: read_mulan("toy", folder))
    assert message.startswith(f"{folder}/toy-train.arff{problem}")


def test_arff_header_must_match_the_xml_labels(tmp_path: Path) -> None:
    folder = mulan(tmp_path / "m", xml=XML.replace('"lab2"', '"lab3"'))
    assert error_of(lambda: read_mulan("toy", folder)) == (
        f"{folder}/toy-train.arff: no @attribute 'lab3', which toy.xml:4 names "
        "as a label"
    )
    only_labels = "@relation t\n@attribute lab1 {0,1}\n@attribute lab2 {0,1}\n@data\n"
    folder = mulan(tmp_path / "n", only_labels + "0,1\n", only_labels + "1,0\n")
    assert error_of(lambda: read_mulan("toy", folder)) == (
        f"{folder}/toy-train.arff: all 2 attributes are labels in toy.xml; "
        "no feature attributes"
    )
    numeric = HEADER.replace("lab2 {0,1}", "lab2 numeric")
    folder = mulan(tmp_path / "o", train=numeric + "1,0,2,1\n1,1,2,0.5\n")
    assert error_of(lambda: read_mulan("toy", folder)) == (
        f"{folder}/toy-train.arff:8: label attribute 'lab2' is 0.5; labels must be 0/1"
    )


def test_a_test_split_without_any_label_is_an_error(tmp_path: Path) -> None:
    # every ranking metric would be NaN: the runs failed after training
    folder = mulan(tmp_path / "m", test=HEADER + "3,0,4,0\n5,0,6,0\n")
    assert error_of(lambda: read_mulan("toy", folder)) == (
        f"{folder}/toy-test.arff: no test example has any of the 2 labels; "
        "the metrics are undefined"
    )


def test_a_max_test_head_without_any_label_is_an_error(tmp_path: Path) -> None:
    # the reader checks the whole test split; max_test keeps only its head
    from harness.testing import make_context
    from harness.types import DatasetRef
    from negbench_plugins.tasks.multilabel import TASKS

    names = {"lab1": "amazed-suprised", "lab2": "happy-pleased"}  # emotions'

    def renamed(text: str) -> str:
        for toy, real in names.items():
            text = text.replace(toy, real)
        return text

    folder = mulan(
        tmp_path / "mulan-emotions",
        train=renamed(HEADER) + "1,0,2,1\n",
        test=renamed(HEADER) + "3,0,4,0\n5,1,6,0\n",  # the first has no label
        xml=renamed(XML),
    )
    for name in ("toy-train.arff", "toy-test.arff", "toy.xml"):
        (folder / name).rename(folder / name.replace("toy", "emotions"))
    ref = DatasetRef(name="emotions", path=str(folder), sha256="0")
    emotions = {t.name: t for t in TASKS}["emotions"]
    with pytest.raises(DataError) as caught:
        emotions(max_test=1).load(ref, make_context())
    assert str(caught.value) == (
        f"{folder}: none of the first 1 test examples (max_test) has a label; "
        "the metrics are undefined"
    )
    assert emotions(max_test=2).load(ref, make_context()).test_labels.any()


def test_arff_train_and_test_headers_must_agree(tmp_path: Path) -> None:
    test = HEADER.replace("f2 numeric", "f3 numeric") + "3,1,4,0\n"
    folder = mulan(tmp_path / "m", test=test)
    assert error_of(lambda: read_mulan("toy", folder)) == (
        f"{folder}/toy-test.arff: attribute 3 is 'f3', 'f2' in the train file"
    )


def test_mulan_xml_errors(tmp_path: Path) -> None:
    folder = mulan(tmp_path / "m", xml=XML.replace("</labels>", "</label>"))
    assert error_of(lambda: read_mulan("toy", folder)) == (
        f"{folder}/toy.xml:5: not a MULAN label XML (mismatched tag)"
    )
    # expat raised LookupError, not ExpatError, for an unknown encoding
    (folder / "toy.xml").write_text(XML.replace('"utf-8"', '"utf-8-1"'))
    assert error_of(lambda: read_mulan("toy", folder)) == (
        f"{folder}/toy.xml:1: not a MULAN label XML (unknown encoding: utf-8-1)"
    )
    twice = XML.replace('"lab2"', '"lab1"')
    (folder / "toy.xml").write_text(twice)
    assert error_of(lambda: read_mulan("toy", folder)) == (
        f"{folder}/toy.xml:4: label 'lab1' is listed twice (first on line 3)"
    )


def test_arff_truncated_gzip(tmp_path: Path) -> None:
    folder = mulan(tmp_path / "m")
    (folder / "toy-test.arff").unlink()
    gz = folder / "toy-test.arff.gz"
    line = truncated_gzip(gz, HEADER + varied_lines("{j},1,{i},0\n", 500))
    assert error_of(lambda: read_mulan("toy", folder)) == (
        f"{gz}:{line}: unreadable: the gzip data ends early (truncated file?)"
    )


def test_sparse_rows_without_values_are_rows(tmp_path: Path) -> None:
    # liac-arff's coordinates have no entry for '{}': the row count is the file's
    path = tmp_path / "s.arff"
    path.write_text(HEADER + "{0 1,1 1}\n{}\n{}\n")
    _, matrix = read_arff(path)
    assert matrix.tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    # no row with a value: liac-arff's column list is empty (was an IndexError)
    path.write_text(HEADER + "{}\n{}\n")
    assert read_arff(path)[1].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0]]


# -- text sets and STS -----------------------------------------------------------------


def test_text_sets_with_an_empty_split(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("a\nb\n")
    (tmp_path / "train.tsv").write_text("hi\t0\tid1\n")
    (tmp_path / "test.tsv").write_text("")
    assert error_of(lambda: read_goemotions(tmp_path)) == (
        f"{tmp_path}/test.tsv: no examples"
    )
    (tmp_path / "labels.txt").write_text("\n")
    assert error_of(lambda: read_goemotions(tmp_path)) == (
        f"{tmp_path}/labels.txt: no labels"
    )
    (tmp_path / "r90_categories.txt").write_text("acq\n")
    document = {"modapte": "train", "topics": ["acq"], "title": "t", "body": "b"}
    documents = tmp_path / "reuters21578_modapte.jsonl"
    documents.write_text(json.dumps(document) + "\n")
    assert error_of(lambda: read_reuters(tmp_path)) == (
        f"{documents}: no test documents with one of the 1 categories"
    )


def test_sts_missing_and_truncated_files(tmp_path: Path) -> None:
    assert error_of(lambda: read_stsb(tmp_path / "train.tsv")) == (
        f"{tmp_path}/train.tsv: file not found"
    )
    gz = tmp_path / "all.tsv.gz"
    header = "year\tsubset\tline\tscore\tsentence1\tsentence2\n"
    rows = varied_lines("STS12\tMSRpar\t{i}\t4.4\tA b{j}.\tC d.\n", 500)
    line = truncated_gzip(gz, header + rows)
    assert error_of(lambda: read_sts_year(gz, 12)) == (
        f"{gz}:{line}: unreadable: the gzip data ends early (truncated file?)"
    )


# -- end to end ------------------------------------------------------------------------


def test_bench_on_bad_data_is_one_line_and_stores_nothing(
    run_harness, tiny_beir: Path, tmp_path: Path
) -> None:
    corpus = tiny_beir / "corpus.jsonl"
    lines = corpus.read_text().splitlines(keepends=True)
    lines[4] = lines[4][:30] + "\n"
    corpus.write_text("".join(lines))
    done = run_harness(
        "bench",
        *TOY,
        "--task",
        f"beir:{tiny_beir}",
        "--model",
        "toy-bow-frozen",
        "--jobs",
        "0",
    )
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f"ERROR: {corpus}:5: invalid JSON (Unterminated string starting at column 24)"
    ]
    assert done.returncode == 4
    store = tmp_path / "harness-results" / "results.db"
    if store.exists():
        with sqlite3.connect(store) as conn:
            assert conn.execute("SELECT COUNT(*) FROM runs").fetchone() == (0,)
