"""DataLocator (data dirs, cache, download, offline), fingerprint and ArrayCache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from harness.cache import ArrayCache
from harness.data import DataLocator, DatasetSource, fingerprint
from harness.errors import DatasetUnavailable

NAME = "toy"
HOW = "Put a 'toy/' folder with a.txt and b.txt into a data dir."
FILES = ("a.txt", "sub/b.txt")


def toy_files(folder: Path) -> list[Path] | None:
    paths = [folder / f for f in FILES]
    return paths if all(p.is_file() for p in paths) else None


def make_source(url: str | None = None) -> DatasetSource:
    return DatasetSource(name=NAME, files=toy_files, url=url, how_to_get=HOW)


def write_dataset(folder: Path, content: str = "alpha") -> Path:
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_text(f"{content}\n")
    (folder / "sub" / "b.txt").write_text("beta\n")
    return folder


def build_zip(path: Path, content: str = "alpha", top: str = "toy-v1") -> str:
    """A zip with one top folder holding the dataset; returns its file:// URL."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{top}/a.txt", f"{content}\n")
        archive.writestr(f"{top}/sub/b.txt", "beta\n")
    return path.as_uri()


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


# -- data dirs and cache ---------------------------------------------------------------


def test_first_data_dir_with_a_complete_folder_wins(tmp_path: Path):
    d1, d2, d3 = tmp_path / "d1", tmp_path / "d2", tmp_path / "d3"
    (d1 / NAME).mkdir(parents=True)
    (d1 / NAME / "a.txt").write_text("incomplete\n")  # b.txt missing
    write_dataset(d2 / NAME, "second")
    write_dataset(d3 / NAME, "third")
    empty = tmp_path / "empty"  # no dataset folder at all
    locator = DataLocator(data_dirs=[empty, d1, d2, d3], cache_dir=tmp_path / "cache")
    ref = locator.locate(make_source())
    assert ref.name == NAME
    assert ref.origin == "data-dir"
    assert Path(ref.path) == d2 / NAME
    assert ref.sha256 == fingerprint(d2 / NAME, toy_files(d2 / NAME) or [])


def test_data_dir_preferred_over_cache(tmp_path: Path):
    write_dataset(tmp_path / "d" / NAME, "data")
    write_dataset(tmp_path / "cache" / "datasets" / NAME, "cache")
    locator = DataLocator(data_dirs=[tmp_path / "d"], cache_dir=tmp_path / "cache")
    ref = locator.locate(make_source())
    assert (ref.origin, Path(ref.path)) == ("data-dir", tmp_path / "d" / NAME)


def test_falls_back_to_the_cache(tmp_path: Path):
    (tmp_path / "d" / NAME).mkdir(parents=True)  # empty, so incomplete
    cached = write_dataset(tmp_path / "cache" / "datasets" / NAME)
    locator = DataLocator(data_dirs=[tmp_path / "d"], cache_dir=tmp_path / "cache")
    ref = locator.locate(make_source(url="http://127.0.0.1:9/never-used.zip"))
    assert ref.origin == "cache"
    assert Path(ref.path) == cached
    assert locator.download_dir == tmp_path / "cache" / "datasets"


def test_a_file_named_like_the_dataset_is_not_a_folder(tmp_path: Path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / NAME).write_text("not a folder")
    write_dataset(tmp_path / "cache" / "datasets" / NAME)
    locator = DataLocator(data_dirs=[tmp_path / "d"], cache_dir=tmp_path / "cache")
    assert locator.locate(make_source()).origin == "cache"


# -- fingerprint -----------------------------------------------------------------------


def test_fingerprint_tracks_bytes_and_names_not_order(tmp_path: Path):
    root = write_dataset(tmp_path / "ds")
    files = toy_files(root)
    assert files is not None
    base = fingerprint(root, files)
    assert len(base) == 64
    assert fingerprint(root, list(reversed(files))) == base
    assert fingerprint(root, iter(files)) == base  # any iterable

    # the same content elsewhere gets the same fingerprint (names are relative)
    other = write_dataset(tmp_path / "elsewhere" / "ds")
    assert fingerprint(other, toy_files(other) or []) == base

    # one byte changed
    (root / "a.txt").write_text("alphb\n")
    changed = fingerprint(root, files)
    assert changed != base
    (root / "a.txt").write_text("alpha\n")
    assert fingerprint(root, files) == base

    # one file renamed, same bytes
    (root / "a.txt").rename(root / "c.txt")
    renamed = [root / "c.txt", root / "sub" / "b.txt"]
    assert fingerprint(root, renamed) not in {base, changed}


def test_fingerprint_does_not_let_bytes_move_between_files(tmp_path: Path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "x").write_bytes(b"ab")
    (root / "y").write_bytes(b"c")
    first = fingerprint(root, [root / "x", root / "y"])
    (root / "x").write_bytes(b"a")
    (root / "y").write_bytes(b"bc")
    assert fingerprint(root, [root / "x", root / "y"]) != first


