"""Readers for the multi-label datasets: MULAN (ARFF + XML) and two text sets.

* MULAN (Tsoumakas et al., JMLR 2011): ``NAME-train.arff``, ``NAME-test.arff``
  (either may be gzipped) and ``NAME.xml`` naming the label attributes.  The
  ARFF files come in the dense form (comma-separated rows) and the sparse
  form (``{index value, ...}``); both are parsed by liac-arff, the sparse one
  straight into coordinates so a 12,920 x 1,483 file never becomes Python
  lists of zeros.  Labels are the attributes the XML names, wherever they sit
  in the header; every other attribute is a feature.
* GoEmotions (Demszky et al., ACL 2020): ``train.tsv.gz`` / ``test.tsv``
  (``text <TAB> label ids <TAB> comment id``) and ``labels.txt``.
* Reuters-21578 ModApte, the 90-category subset (Apté et al. 1994):
  ``reuters21578_modapte.jsonl.gz`` and ``r90_categories.txt``; documents with
  at least one of the 90 categories, text = title + newline + body.

A malformed file is a one-line :class:`~harness.DataError` naming the file
(and the line where the parser knows it).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.parsers import expat

import numpy as np

from harness import DataError
from harness.data import DatasetSource

from .datafiles import numbered_lines, read_bytes, read_text, require_file

__all__ = [
    "MULAN_SETS",
    "SOURCES",
    "MultiLabelData",
    "read_arff",
    "read_goemotions",
    "read_mulan",
    "read_reuters",
]

#: MULAN sets negbench knows, by task name
MULAN_SETS = ("yeast", "emotions", "scene", "medical", "enron", "bibtex", "delicious")


@dataclass(frozen=True, slots=True, kw_only=True)
class MultiLabelData:
    """A multi-label dataset with its canonical train/test split.

    Exactly one of ``train_features`` / ``train_texts`` is set (and the same
    for test).

    :param labels: label names, column order of the label matrices.
    :param train_labels: shape: (N, L) uint8 0/1.
    :param train_features: shape: (N, F) float32, or None for a text set.
    """

    name: str
    labels: tuple[str, ...]
    train_labels: np.ndarray
    test_labels: np.ndarray
    train_features: np.ndarray | None = None
    test_features: np.ndarray | None = None
    train_texts: Sequence[str] | None = None
    test_texts: Sequence[str] | None = None

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def is_text(self) -> bool:
        return self.train_texts is not None

    def head(self, train: int | None, test: int | None) -> MultiLabelData:
        """The first ``train`` / ``test`` examples (None = all): quick runs."""
        return MultiLabelData(
            name=self.name,
            labels=self.labels,
            train_labels=self.train_labels[:train],
            test_labels=self.test_labels[:test],
            train_features=_head(self.train_features, train),
            test_features=_head(self.test_features, test),
            train_texts=_head(self.train_texts, train),
            test_texts=_head(self.test_texts, test),
        )


def _head(values: Any, n: int | None) -> Any:
    return None if values is None else values[:n]


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _require(folder: Path, stem: str) -> Path:
    return require_file(folder, stem, f"{stem}.gz")


# -- MULAN ----------------------------------------------------------------------


def _mulan_files(name: str) -> Callable[[Path], Sequence[Path] | None]:
    def files(folder: Path) -> Sequence[Path] | None:
        found = [
            _find(folder, f"{name}-train.arff"),
            _find(folder, f"{name}-test.arff"),
            _find(folder, f"{name}.xml"),
        ]
        return None if None in found else [p for p in found if p is not None]

    return files


def _label_lines(path: Path) -> dict[str, int]:
    """Label name -> its line in a MULAN XML header (any nesting depth)."""
    labels: dict[str, int] = {}
    parser = expat.ParserCreate(namespace_separator="}")

    def start(tag: str, attributes: dict[str, str]) -> None:
        if tag.rsplit("}", 1)[-1] != "label" or "name" not in attributes:
            return
        name, line = attributes["name"], parser.CurrentLineNumber
        if name in labels:
            raise DataError(
                f"{path}:{line}: label {name!r} is listed twice "
                f"(first on line {labels[name]})"
            )
        labels[name] = line

    parser.StartElementHandler = start
    try:
        parser.Parse(read_bytes(path), True)
    except expat.ExpatError as exc:
        raise DataError(
            f"{path}:{exc.lineno}: not a MULAN label XML "
            f"({expat.ErrorString(exc.code)})"
        ) from None
    except LookupError as exc:  # the XML declaration names an unknown encoding
        raise DataError(
            f"{path}:{parser.CurrentLineNumber}: not a MULAN label XML ({exc})"
        ) from None
    if not labels:
        raise DataError(f"{path}: no <label name=...> elements")
    return labels


def read_label_names(path: Path) -> list[str]:
    """Label attribute names from a MULAN XML header (any nesting depth)."""
    return list(_label_lines(path))


@dataclass(frozen=True, slots=True)
class _Arff:
    names: list[str]
    matrix: np.ndarray  #: shape: (N, len(names)) float32
    lines: list[int]  #: the file line of each data row


def _arff_problem(path: Path, exc: Exception, dense_row: bool) -> str:
    """``path:line: reason`` from liac-arff's "reason, at line N." messages."""
    line = getattr(exc, "line", -1)
    try:
        message = str(exc)
    except (TypeError, ValueError):
        # liac-arff formats the line number into a message that quotes the
        # bad value: a '%' in that value breaks its own formatting
        message = str(getattr(exc, "message", "")).replace("%d", str(line), 1)
    reason = re.sub(rf",? (?:at|in) line {line}\b\.?", "", message, count=1)
    if dense_row:
        reason = "expected a sparse row '{index value, ...}' like the first one"
    return f"{path}:{line}: {reason}"


