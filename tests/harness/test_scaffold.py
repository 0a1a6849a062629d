"""``harness new-plugin``: the package installs, passes its own contract
tests unchanged, and negbench discovers it through its entry point."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main

needs_pip = pytest.mark.skipif(
    importlib.util.find_spec("pip") is None
    or importlib.util.find_spec("setuptools") is None,
    reason="needs pip and setuptools to install the generated package",
)


@needs_pip
def test_scaffolds_install_pass_their_tests_and_register(
    tmp_path: Path, harness_env: dict[str, str]
) -> None:
    packages = {
        "soft-hard": "sampler",
        "tight-margin": "loss",
        "diag-bilinear": "model",
        "my-graph": "task",
    }
    for name, kind in packages.items():
        assert main(["new-plugin", name, "--kind", kind, "--dir", str(tmp_path)]) == 0
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            *(str(tmp_path / name) for name in packages),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # not pytest's test folders: where negbench is an editable install,
    # tests/harness would shadow the harness package (a namespace package)
    test_root = str(Path(__file__).resolve().parents[1])
    path = [entry for entry in sys.path if not entry.startswith(test_root)]
    env = {**harness_env, "PYTHONPATH": os.pathsep.join([str(site), *path])}
    for package in packages:
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=tmp_path / package,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert tests.returncode == 0, tests.stdout + tests.stderr
        assert "passed" in tests.stdout and "failed" not in tests.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "harness.cli", "plugins", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    found = {p["name"]: p for p in json.loads(listed.stdout)}
    assert found["soft_hard"]["origin"] == "entrypoint"
    assert found["soft_hard"]["components"] == {"sampler": ["soft-hard"]}
    assert found["tight_margin"]["components"] == {"loss": ["tight-margin"]}
    assert found["diag_bilinear"]["components"] == {"model": ["diag-bilinear"]}
    assert found["my_graph"]["components"] == {"task": ["my-graph"]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad_Name"], "plugin name 'Bad_Name': use lower-case words joined by '-'"),
        (
            ["my-thing", "--kind", "trainer"],
            "--kind trainer: choose one of sampler, loss, model, task",
        ),
    ],
)
def test_bad_scaffold_requests_are_usage_errors(args, message, tmp_path, capsys):
    assert main(["new-plugin", *args, "--dir", str(tmp_path)]) == 4
    assert capsys.readouterr().err.startswith(f"ERROR: {message}")
    assert not any(tmp_path.iterdir())  # nothing written


def test_an_existing_folder_is_never_overwritten(tmp_path, capsys):
    (tmp_path / "soft-hard").mkdir()
    assert main(["new-plugin", "soft-hard", "--dir", str(tmp_path)]) == 4
    assert "already exists; nothing was written" in capsys.readouterr().err