# -- download --------------------------------------------------------------------------


def test_download_unpacks_into_cache_and_records_checksum(tmp_path: Path):
    archive = tmp_path / "src" / "toy.zip"
    archive.parent.mkdir()
    url = build_zip(archive)
    cache = tmp_path / "cache"
    locator = DataLocator(data_dirs=[tmp_path / "d"], cache_dir=cache)
    ref = locator.locate(make_source(url=url))
    folder = cache / "datasets" / NAME
    assert ref.origin == "download"
    assert Path(ref.path) == folder
    # the archive's top folder is stripped: its content is the dataset
    assert (folder / "a.txt").read_text() == "alpha\n"
    assert (folder / "sub" / "b.txt").read_text() == "beta\n"
    assert not (folder / "toy-v1").exists()
    assert ref.sha256 == fingerprint(folder, toy_files(folder) or [])

    checksums = json.loads((cache / "datasets" / "checksums.json").read_text())
    assert checksums == {url: hashlib.sha256(archive.read_bytes()).hexdigest()}
    # no temporary folders left next to the dataset
    assert sorted(p.name for p in (cache / "datasets").iterdir()) == [
        "checksums.json",
        NAME,
    ]

    # second time: found in the cache, not downloaded again
    archive.unlink()
    again = locator.locate(make_source(url=url))
    assert again.origin == "cache"
    assert again.sha256 == ref.sha256


def test_same_archive_downloaded_again_is_accepted(tmp_path: Path):
    url = build_zip(tmp_path / "toy.zip")
    cache = tmp_path / "cache"
    locator = DataLocator(cache_dir=cache)
    first = locator.locate(make_source(url=url))
    checksums = (cache / "datasets" / "checksums.json").read_text()
    shutil.rmtree(cache / "datasets" / NAME)
    second = locator.locate(make_source(url=url))
    assert second.origin == "download"
    assert second.sha256 == first.sha256
    assert (cache / "datasets" / "checksums.json").read_text() == checksums


def test_changed_archive_at_the_same_url_is_refused(tmp_path: Path):
    archive = tmp_path / "toy.zip"
    url = build_zip(archive, content="alpha")
    recorded = hashlib.sha256(archive.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    locator = DataLocator(cache_dir=cache)
    locator.locate(make_source(url=url))
    checksums_path = cache / "datasets" / "checksums.json"
    checksums_before = checksums_path.read_bytes()

    shutil.rmtree(cache / "datasets" / NAME)
    build_zip(archive, content="tampered")
    assert hashlib.sha256(archive.read_bytes()).hexdigest() != recorded

    with pytest.raises(DatasetUnavailable) as info:
        locator.locate(make_source(url=url))
    message = str(info.value)
    assert recorded[:12] in message
    assert "refus" in message
    assert f"'{NAME}'" in message
    # nothing half-written: no dataset folder, no temp dirs, checksums untouched
    assert not (cache / "datasets" / NAME).exists()
    assert sorted(p.name for p in (cache / "datasets").iterdir()) == ["checksums.json"]
    assert checksums_path.read_bytes() == checksums_before


def test_broken_archive_is_a_failed_download_and_leaves_nothing(tmp_path: Path):
    archive = tmp_path / "toy.zip"
    archive.write_bytes(b"this is not a zip file" * 10)
    cache = tmp_path / "cache"
    locator = DataLocator(cache_dir=cache)
    with pytest.raises(DatasetUnavailable, match="could not unpack"):
        locator.locate(make_source(url=archive.as_uri()))
    assert not (cache / "datasets" / NAME).exists()
    assert not (cache / "datasets" / "checksums.json").exists()
    assert list((cache / "datasets").iterdir()) == []


def test_offline_message_is_one_line_and_says_how_to_get_it(tmp_path: Path):
    url = build_zip(tmp_path / "toy.zip")
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    cache = tmp_path / "cache"
    locator = DataLocator(data_dirs=[d1, d2], cache_dir=cache, offline=True)
    with pytest.raises(DatasetUnavailable) as info:
        locator.locate(make_source(url=url))
    message = str(info.value)
    assert "\n" not in message
    assert f"'{NAME}'" in message
    for folder in (d1 / NAME, d2 / NAME, cache / "datasets" / NAME):
        assert str(folder) in message
    assert "HARNESS_OFFLINE" in message
    assert HOW in message
    # offline means nothing was fetched or created
    assert not (cache / "datasets" / NAME).exists()


def test_no_public_download_says_so(tmp_path: Path):
    locator = DataLocator(cache_dir=tmp_path / "cache")
    with pytest.raises(DatasetUnavailable, match="no public download") as info:
        locator.locate(make_source(url=None))
    assert HOW in str(info.value)


def test_unreachable_url_fails_fast(tmp_path: Path, no_proxy: None):
    url = "http://127.0.0.1:9/x.zip"  # port 9 (discard) refuses connections
    locator = DataLocator(cache_dir=tmp_path / "cache")
    start = time.monotonic()
    with pytest.raises(DatasetUnavailable) as info:
        locator.locate(make_source(url=url))
    assert time.monotonic() - start < 15
    message = str(info.value)
    assert url in message
    assert "failed" in message
    assert "\n" not in message
    assert not (tmp_path / "cache" / "datasets" / NAME).exists()


# -- from_env and locate_path ----------------------------------------------------------


def test_from_env_reads_data_dirs_and_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    monkeypatch.setenv("HARNESS_DATA_DIR", f"{a}{os.pathsep}{os.pathsep}{b}")
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "envcache"))
    locator = DataLocator.from_env(data_dirs=[c])
    assert list(locator.data_dirs) == [c, a, b]  # explicit first, empties skipped
    assert locator.offline is True
    assert locator.cache_dir == tmp_path / "envcache"

    explicit = DataLocator.from_env(cache_dir=tmp_path / "x", offline=False)
    assert explicit.offline is False
    assert explicit.cache_dir == tmp_path / "x"


