"""Readers for the STS datasets: STS Benchmark, SICK-R and STS 2012-2016.

Every reader returns :class:`STSPairs` (id, sentence1, sentence2, gold score
per pair) and raises :class:`~harness.errors.DataError` naming ``file:line``
on malformed input.  Sentences are kept verbatim (only the line terminator is
removed), so every evaluator sees exactly the same texts.

Layouts (as in ``../shared/datasets/*/SOURCE.md``)::

    stsb/{train,dev,test}.tsv   genre filename year id score sentence1 sentence2
                                (tab-separated, no quoting; scores in [0, 5])
    sick/SICK_{train,trial,test_annotated}.txt
                                pair_ID sentence_A sentence_B relatedness_score
                                entailment_judgment (relatedness in [1, 5])
    sts12-16/all.tsv.gz         year subset line score sentence1 sentence2
                                (STS12..STS16; scores in [0, 5])

Pair ids are unique within a file: ``filename-year-id`` for STS-B (the raw
``id`` repeats across source files), ``pair_ID`` for SICK and
``subset-line`` for STS12-16 (``line`` = 0-based line in the raw input file).
"""

from __future__ import annotations

import math
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.data import DatasetSource
from harness.errors import DataError

from .datafiles import numbered_lines

__all__ = [
    "SICK",
    "STSB",
    "STS_YEARS",
    "STS_YEARS_SOURCE",
    "STSPairs",
    "read_sick",
    "read_sts_year",
    "read_stsb",
    "sick_files",
    "sts_year_name",
    "sts_years_files",
    "stsb_files",
    "unpack_stsbenchmark",
]

STSB_HEADER = ("genre", "filename", "year", "id", "score", "sentence1", "sentence2")
SICK_HEADER = (
    "pair_ID",
    "sentence_A",
    "sentence_B",
    "relatedness_score",
    "entailment_judgment",
)
STS_YEARS_HEADER = ("year", "subset", "line", "score", "sentence1", "sentence2")
STS_YEARS: tuple[str, ...] = ("STS12", "STS13", "STS14", "STS15", "STS16")


@dataclass(slots=True)
class STSPairs:
    """Sentence pairs with graded gold similarity, column by column."""

    ids: list[str] = field(default_factory=list)
    sentence1: list[str] = field(default_factory=list)
    sentence2: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, pair_id: str, first: str, second: str, score: float) -> None:
        self.ids.append(pair_id)
        self.sentence1.append(first)
        self.sentence2.append(second)
        self.scores.append(score)


# -- line reading ----------------------------------------------------------------------


