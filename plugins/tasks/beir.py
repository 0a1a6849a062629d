"""Reading BEIR-format retrieval folders.

Layout (https://github.com/beir-cellar/beir)::

    corpus.jsonl[.gz]     {"_id", "title", "text"} per line
    queries.jsonl[.gz]    {"_id", "text"} per line
    qrels/test.tsv        query-id <TAB> corpus-id <TAB> score (header optional)
    qrels/train.tsv       optional, same format

A document's text is ``(title + " " + text).strip()``, as MTEB builds it, so
zero-shot scores are comparable with MTEB's.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import DataError

from .datafiles import numbered_lines, require_file

__all__ = ["BeirData", "beir_files", "read_beir"]


def _first_existing(folder: Path, *names: str) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def beir_files(folder: Path) -> list[Path] | None:
    """The files a BEIR folder provides, or None if it is incomplete."""
    corpus = _first_existing(folder, "corpus.jsonl", "corpus.jsonl.gz")
    queries = _first_existing(folder, "queries.jsonl", "queries.jsonl.gz")
    test = folder / "qrels" / "test.tsv"
    if corpus is None or queries is None or not test.is_file():
        return None
    files = [corpus, queries, test]
    if (folder / "qrels" / "train.tsv").is_file():
        files.append(folder / "qrels" / "train.tsv")
    return files


def _json_problem(exc: json.JSONDecodeError) -> str:
    # "Invalid control character at" + " column 31"; "Expecting value" + " at ..."
    joint = " " if exc.msg.endswith(" at") else " at "
    return f"{exc.msg}{joint}column {exc.colno}"


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}:{number}: invalid JSON ({_json_problem(exc)})"
            ) from None
        if not isinstance(record, dict) or "_id" not in record:
            raise DataError(f"{path}:{number}: expected an object with an '_id' field")
        yield number, record


@dataclass(slots=True)
class BeirData:
    doc_ids: list[str]
    doc_texts: list[str]  #: title and text joined, as MTEB joins them
    queries: dict[str, str]
    doc_titles: list[str] = field(default_factory=list)
    doc_bodies: list[str] = field(default_factory=list)
    #: split -> query id -> doc id -> graded relevance
    qrels: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)


def read_qrels(
    path: Path, doc_index: dict[str, int], queries: dict[str, str]
) -> dict[str, dict[str, int]]:
    """query id -> doc id -> relevance; every id must be in the queries / corpus.

    BEIR's ``GenericDataLoader`` keeps a row whose corpus id is not in the
    corpus (it then counts as a relevant document no run can retrieve); no
    BEIR folder negbench reads has one, so it is taken as a broken file.
    """
    qrels: dict[str, dict[str, int]] = {}
    for number, row in _tsv_rows(path):
        if not row or not "".join(row).strip():
            continue
        if number == 1 and row[0].strip().lower() in (
            "query-id",
            "query_id",
            "qid",
        ):
            continue
        if len(row) != 3:
            raise DataError(
                f"{path}:{number}: expected 3 tab-separated columns "
                f"(query-id, corpus-id, score), got {len(row)}"
            )
        qid, did, score = (c.strip() for c in row)
        relevance = _grade(score)
        if relevance is None:
            raise DataError(
                f"{path}:{number}: score {score!r} is not an integer relevance grade"
            )
        if qid not in queries:
            raise DataError(
                f"{path}:{number}: query id {qid!r} is not in the queries file"
            )
        if did not in doc_index:
            raise DataError(
                f"{path}:{number}: corpus id {did!r} is not in the corpus file"
            )
        qrels.setdefault(qid, {})[did] = relevance
    if not qrels:
        raise DataError(f"{path}: no relevance judgements")
    return qrels


def _tsv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a tab-separated file, read as BEIR reads it
    (``csv.reader``: a field may be quoted)."""
    reader = csv.reader((text for _, text in numbered_lines(path)), delimiter="\t")
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        # csv's advice for a '\r' inside a line ("open the file in
        # universal-newline mode") is about its own API, not the file
        reason = (
            "a carriage return inside the line"
            if "new-line character" in str(exc)
            else f"not tab-separated values ({exc})"
        )
        raise DataError(f"{path}:{reader.line_num}: {reason}") from None


def _grade(score: str) -> int | None:
    """A qrels score as an integer grade ("2", or "2.0" as some tools write
    it); None for anything else ("1.5", "inf", "abc").  BEIR reads
    ``int(score)``, and ranx and pytrec_eval take integer grades: rounding
    a fractional score would change the metric silently."""
    try:
        return int(score)
    except ValueError:
        pass
    try:
        value = float(score)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None  # False for inf and NaN


def read_beir(folder: Path) -> BeirData:
    corpus_path = require_file(folder, "corpus.jsonl", "corpus.jsonl.gz")
    queries_path = require_file(folder, "queries.jsonl", "queries.jsonl.gz")
    test_path = require_file(folder / "qrels", "test.tsv")
    doc_ids: list[str] = []
    titles: list[str] = []
    bodies: list[str] = []
    doc_index: dict[str, int] = {}
    for number, record in _jsonl(corpus_path):
        did = str(record["_id"])
        if did in doc_index:
            raise DataError(f"{corpus_path}:{number}: duplicate document id {did!r}")
        doc_index[did] = len(doc_ids)
        doc_ids.append(did)
        titles.append(str(record.get("title") or ""))
        bodies.append(str(record.get("text") or ""))
    if not doc_ids:
        raise DataError(f"{corpus_path}: no documents")
    queries: dict[str, str] = {}
    for number, record in _jsonl(queries_path):
        qid = str(record["_id"])
        if qid in queries:
            raise DataError(f"{queries_path}:{number}: duplicate query id {qid!r}")
        queries[qid] = str(record.get("text") or "")
    if not queries:
        raise DataError(f"{queries_path}: no queries")
    data = BeirData(
        doc_ids=doc_ids,
        doc_texts=[
            f"{title} {body}".strip() if title else body.strip()
            for title, body in zip(titles, bodies, strict=True)
        ],
        queries=queries,
        doc_titles=titles,
        doc_bodies=bodies,
    )
    train_path = folder / "qrels" / "train.tsv"
    if train_path.is_file():
        data.qrels["train"] = read_qrels(train_path, doc_index, queries)
    data.qrels["test"] = read_qrels(test_path, doc_index, queries)
    return data