@pytest.mark.parametrize(
    ("value", "offline"), [(None, False), ("", False), ("0", False), ("1", True)]
)
def test_from_env_offline_values(
    value: str | None, offline: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    if value is None:
        monkeypatch.delenv("HARNESS_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HARNESS_OFFLINE", value)
    locator = DataLocator.from_env(cache_dir=tmp_path)
    assert locator.offline is offline
    assert list(locator.data_dirs) == []


def test_from_env_locates_in_env_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    write_dataset(tmp_path / "b" / NAME)
    monkeypatch.setenv(
        "HARNESS_DATA_DIR", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}"
    )
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    ref = DataLocator.from_env(cache_dir=tmp_path / "cache").locate(make_source())
    assert (ref.origin, Path(ref.path)) == ("data-dir", tmp_path / "b" / NAME)


def test_locate_path(tmp_path: Path):
    locator = DataLocator(cache_dir=tmp_path / "cache")
    incomplete = tmp_path / "partial"
    incomplete.mkdir()
    (incomplete / "a.txt").write_text("x")
    with pytest.raises(DatasetUnavailable) as info:
        locator.locate_path("beir:partial", incomplete, make_source())
    assert "beir:partial" in str(info.value)
    assert str(incomplete) in str(info.value)
    assert HOW in str(info.value)
    with pytest.raises(DatasetUnavailable):
        locator.locate_path("beir:missing", tmp_path / "missing", make_source())

    complete = write_dataset(tmp_path / "full")
    ref = locator.locate_path("beir:full", complete, make_source())
    assert (ref.name, ref.origin, Path(ref.path)) == ("beir:full", "path", complete)
    assert ref.sha256 == fingerprint(complete, toy_files(complete) or [])


# -- ArrayCache ------------------------------------------------------------------------


def test_array_cache_computes_once(tmp_path: Path):
    cache = ArrayCache(tmp_path / "arrays")
    calls: list[int] = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.arange(12, dtype=np.float32).reshape(3, 4)

    first, hit1 = cache.get_or_compute("emb", "k1", compute)
    second, hit2 = cache.get_or_compute("emb", "k1", compute)
    assert (hit1, hit2) == (False, True)
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)
    assert second.dtype == np.float32
    assert cache.path("emb", "k1").is_file()

    # another key or namespace computes again
    cache.get_or_compute("emb", "k2", compute)
    cache.get_or_compute("other", "k1", compute)
    assert len(calls) == 3

    # a fresh cache object over the same root sees the stored array
    again, hit = ArrayCache(tmp_path / "arrays").get_or_compute("emb", "k1", compute)
    assert hit
    assert len(calls) == 3
    np.testing.assert_array_equal(again, first)


def test_array_cache_ignores_leftover_temp_files(tmp_path: Path):
    cache = ArrayCache(tmp_path)
    folder = tmp_path / "emb"
    folder.mkdir()
    (folder / "k.99999.tmp.npy").write_bytes(b"half-written garbage")
    (folder / f"k.{os.getpid()}.tmp.npy").write_bytes(b"garbage from this pid")
    expected = np.array([1.0, 2.0, 3.0])
    array, hit = cache.get_or_compute("emb", "k", lambda: expected)
    assert not hit
    np.testing.assert_array_equal(array, expected)
    loaded, hit = cache.get_or_compute("emb", "k", lambda: pytest.fail("recomputed"))
    assert hit
    np.testing.assert_array_equal(loaded, expected)
