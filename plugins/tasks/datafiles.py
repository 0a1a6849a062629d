"""Reading dataset files with one-line errors that name ``file:line``.

Every dataset reader (BEIR, STS, MULAN and the text sets, knowledge graphs)
reads through these helpers, so a missing file, a truncated or corrupt gzip
stream and bytes that are not UTF-8 read the same everywhere::

    /data/wn18rr/test.txt: file not found (nor test.txt.gz)
    /data/kg/train.txt.gz:40312: unreadable: the gzip data ends early (truncated file?)
    /data/stsb/train.tsv:17: not valid UTF-8

A file whose name ends in ``.gz`` is decompressed on the fly.  Lines are
counted from 1, as editors and ``sed -n`` count them; a UTF-8 byte-order mark
at the start of the file is dropped.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path

from harness.errors import DataError

__all__ = ["numbered_lines", "read_bytes", "read_text", "require_file"]

_BOM = "\ufeff"
#: what a broken gzip stream or a failing disk raises while reading
_STREAM_ERRORS = (OSError, EOFError, zlib.error)


def require_file(folder: Path, *names: str) -> Path:
    """The first of ``names`` that is a file in ``folder``, else a DataError.

    The error names the first (preferred) path and the alternatives looked for.
    """
    for name in names:
        if (folder / name).is_file():
            return folder / name
    others = f" (nor {', '.join(names[1:])})" if len(names) > 1 else ""
    raise DataError(f"{folder / names[0]}: file not found{others}")


def _open(path: Path) -> gzip.GzipFile | io.BufferedReader:
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rb")
        return path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _unreadable(path: Path, number: int, exc: BaseException) -> DataError:
    if isinstance(exc, EOFError):
        reason = "the gzip data ends early (truncated file?)"
    elif isinstance(exc, gzip.BadGzipFile | zlib.error):
        reason = f"corrupt gzip data ({exc})"
    else:
        reason = str(getattr(exc, "strerror", None) or exc)
    return DataError(f"{path}:{number}: unreadable: {reason}")


def _undecodable_line(path: Path) -> int:
    """The first line of ``path`` that is not UTF-8 (the error path only)."""
    with _open(path) as handle:
        for number, raw in enumerate(handle, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without its line terminator) for each line of ``path``.

    Blank lines are yielded too, so the numbers are the file's own.
    """
    with _open(path) as raw:
        # lines end at "\n" only, as ``wc -l`` and ``sed -n`` count them
        handle = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
        number = 0
        try:
            for number, text in enumerate(handle, 1):
                line = text.rstrip("\r\n")
                yield number, line.removeprefix(_BOM) if number == 1 else line
        except UnicodeDecodeError:
            # decoded a block at a time: find the line again, byte by byte
            bad = _undecodable_line(path)
            raise DataError(f"{path}:{bad}: not valid UTF-8") from None
        except _STREAM_ERRORS as exc:
            # every complete line before the damage was read: it is the next one
            raise _unreadable(path, number + 1, exc) from None


def read_bytes(path: Path) -> bytes:
    """The whole (decompressed) content of ``path``."""
    lines: list[bytes] = []
    with _open(path) as handle:
        try:
            # line by line, so a truncated stream is reported at its line
            for raw in handle:
                lines.append(raw)
        except _STREAM_ERRORS as exc:
            raise _unreadable(path, len(lines) + 1, exc) from None
    return b"".join(lines)


def read_text(path: Path) -> str:
    """The whole (decompressed) content of ``path`` as text."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8").removeprefix(_BOM)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line}: not valid UTF-8") from None