def _rows(path: Path, header: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """Tab-separated rows after the expected header; blank lines are skipped."""
    lines = numbered_lines(path)
    for number, line in lines:
        if not line.strip():
            continue
        if tuple(line.split("\t")) != header:
            raise DataError(
                f"{path}:{number}: expected the header "
                f"{' '.join(header)!r} (tab-separated), got {line[:80]!r}"
            )
        break
    else:
        raise DataError(f"{path}: the file is empty")
    for number, line in lines:
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(
                f"{path}:{number}: expected {len(header)} tab-separated fields "
                f"({', '.join(header)}), got {len(fields)}"
            )
        yield number, fields


def _score(path: Path, number: int, text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}:{number}: score {text!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise DataError(
            f"{path}:{number}: score {text!r} is outside [{low:g}, {high:g}]"
        )
    return value


def _add(
    pairs: STSPairs,
    seen: dict[str, int],
    where: tuple[Path, int],
    row: tuple[str, str, str, float],
) -> None:
    path, number = where
    pair_id, first, second, score = row
    if pair_id in seen:
        raise DataError(
            f"{path}:{number}: duplicate pair id {pair_id!r} "
            f"(first on line {seen[pair_id]})"
        )
    if not first.strip() or not second.strip():
        raise DataError(f"{path}:{number}: empty sentence in pair {pair_id!r}")
    seen[pair_id] = number
    pairs.append(pair_id, first, second, score)


def _usable(path: Path, pairs: STSPairs, what: str = "pairs") -> STSPairs:
    if not pairs:
        raise DataError(f"{path}: no {what}")
    if min(pairs.scores) == max(pairs.scores):
        # a correlation with a constant is undefined: NaN after a whole run
        raise DataError(
            f"{path}: every one of the {len(pairs)} {what} has the score "
            f"{pairs.scores[0]:g}; the correlations are undefined"
        )
    return pairs


# -- readers ---------------------------------------------------------------------------


def read_stsb(path: Path) -> STSPairs:
    """One STS Benchmark split (``train.tsv``, ``dev.tsv`` or ``test.tsv``)."""
    path = Path(path)
    pairs = STSPairs()
    seen: dict[str, int] = {}
    for number, row in _rows(path, STSB_HEADER):
        _genre, filename, year, raw_id, score, first, second = row
        value = _score(path, number, score, 0.0, 5.0)
        _add(
            pairs,
            seen,
            (path, number),
            (f"{filename}-{year}-{raw_id}", first, second, value),
        )
    return _usable(path, pairs)


def read_sick(path: Path) -> STSPairs:
    """One SICK file; the score is the relatedness score (SICK-R, in [1, 5])."""
    path = Path(path)
    pairs = STSPairs()
    seen: dict[str, int] = {}
    for number, row in _rows(path, SICK_HEADER):
        pair_id, first, second, score, _entailment = row
        value = _score(path, number, score, 1.0, 5.0)
        _add(pairs, seen, (path, number), (pair_id, first, second, value))
    return _usable(path, pairs)


def sts_year_name(year: str | int) -> str:
    """``12``, ``2012``, ``"sts12"`` or ``"STS12"`` -> ``"STS12"``."""
    text = str(year).strip().upper().removeprefix("STS")
    if text.isdigit() and len(text) == 4 and text.startswith("20"):
        text = text[2:]
    name = f"STS{text}"
    if name not in STS_YEARS:
        raise ValueError(f"unknown STS year {year!r}; expected one of {STS_YEARS}")
    return name


def read_sts_year(path: Path, year: str | int) -> STSPairs:
    """The scored pairs of one year (``STS12``..``STS16``) from ``all.tsv.gz``."""
    path = Path(path)
    wanted = sts_year_name(year)
    pairs = STSPairs()
    seen: dict[str, int] = {}
    for number, row in _rows(path, STS_YEARS_HEADER):
        name, subset, line, score, first, second = row
        if name not in STS_YEARS:
            raise DataError(
                f"{path}:{number}: year {name!r} is not one of {', '.join(STS_YEARS)}"
            )
        if name != wanted:
            continue
        if not line.isdigit():
            raise DataError(f"{path}:{number}: line {line!r} is not a line number")
        value = _score(path, number, score, 0.0, 5.0)
        _add(pairs, seen, (path, number), (f"{subset}-{line}", first, second, value))
    return _usable(path, pairs, f"pairs for {wanted}")


# -- dataset sources -------------------------------------------------------------------


def _all_files(folder: Path, names: tuple[str, ...]) -> list[Path] | None:
    files = [folder / name for name in names]
    return files if all(f.is_file() for f in files) else None


def stsb_files(folder: Path) -> list[Path] | None:
    """STS-B's train and test split (what the tasks read), or None."""
    return _all_files(folder, ("train.tsv", "test.tsv"))


def sick_files(folder: Path) -> list[Path] | None:
    """SICK's train and annotated test file (what sick-r reads), or None."""
    return _all_files(folder, ("SICK_train.txt", "SICK_test_annotated.txt"))


def sts_years_files(folder: Path) -> list[Path] | None:
    return _all_files(folder, ("all.tsv.gz",))


def unpack_stsbenchmark(archive: Path, staging: Path) -> None:
    """Turn the original ``Stsbenchmark.tar.gz`` into the ``stsb/`` layout.

    The archive holds ``stsbenchmark/sts-{train,dev,test}.csv`` (tab-separated,
    no quoting; some rows carry extra source fields after sentence2).  Each
    becomes ``{split}.tsv``: the first seven fields under a header; the
    originals are kept under ``raw/``.
    """
    raw = staging / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        for split in ("train", "dev", "test"):
            member = members.get(f"sts-{split}.csv")
            source = tar.extractfile(member) if member is not None else None
            if source is None:
                raise DataError(f"{archive}: sts-{split}.csv is missing")
            with source, (raw / f"sts-{split}.csv").open("wb") as out:
                shutil.copyfileobj(source, out)
        for extra in ("readme.txt", "LICENSE.txt"):
            member = members.get(extra)
            source = tar.extractfile(member) if member is not None else None
            if source is not None:
                with source, (raw / extra).open("wb") as out:
                    shutil.copyfileobj(source, out)
    for split in ("train", "dev", "test"):
        lines = (raw / f"sts-{split}.csv").read_bytes().decode("utf-8").splitlines()
        body = ["\t".join(line.split("\t")[:7]) for line in lines if line.strip()]
        (staging / f"{split}.tsv").write_text(
            "\n".join(["\t".join(STSB_HEADER), *body]) + "\n", encoding="utf-8"
        )


_HOW = (
    "Set --data-dir or HARNESS_DATA_DIR to a folder that contains '{name}/' "
    "with {files} (see the README's data section)."
)

#: STS Benchmark (Cer et al., SemEval 2017); the canonical archive SentEval fetches
STSB = DatasetSource(
    name="stsb",
    files=stsb_files,
    url="http://ixa2.si.ehu.es/stswiki/images/4/48/Stsbenchmark.tar.gz",
    unpack=unpack_stsbenchmark,
    how_to_get=_HOW.format(name="stsb", files="train.tsv and test.tsv"),
    check=lambda folder: [read_stsb(f) for f in stsb_files(folder) or ()],
)

#: SICK (Marelli et al., LREC 2014); three separate files, no single download
SICK = DatasetSource(
    name="sick",
    files=sick_files,
    check=lambda folder: [read_sick(f) for f in sick_files(folder) or ()],
    how_to_get=_HOW.format(
        name="sick", files="SICK_train.txt and SICK_test_annotated.txt"
    ),
)

#: STS 2012-2016 (Agirre et al.); several per-year archives, no single download
STS_YEARS_SOURCE = DatasetSource(
    name="sts12-16",
    files=sts_years_files,
    check=lambda folder: [read_sts_year(folder / "all.tsv.gz", y) for y in STS_YEARS],
    how_to_get=_HOW.format(name="sts12-16", files="all.tsv.gz"),
)