def _not_a_number(value: object) -> bool:
    try:
        return math.isnan(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True


def _value_problem(name: str, value: object) -> str:
    if value is None:
        return f"attribute {name!r} is missing ('?'); MULAN data has no gaps"
    return f"attribute {name!r} has the value {value!r}, expected a number"


def _cells(data: Any, sparse: bool) -> Iterator[tuple[Any, int, int]]:
    """(value, row, column) of each value liac-arff decoded."""
    if sparse:
        yield from zip(*data, strict=True)
    else:
        for row, record in enumerate(data):
            for column, value in enumerate(record):
                yield value, row, column


def _parse_arff(path: Path) -> _Arff:
    import arff  # liac-arff

    lines = read_text(path).split("\n")
    # liac-arff's own rules: the header ends at the first line starting with
    # @data; then every line that is neither blank nor a % comment is a row
    data_at = next(
        (
            i
            for i, line in enumerate(lines)
            if line.lstrip().upper().startswith("@DATA")
        ),
        None,
    )
    if data_at is None:
        raise DataError(f"{path}: no @data line (the header never ends)")
    rows = [
        i + 1
        for i in range(data_at + 1, len(lines))
        if (text := lines[i].strip()) and not text.startswith("%")
    ]
    sparse = bool(rows) and lines[rows[0] - 1].strip().startswith("{")
    decoder = arff.ArffDecoder()
    try:
        decoded = decoder.decode(lines, return_type=arff.COO if sparse else arff.DENSE)
    except arff.ArffException as exc:
        # liac-arff calls a dense row in a sparse file a "bad layout"
        dense_row = sparse and isinstance(exc, arff.BadLayout) and exc.line in rows
        raise DataError(_arff_problem(path, exc, dense_row)) from None
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        # a few malformed lines escape liac-arff as plain errors (a bare
        # '@attribute' line: a failed unpacking); its decoder knows the line
        line = getattr(decoder, "_current_line", "?")
        raise DataError(
            f"{path}:{line}: not a valid ARFF line ({type(exc).__name__}: {exc})"
        ) from None
    if not rows:
        raise DataError(f"{path}:{data_at + 1}: no data rows after @data")
    names = [name for name, _ in decoded["attributes"]]
    try:
        if sparse:
            values, row_index, columns = decoded["data"]
            # the row count comes from the file: a trailing '{}' row has no entry
            matrix = np.zeros((len(rows), len(names)), dtype=np.float32)
            matrix[
                np.asarray(row_index, dtype=np.int64),
                np.asarray(columns, dtype=np.int64),  # also when there are none
            ] = np.asarray(values, dtype=np.float32)
        else:
            matrix = np.asarray(decoded["data"], dtype=np.float32)
    except (TypeError, ValueError):
        matrix = None
    # numpy reads a missing value ('?') as NaN in a dense file, a TypeError in
    # a sparse one; either way, find the first offending value for the message
    if matrix is None or np.isnan(matrix).any():
        for value, row, column in _cells(decoded["data"], sparse):
            if _not_a_number(value):
                problem = _value_problem(names[column], value)
                raise DataError(f"{path}:{rows[row]}: {problem}")
        raise DataError(f"{path}: non-numeric values in the data section")
    if matrix.shape != (len(rows), len(names)):
        raise DataError(f"{path}: rows do not match the {len(names)} attributes")
    return _Arff(names, matrix, rows)


def read_arff(path: Path) -> tuple[list[str], np.ndarray]:
    """Attribute names and the data matrix (float32, dense) of an ARFF file.

    Nominal values must be numbers (MULAN's ``{0,1}``); a missing value
    (``?``) or any other string is an error naming the file and line.
    """
    parsed = _parse_arff(path)
    return parsed.names, parsed.matrix


def _split_labels(
    path: Path, parsed: _Arff, labels: dict[str, int], xml_path: Path
) -> tuple[np.ndarray, np.ndarray]:
    position = {name: i for i, name in enumerate(parsed.names)}
    missing = [label for label in labels if label not in position]
    if missing:
        more = f" ({len(missing) - 1} more labels missing)" if len(missing) > 1 else ""
        raise DataError(
            f"{path}: no @attribute {missing[0]!r}, which "
            f"{xml_path.name}:{labels[missing[0]]} names as a label{more}"
        )
    if len(labels) == len(parsed.names):
        raise DataError(
            f"{path}: all {len(labels)} attributes are labels in {xml_path.name}; "
            "no feature attributes"
        )
    label_columns = [position[label] for label in labels]
    feature_columns = sorted(set(range(len(parsed.names))) - set(label_columns))
    y = parsed.matrix[:, label_columns]
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{path}:{parsed.lines[row]}: label attribute "
            f"{list(labels)[column]!r} is {y[row, column]:g}; labels must be 0/1"
        )
    return parsed.matrix[:, feature_columns], y.astype(np.uint8)


