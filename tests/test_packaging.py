"""A wheel installs distinctive import names only (no bare `plugins`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from conftest import REPO


def declared_packages():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return config["packages"], config["package-dir"]


def test_every_source_folder_is_packaged():
    packages, mapping = declared_packages()
    expected = set()
    for import_name, folder in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            expected.add(".".join([import_name, *relative.parts]))
    assert set(packages) == expected


def test_wheel_has_only_distinctive_top_level_packages(tmp_path):
    # Build from a copy: setuptools writes build/ next to the sources.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("harness", "plugins", "leaderboard"):
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("negbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {
        Path(n).parts[0] for n in names if not Path(n).parts[0].endswith(".dist-info")
    }
    assert top == {"harness", "negbench_plugins", "negbench_leaderboard"}
    assert "harness/suites/quick.toml" in names
    assert "negbench_plugins/samplers/simans.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "harness = harness.cli:console_main"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )
