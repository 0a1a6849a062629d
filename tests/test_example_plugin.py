"""The example plugin package (docs/examples) installs, is found and runs end to end.

It is installed with pip into a temporary folder put on ``PYTHONPATH``, so
``importlib.metadata`` sees its ``harness`` entry point exactly as it would
see an installed distribution's, and nothing is left in the environment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, TOY, results_json

EXAMPLE = REPO / "docs" / "examples" / "negbench-example-sampler"
BUILD_LITTER = ("build", "*.egg-info", "__pycache__", ".pytest_cache")


def pip_install_target(source, target):
    """``pip install --target``; skips the test where pip cannot build offline."""
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, check=False
    )
    if pip.returncode != 0:
        pytest.skip(f"pip is not available in {sys.executable}")
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed (the --no-build-isolation backend)")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-index",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_example_plugin_installs_registers_runs_and_passes_its_tests(
    run_harness, harness_env, tiny_beir, tmp_path
):
    # build from a copy: an in-tree build would litter docs/ with build/ folders
    source = tmp_path / "negbench-example-sampler"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(*BUILD_LITTER))
    target = tmp_path / "site-packages"
    pip_install_target(source, target)
    path = os.pathsep.join(p for p in (str(target), os.environ.get("PYTHONPATH")) if p)
    env = {"PYTHONPATH": path}

    listed = run_harness("plugins", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    info = next(p for p in json.loads(listed.stdout) if p["name"] == "example_sampler")
    assert info["origin"] == "entrypoint"
    assert info["detail"] == "negbench-example-sampler 0.1.0"
    assert info["components"] == {"sampler": ["semi-hard"]}

    done = run_harness(
        "bench",
        *TOY,
        "--task",
        f"beir:{tiny_beir}",
        "--param",
        "task.beir.epochs=1",
        "--param",
        "task.beir.depth=20",
        "--model",
        "toy-bow",
        "--loss",
        "infonce",
        "--sampler",
        "semi-hard",
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = results_json(run_harness)
    assert result["status"] == "ok" and result["sampler"] == "semi-hard"
    # an entry-point plugin's distribution and version are part of the run's identity
    assert result["versions"]["sampler"] == "1+negbench-example-sampler 0.1.0"
    assert result["diagnostics"]["negatives_sampled"] > 0
    assert 0.0 <= result["diagnostics"]["semi-hard.share"] <= 1.0

    # the example's own contract tests, as its author would run them
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=source,
        env={**harness_env, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "failed" not in tests.stdout
