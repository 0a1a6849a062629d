"""What a result records about the machine and software that produced it."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

__all__ = ["environment"]

PACKAGES = (
    "negbench",
    "torch",
    "numpy",
    "faiss-cpu",
    "ranx",
    "mteb",
    "sentence-transformers",
    "pluggy",
    "scikit-learn",
    "scipy",
)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def _git_commit() -> str | None:
    """The negbench source checkout's commit, if it runs from one."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout.strip()
    return f"{commit}{'-dirty' if dirty else ''}" if commit else None


@functools.cache
def _static() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: v for p in PACKAGES if (v := _version(p)) is not None},
        "git_commit": _git_commit(),
    }


@functools.cache
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict[str, Any]:
    """What could change a run's numbers: package versions, git commit,
    device, and torch's intra- and inter-op threads in this process."""
    env = dict(_static())
    env["device"] = str(device)
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
        # which physical GPU "cuda:0" was in a worker that sees only its own
        env["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    else:
        env["device_name"] = _cpu_name()
    env["torch_threads"] = torch.get_num_threads()
    env["torch_interop_threads"] = torch.get_num_interop_threads()
    return env
