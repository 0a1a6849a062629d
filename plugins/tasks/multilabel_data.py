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

import gzip
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from harness import DataError
from harness.data import DatasetSource

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


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


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


def read_label_names(path: Path) -> list[str]:
    """Label attribute names from a MULAN XML header (any nesting depth)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DataError(f"{path}: not a MULAN label XML ({exc})") from None
    names = [
        element.attrib["name"]
        for element in root.iter()
        if element.tag.rsplit("}", 1)[-1] == "label" and "name" in element.attrib
    ]
    if not names:
        raise DataError(f"{path}: no <label name=...> elements")
    return names


def read_arff(path: Path) -> tuple[list[str], np.ndarray]:
    """Attribute names and the data matrix (float32, dense) of an ARFF file.

    Nominal values must be numbers (MULAN's ``{0,1}``); a missing value
    (``?``) or any other string is an error naming the file.
    """
    import arff  # liac-arff

    with _open(path) as handle:
        text = handle.read()
    # the data section's first row decides the form liac-arff must decode
    match = re.search(r"^@data\s*$\s*^([^%\s])", text, re.IGNORECASE | re.MULTILINE)
    sparse = match is not None and match.group(1) == "{"
    try:
        decoded = arff.loads(text, return_type=arff.COO if sparse else arff.DENSE)
    except arff.ArffException as exc:
        raise DataError(f"{path}: {exc}") from None
    names = [name for name, _ in decoded["attributes"]]
    try:
        if sparse:
            values, rows, columns = decoded["data"]
            n = max(rows) + 1 if len(rows) else 0
            matrix = np.zeros((n, len(names)), dtype=np.float32)
            matrix[np.asarray(rows, dtype=np.int64), np.asarray(columns)] = np.asarray(
                values, dtype=np.float32
            )
        else:
            matrix = np.asarray(decoded["data"], dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{path}: non-numeric or missing values in the data section ({exc})"
        ) from None
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise DataError(f"{path}: rows do not match the {len(names)} attributes")
    return names, matrix


def _split_labels(
    path: Path, names: list[str], matrix: np.ndarray, labels: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    position = {name: i for i, name in enumerate(names)}
    missing = [label for label in labels if label not in position]
    if missing:
        raise DataError(
            f"{path}: label attribute(s) {', '.join(missing[:3])} named in the "
            "XML are not in the ARFF header"
        )
    label_columns = [position[label] for label in labels]
    feature_columns = sorted(set(range(len(names))) - set(label_columns))
    y = matrix[:, label_columns]
    if not np.isin(y, (0.0, 1.0)).all():
        raise DataError(f"{path}: label attributes must be 0/1")
    return matrix[:, feature_columns], y.astype(np.uint8)


def read_mulan(name: str, folder: Path) -> MultiLabelData:
    """A MULAN dataset's canonical train/test split from ``folder``."""
    files = _mulan_files(name)(folder)
    if files is None:
        raise DataError(f"{folder}: missing {name}-train/-test .arff or {name}.xml")
    train_path, test_path, xml_path = files
    labels = read_label_names(xml_path)
    train_names, train = read_arff(train_path)
    test_names, test = read_arff(test_path)
    if train_names != test_names:
        raise DataError(f"{test_path}: attributes differ from {train_path.name}'s")
    train_x, train_y = _split_labels(train_path, train_names, train, labels)
    test_x, test_y = _split_labels(test_path, test_names, test, labels)
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
    with _open(path) as handle:
        for number, line in enumerate(handle, 1):
            parts = line.rstrip("\n").split("\t")
            try:
                ids = [int(i) for i in parts[1].split(",")]
            except (IndexError, ValueError):
                raise DataError(
                    f"{path}:{number}: expected 'text<TAB>label ids<TAB>id'"
                ) from None
            if min(ids) < 0 or max(ids) >= num_labels:
                raise DataError(
                    f"{path}:{number}: label id outside 0..{num_labels - 1}"
                )
            texts.append(parts[0])
            rows.append(ids)
    return texts, _multi_hot(rows, num_labels)


def _multi_hot(rows: Sequence[Sequence[int]], num_labels: int) -> np.ndarray:
    """Label id lists as an (N, L) uint8 0/1 matrix."""
    y = np.zeros((len(rows), num_labels), dtype=np.uint8)
    for i, ids in enumerate(rows):
        y[i, list(ids)] = 1
    return y


def read_goemotions(folder: Path) -> MultiLabelData:
    """GoEmotions' 28-label train and test splits (dev is not used)."""
    files = _goemotions_files(folder)
    if files is None:
        raise DataError(f"{folder}: missing train.tsv(.gz), test.tsv or labels.txt")
    train_path, test_path, labels_path = files
    labels = [
        line.strip() for line in labels_path.read_text().splitlines() if line.strip()
    ]
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
    files = _reuters_files(folder)
    if files is None:
        raise DataError(f"{folder}: missing reuters21578_modapte.jsonl(.gz) or r90")
    documents_path, categories_path = files
    labels = sorted(
        line.strip() for line in categories_path.read_text().splitlines() if line
    )
    column = {label: i for i, label in enumerate(labels)}
    texts: dict[str, list[str]] = {"train": [], "test": []}
    rows: dict[str, list[list[int]]] = {"train": [], "test": []}
    with _open(documents_path) as handle:
        for number, line in enumerate(handle, 1):
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
        )
        for name in MULAN_SETS
    },
    "goemotions": DatasetSource(
        name="goemotions",
        files=_goemotions_files,
        how_to_get=(
            "Put the goemotions folder (train.tsv(.gz), test.tsv, labels.txt from "
            "google-research/goemotions data/) into a data dir."
        ),
    ),
    "reuters": DatasetSource(
        name="reuters21578",
        files=_reuters_files,
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
