"""Convert the original Cranfield collection into a BEIR folder.

Cranfield (C. Cleverdon, "The Cranfield tests on index language devices", Aslib
Proceedings 19(6), 1967) ships as ``cran.all.1400``, ``cran.qry`` and ``cranqrel``.
Documents keep their ``.I`` number; ``.T`` is the title, ``.W`` the text and ``.A``
and ``.B`` go to ``metadata`` as author and bib, all with whitespace collapsed (a
repeated field is appended).  Queries are numbered 1..225 in file order, as
``cranqrel`` numbers them; the ``.I`` label of ``cran.qry`` is kept as
``original_I``.  Relevance codes 1..4 (1 = complete answer) become scores 4..1
and -1 ("no interest") becomes 0.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness.errors import DataError

__all__ = ["convert_cranfield", "unpack_cranfield"]

CORPUS_NAMES = ("cran.all.1400", "cran.all.1400.gz")
QUERIES_NAME = "cran.qry"
QRELS_NAME = "cranqrel"

# ".I 12" starts a record; ".T", ".A", ".B", ".W" start a field of it.
_MARKER = re.compile(r"\.([A-Z])(?:\s+(\S+))?")
_SCORES = {"1": 4, "2": 3, "3": 2, "4": 1, "-1": 0}

Record = tuple[str, dict[str, str]]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            yield from enumerate(handle, 1)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from exc


def _records(path: Path, fields: str) -> list[Record]:
    """The ``.I`` records of ``path``, each field's lines joined, spaces collapsed."""
    raw: list[tuple[str, dict[str, list[str]]]] = []
    current: list[str] | None = None
    for number, line in _lines(path):
        marker = _MARKER.fullmatch(line.strip())
        if marker and marker[1] == "I" and marker[2]:
            raw.append((marker[2], {name: [] for name in fields}))
            current = None
        elif marker and marker[1] in fields and not marker[2] and raw:
            current = raw[-1][1][marker[1]]
        elif marker:
            raise DataError(f"{path}:{number}: unexpected marker {line.strip()!r}")
        elif current is not None:
            current.append(line)
        elif line.strip():
            raise DataError(f"{path}:{number}: text outside a field")
    if not raw:
        raise DataError(f"{path}: no '.I' records")
    return [
        (label, {name: " ".join(" ".join(v).split()) for name, v in parts.items()})
        for label, parts in raw
    ]


def _qrels(path: Path, n_queries: int, doc_ids: set[str]) -> list[tuple[str, str, int]]:
    rows = []
    for number, line in _lines(path):
        parts = line.split()
        if not parts:
            continue
        # isdecimal, not isdigit: the digits int() reads ('²' is a digit too)
        if len(parts) != 3 or parts[2] not in _SCORES or not parts[0].isdecimal():
            raise DataError(
                f"{path}:{number}: expected 'query doc relevance' with relevance "
                f"1..4 or -1, got {line.strip()!r}"
            )
        query, doc, raw = parts
        if not 1 <= int(query) <= n_queries:
            raise DataError(f"{path}:{number}: no query number {query}")
        if doc not in doc_ids:
            raise DataError(f"{path}:{number}: no document {doc}")
        rows.append((query, doc, _SCORES[raw]))
    return rows


def _dump(record: dict[str, object]) -> str:
    return json.dumps(record) + "\n"


def _write_gzip(path: Path, data: bytes) -> None:
    """Write ``data`` gzipped, without file name or time stamp (reproducible)."""
    path.write_bytes(gzip.compress(data, mtime=0))


def convert_cranfield(raw_dir: Path, out_dir: Path) -> None:
    """Write ``corpus.jsonl.gz``, ``queries.jsonl``, ``qrels/test.tsv`` and ``raw/``."""
    corpus_path = next(
        (raw_dir / n for n in CORPUS_NAMES if (raw_dir / n).is_file()),
        raw_dir / CORPUS_NAMES[0],
    )
    docs = _records(corpus_path, "TABW")
    queries = _records(raw_dir / QUERIES_NAME, "W")
    doc_ids = {label for label, _ in docs}
    if len(doc_ids) != len(docs):
        raise DataError(f"{corpus_path}: repeated '.I' document numbers")
    qrels = _qrels(raw_dir / QRELS_NAME, len(queries), doc_ids)

    corpus = "".join(
        _dump(
            {
                "_id": label,
                "title": f["T"],
                "text": f["W"],
                "metadata": {"author": f["A"], "bib": f["B"]},
            }
        )
        for label, f in docs
    )
    query_lines = "".join(
        _dump({"_id": str(number), "text": f["W"], "metadata": {"original_I": label}})
        for number, (label, f) in enumerate(queries, 1)
    )
    qrel_lines = "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels)

    (out_dir / "qrels").mkdir(parents=True, exist_ok=True)
    (out_dir / "raw").mkdir(exist_ok=True)
    _write_gzip(out_dir / "corpus.jsonl.gz", corpus.encode("utf-8"))
    (out_dir / "queries.jsonl").write_bytes(query_lines.encode("utf-8"))
    header = "query-id\tcorpus-id\tscore\n"
    (out_dir / "qrels" / "test.tsv").write_bytes((header + qrel_lines).encode("utf-8"))
    if corpus_path.suffix == ".gz":
        shutil.copyfile(corpus_path, out_dir / "raw" / corpus_path.name)
    else:
        _write_gzip(out_dir / "raw" / CORPUS_NAMES[1], corpus_path.read_bytes())
    for name in (QUERIES_NAME, QRELS_NAME):
        shutil.copyfile(raw_dir / name, out_dir / "raw" / name)


def _find_raw_dir(root: Path) -> Path | None:
    for path in sorted(root.rglob("cran.all.1400*")):
        folder = path.parent
        if path.name in CORPUS_NAMES and all(
            (folder / name).is_file() for name in (QUERIES_NAME, QRELS_NAME)
        ):
            return folder
    return None


def unpack_cranfield(archive: Path, staging: Path) -> None:
    """Download hook: extract the Glasgow ``cran.tar.gz`` and convert it."""
    with tempfile.TemporaryDirectory(dir=staging.parent) as tmp:
        shutil.unpack_archive(archive, tmp, filter="data")
        raw_dir = _find_raw_dir(Path(tmp))
        if raw_dir is None:
            raise DataError(
                f"{archive}: no folder holds {CORPUS_NAMES[0]}, {QUERIES_NAME} "
                f"and {QRELS_NAME}"
            )
        convert_cranfield(raw_dir, staging)
