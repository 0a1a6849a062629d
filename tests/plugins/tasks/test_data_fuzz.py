"""Mutated data files: every reader returns, or raises a one-line DataError.

The cases in ``test_bad_data.py`` are the breakages we thought of; these
are the ones nobody thinks of.  Hypothesis edits a small valid dataset of
each format (bytes cut, inserted or replaced, lines repeated, dropped or
their fields shuffled, the file cut short) and the reader must either read
it or raise :class:`~harness.errors.DataError` with one line that names a
file of the dataset.  Anything else (a ``ValueError`` from a library, an
``OverflowError``, a ``LookupError``) would reach the user as a traceback.
Several of the ``test_bad_data`` cases were found this way.

``derandomize``: the same examples on every run, so CI is not flaky; run
with ``--hypothesis-seed`` and ``derandomize`` off to explore further.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TOY_ARFF_HEADER, TOY_LABEL_XML, write_tiny_beir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import DataError
from negbench_plugins.tasks.beir import read_beir
from negbench_plugins.tasks.kg_data import read_graph
from negbench_plugins.tasks.multilabel_data import (
    read_goemotions,
    read_mulan,
    read_reuters,
)
from negbench_plugins.tasks.sts_data import read_sick, read_sts_year, read_stsb

#: what an edit may insert: the characters every format gives a meaning to,
#: numbers no reader expects, bytes that are not UTF-8
PIECES = [
    *(c.encode() for c in "\t\n\r ,{}[]\"'\\@?%:-0"),
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xef\xbb\xbf",
    *(s.encode() for s in ("inf", "nan", "-1", "1e999", "99999999999999999999")),
    *(s.encode() for s in ("\u00b2", "\u0663", "null", "true", "{}", "@data")),
]


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


STSB = (
    "genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2\n"
    "main-captions\tMSRvid\t2012test\t0001\t5.000\tA plane.\tAn air plane.\n"
    "main-captions\tMSRvid\t2012test\t0004\t3.800\tA man.\tA flute.\n"
)
SICK = (
    "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"
    "1\tKids play\tBoys play\t4.5\tNEUTRAL\n"
    "2\tA dog\tA cat\t1.2\tNEUTRAL\n"
)
STS_YEARS = (
    "year\tsubset\tline\tscore\tsentence1\tsentence2\n"
    "STS12\tMSRpar\t1\t4.4\tA b.\tC d.\n"
    "STS12\tMSRpar\t2\t1.0\tE f.\tG h.\n"
)


def _reuters_line(newid: int, split: str, topics: list[str]) -> str:
    record = {"newid": newid, "modapte": split, "topics": topics}
    return json.dumps({**record, "title": "Cocoa", "body": "Showers in Bahia."})


#: format -> (write a small valid dataset into a folder, read a folder)
FORMATS: dict[str, tuple[Callable[[Path], Path], Callable[[Path], object]]] = {
    "beir": (write_tiny_beir, read_beir),
    "kg": (
        lambda f: _write(
            f,
            {
                "train.txt": "a\tr\tb\nb\tr\tc\nc\ts\ta\n",
                "valid.txt": "a\tr\tc\n",
                "test.txt": "c\tr\ta\nb\ts\ta\n",
            },
        ),
        lambda f: read_graph("toy", f),
    ),
    "stsb": (
        lambda f: _write(f, {"train.tsv": STSB}),
        lambda f: read_stsb(f / "train.tsv"),
    ),
    "sick": (
        lambda f: _write(f, {"SICK_train.txt": SICK}),
        lambda f: read_sick(f / "SICK_train.txt"),
    ),
    "sts-years": (
        lambda f: _write(f, {"all.tsv": STS_YEARS}),
        lambda f: read_sts_year(f / "all.tsv", 12),
    ),
    "mulan": (
        lambda f: _write(
            f,
            {
                "toy-train.arff": TOY_ARFF_HEADER + "1,0,2,1\n3,1,4,0\n",
                "toy-test.arff": TOY_ARFF_HEADER + "{0 3,1 1,2 4}\n{}\n",
                "toy.xml": TOY_LABEL_XML,
            },
        ),
        lambda f: read_mulan("toy", f),
    ),
    "goemotions": (
        lambda f: _write(
            f,
            {
                "labels.txt": "joy\nanger\nneutral\n",
                "train.tsv": "So happy!\t0\tid1\nUgh.\t1,2\tid2\n",
                "test.tsv": "Fine.\t2\tid3\n",
            },
        ),
        read_goemotions,
    ),
    "reuters": (
        lambda f: _write(
            f,
            {
                "r90_categories.txt": "cocoa\ngrain\n",
                "reuters21578_modapte.jsonl": "\n".join(
                    [
                        _reuters_line(1, "train", ["cocoa"]),
                        _reuters_line(2, "train", ["grain", "cocoa"]),
                        _reuters_line(3, "test", ["grain"]),
                    ]
                )
                + "\n",
            },
        ),
        read_reuters,
    ),
}


def _edit(data: bytes, kind: int, at: float, length: int, piece: bytes) -> bytes:
    """One edit of ``data``: ``at`` in [0, 1) picks the place."""
    lines = data.splitlines(keepends=True)
    if not data or not lines:
        return piece
    i = int(at * len(data))
    j = min(len(data), i + length)
    line = int(at * len(lines))
    if kind == 0:  # cut bytes
        return data[:i] + data[j:]
    if kind == 1:  # insert
        return data[:i] + piece + data[i:]
    if kind == 2:  # replace
        return data[:i] + piece + data[j:]
    if kind == 3:  # the file ends early
        return data[:i]
    if kind == 4:  # a line twice
        lines.insert(line, lines[line])
    elif kind == 5:  # a line gone
        del lines[line]
    else:  # a line's fields in another order
        fields = lines[line].rstrip(b"\n").split(b"\t")
        lines[line] = b"\t".join(reversed(fields)) + b"\n"
    return b"".join(lines)


EDITS = st.lists(
    st.tuples(
        st.integers(0, 255),  # which file (modulo the dataset's files)
        st.integers(0, 6),
        st.floats(0, 1, exclude_max=True),
        st.integers(1, 8),
        st.sampled_from(PIECES),
    ),
    min_size=1,
    max_size=3,
)


@pytest.mark.parametrize("name", list(FORMATS))
def test_a_mutated_file_is_read_or_named_in_one_line(name: str, tmp_path: Path) -> None:
    write, read = FORMATS[name]
    valid = write(tmp_path / "valid")
    read(valid)  # the unedited dataset reads
    files = sorted(p.relative_to(valid) for p in valid.rglob("*") if p.is_file())
    outcomes: dict[str, int] = {"read": 0, "error": 0}

    @settings(
        max_examples=100,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(edits=EDITS)
    def check(edits: list[tuple[int, int, float, int, bytes]]) -> None:
        with tempfile.TemporaryDirectory(dir=tmp_path) as work:
            folder = Path(work) / name
            shutil.copytree(valid, folder)
            for which, kind, at, length, piece in edits:
                path = folder / files[which % len(files)]
                path.write_bytes(_edit(path.read_bytes(), kind, at, length, piece))
            try:
                read(folder)
            except DataError as exc:
                message = str(exc)
                assert "\n" not in message, message
                assert message.startswith(str(folder)), message
                outcomes["error"] += 1
            else:
                outcomes["read"] += 1

    check()
    # the edits do break files (and leave some readable): not a vacuous pass
    assert outcomes["error"] > 0, outcomes
