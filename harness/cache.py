"""Content-addressed on-disk cache for arrays (frozen embeddings, features).

Keys are sha256 digests of everything that determines the array (model id,
the exact texts, options), so a hit is always valid and nothing needs
invalidating.  Writes are atomic (temp file + rename) and a per-key file lock
makes parallel workers wait for one computation instead of repeating it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

__all__ = ["ArrayCache", "digest_texts"]


def digest_texts(texts: Iterable[str]) -> str:
    """sha256 of a sequence of texts (order matters)."""
    digest = hashlib.sha256()
    for text in texts:
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


class ArrayCache:
    """``get_or_compute(namespace, key, compute)`` over ``root/namespace/*.npy``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, namespace: str, key: str) -> Path:
        return self.root / namespace / f"{key}.npy"

    def get_or_compute(
        self, namespace: str, key: str, compute: Callable[[], np.ndarray]
    ) -> tuple[np.ndarray, bool]:
        """Return ``(array, hit)``; ``compute`` runs at most once per key."""
        target = self.path(namespace, key)
        if target.exists():
            return np.load(target), True
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be computing it
            if target.exists():
                return np.load(target), True
            array = compute()
            tmp = target.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, array)
            tmp.replace(target)
            return array, False