def _difference(train: list[str], test: list[str]) -> str:
    """How the test header's attributes differ from the train header's."""
    for i, (ours, theirs) in enumerate(zip(test, train, strict=False)):
        if ours != theirs:
            return f"attribute {i + 1} is {ours!r}, {theirs!r} in the train file"
    return f"{len(test)} attributes, the train file has {len(train)}"


def read_mulan(name: str, folder: Path) -> MultiLabelData:
    """A MULAN dataset's canonical train/test split from ``folder``."""
    train_path = _require(folder, f"{name}-train.arff")
    test_path = _require(folder, f"{name}-test.arff")
    xml_path = _require(folder, f"{name}.xml")
    labels = _label_lines(xml_path)
    train = _parse_arff(train_path)
    test = _parse_arff(test_path)
    if train.names != test.names:
        raise DataError(f"{test_path}: {_difference(train.names, test.names)}")
    train_x, train_y = _split_labels(train_path, train, labels, xml_path)
    test_x, test_y = _split_labels(test_path, test, labels, xml_path)
    if not test_y.any():  # every ranking metric would be NaN
        raise DataError(
            f"{test_path}: no test example has any of the {len(labels)} labels; "
            "the metrics are undefined"
        )
    return MultiLabelData(
        name=name,
        labels=tuple(labels),
        train_labels=train_y,
        test_labels=test_y,
        train_features=train_x,
        test_features=test_x,
    )


# -- text sets ---------------------------------------------------------------------


def _goemotions_files(folder: Path) -> Sequence[Path] | None:
    found = [
        _find(folder, "train.tsv"),
        _find(folder, "test.tsv"),
        _find(folder, "labels.txt"),
    ]
    return None if None in found else [p for p in found if p is not None]


def _read_goemotions_split(path: Path, num_labels: int) -> tuple[list[str], np.ndarray]:
    texts: list[str] = []
    rows: list[list[int]] = []
    for number, line in numbered_lines(path):
        parts = line.split("\t")
        try:
            ids = [int(i) for i in parts[1].split(",")]
        except (IndexError, ValueError):
            raise DataError(
                f"{path}:{number}: expected 'text<TAB>label ids<TAB>id'"
            ) from None
        if min(ids) < 0 or max(ids) >= num_labels:
            raise DataError(f"{path}:{number}: label id outside 0..{num_labels - 1}")
        texts.append(parts[0])
        rows.append(ids)
    if not texts:
        raise DataError(f"{path}: no examples")
    return texts, _multi_hot(rows, num_labels)


