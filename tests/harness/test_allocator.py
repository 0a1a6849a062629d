"""The malloc settings apply on glibc and are a harmless no-op elsewhere."""

from __future__ import annotations

import platform

import pytest
import torch

from harness.allocator import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_the_thresholds() -> None:
    assert keep_freed_memory() is True
    # the process still allocates and frees large tensors normally
    for _ in range(3):
        assert float(torch.ones(8 << 20).sum()) == float(8 << 20)


def test_no_libc_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ctypes.util.find_library", lambda name: None)
    assert keep_freed_memory() is False
