"""The contract kit's pytest plugin: registered under ``pytest11``, cheap to
import, and its fixtures work in a plugin author's own test suite."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

AUTHOR_TESTS = """
import torch
from harness.testing import SamplerContract


def test_fixtures(harness_host, harness_host_with, harness_candidate_batch,
                  harness_scored_batch, harness_tiny_beir):
    assert "random" in harness_host.registries.samplers.names()
    extended = harness_host_with("my_plugin")
    assert extended.registries.samplers.get("first-k").plugin == "my_plugin"
    assert harness_candidate_batch.known_positive.dtype == torch.bool
    assert harness_scored_batch.positive.requires_grad
    assert (harness_tiny_beir / "qrels" / "test.tsv").is_file()


def test_a_real_run_on_a_tiny_task(harness_tiny_run):
    from my_plugin import FirstK

    result = harness_tiny_run("retrieval", sampler=FirstK)
    assert result.ok, result.error
    assert result.spec.sampler == "first-k" and result.metrics["ndcg@10"] > 0


from my_plugin import FirstK


class TestFirstK(SamplerContract):
    sampler_cls = FirstK
"""

MY_PLUGIN = """
from harness import Sampler, hookimpl


class FirstK(Sampler):
    name = "first-k"
    families = frozenset({"retrieval"})

    def sample(self, batch, num_negatives, generator):
        order = batch.known_positive.float().argsort(dim=1, stable=True)
        return order[:, :num_negatives]


@hookimpl
def harness_register_samplers():
    return [FirstK]
"""


def test_registered_for_pytest_and_cheap_to_import() -> None:
    (plugin,) = [
        ep
        for ep in importlib.metadata.entry_points(group="pytest11")
        if ep.value == "harness.pytest_plugin"
    ]
    assert plugin.name == "negbench"
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, harness.pytest_plugin; print('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert probe.stdout.strip() == "False"  # torch loads only with a fixture


def test_fixtures_and_contracts_in_an_authors_suite(tmp_path: Path) -> None:
    (tmp_path / "my_plugin.py").write_text(MY_PLUGIN)
    (tmp_path / "test_my_plugin.py").write_text(AUTHOR_TESTS)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "7 passed, 1 skipped" in done.stdout
