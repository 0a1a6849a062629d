"""The Cranfield converter reproduces the shared BEIR copy byte for byte."""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from harness.errors import DataError
from negbench_plugins.tasks import cranfield

BEIR_FILES = ("corpus.jsonl.gz", "queries.jsonl", "qrels/test.tsv")


@pytest.fixture(scope="module")
def shared() -> Path:
    data_dir = os.environ.get("HARNESS_DATA_DIR")
    if not data_dir:
        pytest.skip("HARNESS_DATA_DIR is not set")
    folder = Path(data_dir) / "cranfield"
    if not (folder / "raw").is_dir():
        pytest.skip(f"no Cranfield copy in {data_dir}")
    return folder


def _content(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def _assert_same_beir(produced: Path, expected: Path) -> None:
    for name in BEIR_FILES:
        assert _content(produced / name) == _content(expected / name), name


def test_convert_matches_shared_copy(shared: Path, tmp_path: Path) -> None:
    out = tmp_path / "cranfield"
    cranfield.convert_cranfield(shared / "raw", out)
    _assert_same_beir(out, shared)
    for name in ("cran.all.1400.gz", "cran.qry", "cranqrel"):
        assert _content(out / "raw" / name) == _content(shared / "raw" / name)


def test_unpack_finds_files_in_a_subfolder(shared: Path, tmp_path: Path) -> None:
    # The Glasgow archive holds the plain files; put them one folder down.
    source = tmp_path / "src" / "cran"
    source.mkdir(parents=True)
    (source / "cran.all.1400").write_bytes(_content(shared / "raw/cran.all.1400.gz"))
    for name in ("cran.qry", "cranqrel"):
        shutil.copyfile(shared / "raw" / name, source / name)
    archive = tmp_path / "download" / "cran.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="cran")
    staging = tmp_path / "download" / "unpacked"
    staging.mkdir()

    cranfield.unpack_cranfield(archive, staging)

    _assert_same_beir(staging, shared)
    # the temporary extraction folder is gone; only archive and staging remain
    assert sorted(p.name for p in archive.parent.iterdir()) == [
        "cran.tar.gz",
        "unpacked",
    ]


@pytest.mark.parametrize(
    "line",
    [
        "1 31\n",  # the relevance column is missing
        "\u00b2 31 2\n",  # a digit to str.isdigit, not to int(): was a traceback
    ],
)
def test_malformed_qrels_line_names_the_file(
    shared: Path, tmp_path: Path, line: str
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("cran.all.1400.gz", "cran.qry"):
        shutil.copyfile(shared / "raw" / name, raw / name)
    lines = (shared / "raw" / "cranqrel").read_text().splitlines(keepends=True)
    lines[2] = line
    (raw / "cranqrel").write_text("".join(lines))

    with pytest.raises(DataError, match=r"cranqrel:3\b"):
        cranfield.convert_cranfield(raw, tmp_path / "out")
