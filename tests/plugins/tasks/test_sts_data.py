"""STS readers on the real files (counts from SOURCE.md) and on malformed input."""

from __future__ import annotations

import gzip
import tarfile

import pytest

from harness.data import DataLocator
from harness.errors import DataError
from negbench_plugins.tasks.sts_data import (
    STS_YEARS,
    STSB,
    read_sick,
    read_sts_year,
    read_stsb,
    sick_files,
    sts_year_name,
    sts_years_files,
    stsb_files,
    unpack_stsbenchmark,
)

STSB_HEAD = "genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2\n"
SICK_HEAD = "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"
YEARS_HEAD = "year\tsubset\tline\tscore\tsentence1\tsentence2\n"


# -- the real files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("split", "count"), [("train", 5749), ("dev", 1500), ("test", 1379)]
)
def test_stsb_counts_and_ranges(data_dir, split, count):
    pairs = read_stsb(data_dir / "stsb" / f"{split}.tsv")
    assert len(pairs) == count
    assert len(set(pairs.ids)) == count  # filename-year-id is unique
    assert min(pairs.scores) == 0.0 and max(pairs.scores) == 5.0
    assert len(pairs.sentence1) == len(pairs.sentence2) == count


def test_stsb_first_rows_are_verbatim(data_dir):
    pairs = read_stsb(data_dir / "stsb" / "train.tsv")
    assert pairs.ids[0] == "MSRvid-2012test-0001"
    assert (pairs.sentence1[0], pairs.sentence2[0], pairs.scores[0]) == (
        "A plane is taking off.",
        "An air plane is taking off.",
        5.0,
    )


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("SICK_train.txt", 4500),
        ("SICK_trial.txt", 500),
        ("SICK_test_annotated.txt", 4927),  # CRLF line endings
    ],
)
def test_sick_counts_and_ranges(data_dir, name, count):
    pairs = read_sick(data_dir / "sick" / name)
    assert len(pairs) == count and len(set(pairs.ids)) == count
    assert 1.0 <= min(pairs.scores) and max(pairs.scores) <= 5.0
    assert not any(s.endswith("\r") for s in pairs.sentence2)


def test_sts_year_counts(data_dir):
    path = data_dir / "sts12-16" / "all.tsv.gz"
    counts = {year: len(read_sts_year(path, year)) for year in STS_YEARS}
    assert counts == {
        "STS12": 3108,
        "STS13": 1500,
        "STS14": 3750,
        "STS15": 3000,
        "STS16": 1186,
    }
    assert sum(counts.values()) == 12544
    sts12 = read_sts_year(path, 2012)
    assert sts12.ids[0] == "MSRpar-0" and sts12.scores[0] == 4.4
    assert all(0.0 <= s <= 5.0 for s in sts12.scores)


def test_dataset_sources_find_the_real_folders(data_dir, tmp_path):
    assert stsb_files(data_dir / "stsb") is not None
    assert sick_files(data_dir / "sick") is not None
    assert sts_years_files(data_dir / "sts12-16") is not None
    assert stsb_files(tmp_path) is None
    locator = DataLocator(data_dirs=[data_dir], cache_dir=tmp_path, offline=True)
    ref = locator.locate(STSB)
    assert ref.origin == "data-dir" and ref == locator.locate(STSB)


def test_unpack_rebuilds_the_stsb_layout_from_the_original_archive(data_dir, tmp_path):
    """The original Stsbenchmark.tar.gz -> the same bytes as the shared tsv files."""
    archive = tmp_path / "Stsbenchmark.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted((data_dir / "stsb" / "raw").iterdir()):
            tar.add(item, arcname=f"stsbenchmark/{item.name}")
    staging = tmp_path / "stsb"
    staging.mkdir()
    unpack_stsbenchmark(archive, staging)
    for split in ("train", "dev", "test"):
        ours = (staging / f"{split}.tsv").read_bytes()
        assert ours == (data_dir / "stsb" / f"{split}.tsv").read_bytes()
    assert stsb_files(staging) is not None


# -- malformed input -------------------------------------------------------------------


