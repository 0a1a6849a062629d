"""The multi-label readers: MULAN ARFF (dense and sparse) + XML, GoEmotions, Reuters."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from harness import DataError
from negbench_plugins.tasks.multilabel_data import (
    SOURCES,
    read_arff,
    read_dataset,
    read_goemotions,
    read_mulan,
)

# (train, test, features, labels) from each folder's SOURCE.md
COUNTS = {
    "yeast": (1500, 917, 103, 14),
    "emotions": (391, 202, 72, 6),
    "scene": (1211, 1196, 294, 6),
    "medical": (333, 645, 1449, 45),
    "enron": (1123, 579, 1001, 53),
    "bibtex": (4880, 2515, 1836, 159),
    "delicious": (12920, 3185, 500, 983),
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_mulan_sets_have_the_documented_shapes(data_dir, name):
    data = read_dataset(name, data_dir / SOURCES[name].name)
    train, test, features, labels = COUNTS[name]
    assert data.train_features.shape == (train, features)
    assert data.test_features.shape == (test, features)
    assert data.train_labels.shape == (train, labels)
    assert data.test_labels.shape == (test, labels)
    assert data.num_labels == labels and not data.is_text
    assert set(np.unique(data.train_labels)) <= {0, 1}


def test_dense_yeast_values_and_sparse_medical_values(data_dir):
    yeast = read_dataset("yeast", data_dir / "mulan-yeast")
    # the first training row of yeast-train.arff starts 0.0937,0.139771
    assert yeast.train_features[0, :2].tolist() == pytest.approx([0.0937, 0.139771])
    assert yeast.labels[0] == "Class1"
    medical = read_dataset("medical", data_dir / "mulan-medical")
    # medical is sparse and binary: about 0.4% of the features are set
    assert set(np.unique(medical.train_features)) == {0.0, 1.0}
    assert medical.train_features.mean() < 0.02
    assert medical.train_labels.sum(axis=1).min() >= 1


def test_text_sets(data_dir):
    go = read_dataset("goemotions", data_dir / "goemotions")
    assert (len(go.train_texts), len(go.test_texts), go.num_labels) == (43410, 5427, 28)
    assert go.labels[-1] == "neutral"
    sizes = np.bincount(go.train_labels.sum(axis=1))
    assert sizes[1:].tolist() == [36308, 6541, 532, 28, 1]  # SOURCE.md
    reuters = read_dataset("reuters", data_dir / "reuters21578")
    assert (len(reuters.train_texts), len(reuters.test_texts)) == (7770, 3019)
    assert reuters.num_labels == 90
    assert int((reuters.train_labels.sum(axis=1) > 1).sum()) == 1192


ARFF = """@relation toy
@attribute f1 numeric
@attribute lab1 {0,1}
@attribute f2 numeric
@attribute lab2 {0,1}
@data
"""
XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
<label name="lab1"></label><label name="lab2"></label></labels>
"""


def _toy(folder, train_rows, test_rows=("0.5,0,1.5,1",), header=ARFF, xml=XML):
    folder.mkdir(exist_ok=True)
    (folder / "toy-train.arff").write_text(header + "\n".join(train_rows) + "\n")
    with gzip.open(folder / "toy-test.arff.gz", "wt") as handle:
        handle.write(header + "\n".join(test_rows) + "\n")
    (folder / "toy.xml").write_text(xml)
    return folder


def test_labels_are_found_by_name_anywhere_in_the_header(tmp_path):
    folder = _toy(tmp_path / "toy", ["1,1,2,0", "{0 3,3 1}"][:1])
    data = read_mulan("toy", folder)
    assert data.train_features.tolist() == [[1.0, 2.0]]
    assert data.train_labels.tolist() == [[1, 0]]
    assert data.test_labels.tolist() == [[0, 1]]  # read from the .gz copy


def test_sparse_rows(tmp_path):
    # a test split needs a label somewhere (the metrics are undefined without)
    folder = _toy(tmp_path / "toy", ["{0 3,3 1}", "{1 1}"], test_rows=("{2 4,3 1}",))
    data = read_mulan("toy", folder)
    assert data.train_features.tolist() == [[3.0, 0.0], [0.0, 0.0]]
    assert data.train_labels.tolist() == [[0, 1], [1, 0]]
    assert data.test_features.tolist() == [[0.0, 4.0]]
    assert data.test_labels.tolist() == [[0, 1]]


def test_a_wrong_header_names_the_file_and_line(tmp_path):
    bad = ARFF.replace("@attribute f2 numeric", "@attribute f2 numbers")
    folder = _toy(tmp_path / "toy", ["1,1,2,0"], header=bad)
    with pytest.raises(DataError, match=r"toy-train\.arff:4: Bad @ATTRIBUTE type$"):
        read_mulan("toy", folder)


def test_a_label_missing_from_the_header_is_named(tmp_path):
    xml = XML.replace('name="lab2"', 'name="other"')
    folder = _toy(tmp_path / "toy", ["1,1,2,0"], xml=xml)
    with pytest.raises(DataError, match="other"):
        read_mulan("toy", folder)


def test_garbled_rows_are_one_line_errors(tmp_path):
    folder = _toy(tmp_path / "toy", ["1,1,2"])
    with pytest.raises(DataError, match=r"toy-train\.arff"):
        read_mulan("toy", folder)
    folder = _toy(tmp_path / "nominal", ["1,7,2,0"])
    with pytest.raises(
        DataError, match=r"toy-train\.arff:7: Data value 7 not found in nominal"
    ):
        read_mulan("toy", folder)
    numeric_labels = ARFF.replace("lab1 {0,1}", "lab1 numeric")
    folder = _toy(tmp_path / "numeric", ["1,7,2,0"], header=numeric_labels)
    with pytest.raises(DataError, match="must be 0/1"):
        read_mulan("toy", folder)


def test_read_arff_reports_shape(tmp_path):
    path = tmp_path / "a.arff"
    path.write_text(ARFF + "1,0,2,1\n")
    names, matrix = read_arff(path)
    assert names == ["f1", "lab1", "f2", "lab2"]
    assert matrix.shape == (1, 4)


def test_goemotions_bad_line(tmp_path):
    (tmp_path / "labels.txt").write_text("a\nb")
    (tmp_path / "train.tsv").write_text("hello\t0\tid1\nworld\tx\tid2\n")
    (tmp_path / "test.tsv").write_text("hi\t1\tid3\n")
    with pytest.raises(DataError, match=r"train\.tsv:2"):
        read_goemotions(tmp_path)
    (tmp_path / "train.tsv").write_text("hello\t0,5\tid1\n")
    with pytest.raises(DataError, match=r"train\.tsv:1: label id"):
        read_goemotions(tmp_path)
