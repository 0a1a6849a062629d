"""Finding datasets: data directories, then the cache, then a download.

A task describes its dataset with a :class:`DatasetSource`.  The locator looks
for a complete copy in each ``--data-dir`` / ``HARNESS_DATA_DIR`` folder (one
sub-folder per dataset), then in ``<cache>/datasets``, then downloads it from
its canonical public source when the machine is online.  The sha256 of every
downloaded archive is recorded on first download and checked on later ones.
Offline and missing, the task's runs are skipped with one line that says how
to provide the data; nothing hangs (downloads have a short connect timeout).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DatasetUnavailable
from .types import DatasetRef

__all__ = [
    "DataLocator",
    "DatasetSource",
    "default_cache_dir",
    "fingerprint",
]

CONNECT_TIMEOUT_S = 10.0


def default_cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR``, else ``$XDG_CACHE_HOME/negbench``, else ~/.cache."""
    if os.environ.get("HARNESS_CACHE_DIR"):
        return Path(os.environ["HARNESS_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "negbench"


def fingerprint(root: Path, files: Iterable[Path]) -> str:
    """sha256 over the relative name and the bytes of each file, in name order."""
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda f: f.relative_to(root).as_posix()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetSource:
    """How to recognise, fingerprint and fetch one dataset.

    :param name: folder name under a data dir (``"scifact"``).
    :param files: callable returning the files the task will read inside a
        folder, or None when the folder is incomplete.
    :param url: canonical public download (zip, tar.gz or a single file).
    :param unpack: turns the downloaded file into the folder layout the task
        reads (default: extract an archive whose top folder is the dataset).
    :param how_to_get: one sentence telling the user how to provide the data.
    :param embedded: returns a folder holding a copy shipped inside an
        installed package (PyKEEN's Nations/UMLS/Kinship), or None; tried after
        the data dirs and the cache, before any download.
    :param check: reads a located folder and raises
        :class:`~harness.errors.DataError` on bad input.  Called in the main
        process before any run starts (once per fingerprint: a marker under
        ``<cache>/checked`` remembers a clean read), so a broken file stops
        the session with one line instead of failing every run that reads it.
    """

    name: str
    files: Callable[[Path], Sequence[Path] | None]
    url: str | None = None
    unpack: Callable[[Path, Path], None] | None = None
    how_to_get: str = ""
    embedded: Callable[[], Path | None] | None = None
    check: Callable[[Path], object] | None = None


@dataclass(slots=True, kw_only=True)
class DataLocator:
    """Search path for datasets shared by all tasks of a session."""

    data_dirs: Sequence[Path] = field(default_factory=list)
    cache_dir: Path = field(default_factory=default_cache_dir)
    offline: bool = False

    @classmethod
    def from_env(
        cls,
        data_dirs: Iterable[str | Path] = (),
        cache_dir: str | Path | None = None,
        offline: bool | None = None,
    ) -> DataLocator:
        dirs = [Path(d).expanduser() for d in data_dirs]
        for env_dir in os.environ.get("HARNESS_DATA_DIR", "").split(os.pathsep):
            if env_dir.strip():
                dirs.append(Path(env_dir.strip()).expanduser())
        if offline is None:
            flag = os.environ.get("HARNESS_OFFLINE", "").strip().lower()
            offline = flag not in ("", "0", "false", "no")
        return cls(
            data_dirs=dirs,
            cache_dir=Path(cache_dir) if cache_dir else default_cache_dir(),
            offline=offline,
        )

    @property
    def download_dir(self) -> Path:
        return self.cache_dir / "datasets"

    def locate(self, source: DatasetSource) -> DatasetRef:
        """Find ``source`` and fingerprint it, downloading if needed."""
        for origin, folder in self._candidates(source):
            files = source.files(folder) if folder.is_dir() else None
            if files:
                return self._checked(
                    source,
                    DatasetRef(
                        name=source.name,
                        path=str(folder),
                        sha256=fingerprint(folder, files),
                        origin=origin,
                    ),
                )
        folder = self.download_dir / source.name
        problem = self._download(source, folder)
        files = source.files(folder) if problem is None else None
        if files:
            return self._checked(
                source,
                DatasetRef(
                    name=source.name,
                    path=str(folder),
                    sha256=fingerprint(folder, files),
                    origin="download",
                ),
            )
        searched = ", ".join(str(f) for _, f in self._candidates(source)) or "(none)"
        raise DatasetUnavailable(
            f"dataset '{source.name}' not found (looked in {searched})"
            f"{'; ' + problem if problem else ''}. {source.how_to_get}".rstrip()
        )

    def locate_path(self, name: str, folder: Path, source: DatasetSource) -> DatasetRef:
        """Fingerprint a dataset given by explicit path (``beir:PATH``)."""
        files = source.files(folder) if folder.is_dir() else None
        if not files:
            raise DatasetUnavailable(
                f"dataset '{name}': {folder} is not a complete dataset folder. "
                f"{source.how_to_get}".rstrip()
            )
        return self._checked(
            source,
            DatasetRef(
                name=name,
                path=str(folder),
                sha256=fingerprint(folder, files),
                origin="path",
            ),
        )

    def _checked(self, source: DatasetSource, ref: DatasetRef) -> DatasetRef:
        """Run ``source.check`` on a fingerprint not yet seen clean."""
        if source.check is None:
            return ref
        marker = self.cache_dir / "checked" / f"{ref.sha256}-{source.name}"
        if not marker.exists():
            source.check(Path(ref.path))  # raises DataError
            with contextlib.suppress(OSError):  # a read-only cache re-checks
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
        return ref

    def _candidates(self, source: DatasetSource) -> list[tuple[str, Path]]:
        found = [("data-dir", d / source.name) for d in self.data_dirs]
        found.append(("cache", self.download_dir / source.name))
        embedded = source.embedded() if source.embedded is not None else None
        if embedded is not None:
            found.append(("package", embedded))
        return found

    def _download(self, source: DatasetSource, folder: Path) -> str | None:
        """Download into ``folder``; return a reason string on failure."""
        if self.offline:
            return "downloads are off (HARNESS_OFFLINE / --offline)"
        if source.url is None:
            return "it has no public download"
        self.download_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.download_dir) as tmp:
            archive = Path(tmp) / Path(source.url).name
            try:
                sha = _fetch(source.url, archive)
            except (OSError, urllib.error.URLError) as exc:
                return f"download from {source.url} failed ({_reason(exc)})"
            known = self._checksums()
            if source.url in known and known[source.url] != sha:
                return (
                    f"download from {source.url} has sha256 {sha[:12]}..., but the "
                    f"first download recorded {known[source.url][:12]}...; refusing it"
                )
            staging = Path(tmp) / "unpacked"
            staging.mkdir()
            unpack = source.unpack or _unpack_archive
            try:
                unpack(archive, staging)
            except Exception as exc:  # a broken archive is a failed download
                return f"could not unpack {archive.name}: {exc}"
            if folder.exists():
                shutil.rmtree(folder)
            shutil.move(str(staging), folder)
            self._record_checksum(source.url, sha)
        return None

    def _checksums(self) -> dict[str, str]:
        path = self.download_dir / "checksums.json"
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            return dict(json.loads(path.read_text()))
        return {}

    def _record_checksum(self, url: str, sha: str) -> None:
        known = self._checksums()
        known[url] = sha
        path = self.download_dir / "checksums.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
        tmp.replace(path)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return (
        f"offline? {reason}"
        if isinstance(reason, OSError | socket.gaierror)
        else str(reason)
    )


def _fetch(url: str, target: Path) -> str:
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "negbench"})
    with urllib.request.urlopen(request, timeout=CONNECT_TIMEOUT_S) as response:
        with target.open("wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
    return digest.hexdigest()


def _unpack_archive(archive: Path, staging: Path) -> None:
    """Extract an archive; if it has one top folder, its content is the dataset."""
    extracted = staging.parent / "extracted"
    shutil.unpack_archive(str(archive), str(extracted))
    entries = [e for e in extracted.iterdir() if not e.name.startswith("__MACOSX")]
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() else extracted
    for item in root.iterdir():
        shutil.move(str(item), staging / item.name)