def test_stsb_errors_name_file_and_line(tmp_path):
    path = tmp_path / "train.tsv"
    row = "main-news\tMSRpar\t2012\t0001\t{score}\tA b.\tC d.\n"
    path.write_text(STSB_HEAD + row.format(score="3.0") + "x\ty\n")
    with pytest.raises(
        DataError, match=r"train\.tsv:3: expected 7 tab-separated fields"
    ):
        read_stsb(path)
    path.write_text(STSB_HEAD + row.format(score="high"))
    with pytest.raises(DataError, match=r"train\.tsv:2: score 'high' is not a number"):
        read_stsb(path)
    path.write_text(STSB_HEAD + row.format(score="5.5"))
    with pytest.raises(DataError, match=r"train\.tsv:2: score '5.5' is outside"):
        read_stsb(path)
    path.write_text(STSB_HEAD + row.format(score="1") + "\n" + row.format(score="2"))
    with pytest.raises(
        DataError,
        match=r"train\.tsv:4: duplicate pair id 'MSRpar-2012-0001' \(first on line 2\)",
    ):
        read_stsb(path)
    path.write_text("genre\tscore\n" + row.format(score="1"))
    with pytest.raises(DataError, match=r"train\.tsv:1: expected the header"):
        read_stsb(path)
    path.write_text(STSB_HEAD + "main-news\tMSRpar\t2012\t0001\t1.0\t \tC d.\n")
    with pytest.raises(DataError, match=r"train\.tsv:2: empty sentence"):
        read_stsb(path)
    path.write_bytes(STSB_HEAD.encode() + b"\xff\xfe\n")
    with pytest.raises(DataError, match=r"train\.tsv:2: not valid UTF-8"):
        read_stsb(path)
    path.write_text(STSB_HEAD)
    with pytest.raises(DataError, match=r"train\.tsv: no pairs"):
        read_stsb(path)
    path.write_text("")
    with pytest.raises(DataError, match=r"train\.tsv: the file is empty"):
        read_stsb(path)


def test_error_messages_are_one_line(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("a\tb\tc\n")
    with pytest.raises(DataError) as caught:
        read_stsb(path)
    assert "\n" not in str(caught.value)


def test_sick_errors_and_crlf(tmp_path):
    path = tmp_path / "SICK_train.txt"
    path.write_bytes(
        (
            SICK_HEAD
            + "1\tA dog runs.\tA dog is running.\t4.5\tENTAILMENT\n"
            + "2\tA cat.\tA car.\t1.5\tNEUTRAL\n"
        )
        .replace("\n", "\r\n")
        .encode()
    )
    pairs = read_sick(path)
    assert pairs.ids == ["1", "2"] and pairs.sentence2 == [
        "A dog is running.",
        "A car.",
    ]
    assert pairs.scores == [4.5, 1.5]
    path.write_text(SICK_HEAD + "1\tA dog runs.\tA dog is running.\t0.5\tNEUTRAL\n")
    with pytest.raises(
        DataError, match=r"SICK_train\.txt:2: score '0.5' is outside \[1, 5\]"
    ):
        read_sick(path)
    path.write_text(SICK_HEAD + "1\tA dog runs.\tA dog is running.\t4.5\n")
    with pytest.raises(
        DataError, match=r"SICK_train\.txt:2: expected 5 tab-separated fields"
    ):
        read_sick(path)


def test_sts_year_errors(tmp_path):
    path = tmp_path / "all.tsv.gz"
    good = "STS12\tMSRpar\t0\t4.4\tA b.\tC d.\n"

    def write(text: str) -> None:
        with gzip.open(path, "wt", encoding="utf-8") as out:
            out.write(text)

    write(YEARS_HEAD + good + "STS17\tx\t0\t1.0\tA.\tB.\n")
    with pytest.raises(DataError, match=r"all\.tsv\.gz:3: year 'STS17' is not one of"):
        read_sts_year(path, "STS12")
    write(YEARS_HEAD + good + "STS12\tMSRpar\tten\t1.0\tA.\tB.\n")
    with pytest.raises(DataError, match=r"all\.tsv\.gz:3: line 'ten' is not a line"):
        read_sts_year(path, "STS12")
    write(YEARS_HEAD + good + good.replace("\t0\t4.4", "\t1\t2.0"))
    assert len(read_sts_year(path, "sts12")) == 2
    # one score for every pair: Spearman's rho was NaN, after a whole run
    write(YEARS_HEAD + good + good.replace("\t0\t", "\t1\t"))
    with pytest.raises(
        DataError,
        match=r"all\.tsv\.gz: every one of the 2 pairs for STS12 has the score 4\.4; "
        "the correlations are undefined",
    ):
        read_sts_year(path, "STS12")
    with pytest.raises(DataError, match=r"all\.tsv\.gz: no pairs for STS13"):
        read_sts_year(path, 13)
    path.write_bytes(gzip.compress((YEARS_HEAD + good * 50).encode())[:60])
    with pytest.raises(DataError, match=r"all\.tsv\.gz:\d+: unreadable"):
        read_sts_year(path, "STS12")


def test_sts_year_names():
    assert [sts_year_name(y) for y in (12, "2013", "sts14", "STS15", " 16 ")] == [
        "STS12",
        "STS13",
        "STS14",
        "STS15",
        "STS16",
    ]
    with pytest.raises(ValueError, match="unknown STS year"):
        sts_year_name(17)