def _multi_hot(rows: Sequence[Sequence[int]], num_labels: int) -> np.ndarray:
    """Label id lists as an (N, L) uint8 0/1 matrix."""
    y = np.zeros((len(rows), num_labels), dtype=np.uint8)
    for i, ids in enumerate(rows):
        y[i, list(ids)] = 1
    return y


def _label_list(path: Path) -> list[str]:
    labels = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if not labels:
        raise DataError(f"{path}: no labels")
    return labels


def read_goemotions(folder: Path) -> MultiLabelData:
    """GoEmotions' 28-label train and test splits (dev is not used)."""
    train_path = _require(folder, "train.tsv")
    test_path = _require(folder, "test.tsv")
    labels = _label_list(_require(folder, "labels.txt"))
    train_texts, train_y = _read_goemotions_split(train_path, len(labels))
    test_texts, test_y = _read_goemotions_split(test_path, len(labels))
    return MultiLabelData(
        name="goemotions",
        labels=tuple(labels),
        train_labels=train_y,
        test_labels=test_y,
        train_texts=train_texts,
        test_texts=test_texts,
    )


def _reuters_files(folder: Path) -> Sequence[Path] | None:
    found = [
        _find(folder, "reuters21578_modapte.jsonl"),
        _find(folder, "r90_categories.txt"),
    ]
    return None if None in found else [p for p in found if p is not None]


def read_reuters(folder: Path) -> MultiLabelData:
    """Reuters-21578 ModApte, documents with >= 1 of the 90 categories."""
    documents_path = _require(folder, "reuters21578_modapte.jsonl")
    labels = sorted(_label_list(_require(folder, "r90_categories.txt")))
    column = {label: i for i, label in enumerate(labels)}
    texts: dict[str, list[str]] = {"train": [], "test": []}
    rows: dict[str, list[list[int]]] = {"train": [], "test": []}
    for number, line in numbered_lines(documents_path):
        try:
            document = json.loads(line)
            split = document["modapte"]
            topics = [column[t] for t in document["topics"] if t in column]
            text = f"{document['title']}\n{document['body']}".strip()
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(
                f"{documents_path}:{number}: not a ModApte document ({exc})"
            ) from None
        if topics and split in texts:
            texts[split].append(text)
            rows[split].append(topics)
    for split, found in texts.items():
        if not found:
            raise DataError(
                f"{documents_path}: no {split} documents with one of the "
                f"{len(labels)} categories"
            )
    return MultiLabelData(
        name="reuters",
        labels=tuple(labels),
        train_labels=_multi_hot(rows["train"], len(labels)),
        test_labels=_multi_hot(rows["test"], len(labels)),
        train_texts=texts["train"],
        test_texts=texts["test"],
    )


# -- sources -------------------------------------------------------------------------

_MULAN_HOW = (
    "Put the mulan-{name} folder ({name}-train.arff, {name}-test.arff (either "
    "may be .gz) and {name}.xml from github.com/tsoumakas/mulan, "
    "data/multi-label/{name}/) into a data dir (--data-dir or HARNESS_DATA_DIR)."
)

#: data-dir folder name and reader per task name
SOURCES: dict[str, DatasetSource] = {
    **{
        name: DatasetSource(
            name=f"mulan-{name}",
            files=_mulan_files(name),
            how_to_get=_MULAN_HOW.format(name=name),
            check=functools.partial(read_mulan, name),
        )
        for name in MULAN_SETS
    },
    "goemotions": DatasetSource(
        name="goemotions",
        files=_goemotions_files,
        check=read_goemotions,
        how_to_get=(
            "Put the goemotions folder (train.tsv(.gz), test.tsv, labels.txt from "
            "google-research/goemotions data/) into a data dir."
        ),
    ),
    "reuters": DatasetSource(
        name="reuters21578",
        files=_reuters_files,
        check=read_reuters,
        how_to_get=(
            "Put the reuters21578 folder (reuters21578_modapte.jsonl.gz and "
            "r90_categories.txt, see the README) into a data dir."
        ),
    ),
}


def read_dataset(name: str, folder: Path) -> MultiLabelData:
    """Read the dataset of task ``name`` from its located folder."""
    if name == "goemotions":
        return read_goemotions(folder)
    if name == "reuters":
        return read_reuters(folder)
    return read_mulan(name, folder)
