"""negbench's pytest plugin (entry point ``pytest11``): fixtures for plugin authors.

pytest loads it in every project where negbench is installed, so importing
it costs nothing: torch and the harness load only when a fixture is used.
The contracts themselves are classes to subclass (:mod:`harness.testing`)::

    from harness.testing import SamplerContract
    from my_plugin import MySampler

    class TestMySampler(SamplerContract):
        sampler_cls = MySampler

    def test_my_sampler_is_registered(harness_host_with):
        host = harness_host_with("my_plugin")
        assert host.registries.samplers.get("my-sampler").cls is MySampler

Fixtures: ``harness_host`` (a fresh plugin manager with negbench's built-ins
only), ``harness_host_with`` (the same plus the modules you name),
``harness_candidate_batch`` and ``harness_scored_batch`` (what a sampler and
a loss receive in a retrieval run), ``harness_tiny_beir`` (a small BEIR
folder for an end-to-end ``harness bench --task beir:FOLDER``) and
``harness_tiny_run`` (one real run in the test process on the tiny
in-memory task of a family).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def harness_host() -> Any:
    """A fresh plugin manager with the built-ins only (no installed plugins)."""
    from harness.plugin import PluginOptions, make_plugin_host

    return make_plugin_host(PluginOptions(autoload=False))


@pytest.fixture
def harness_host_with() -> Callable[..., Any]:
    """``harness_host_with("my_plugin", ...)``: built-ins plus these modules."""
    from harness.plugin import PluginOptions, make_plugin_host

    def make(*modules: str) -> Any:
        return make_plugin_host(PluginOptions(autoload=False, modules=modules))

    return make


@pytest.fixture
def harness_candidate_batch() -> Any:
    """A retrieval-shaped :class:`harness.CandidateBatch` (8 anchors x 30
    candidates, 2 known positives per row, descending scores)."""
    from harness.testing import make_candidate_batch

    return make_candidate_batch()


@pytest.fixture
def harness_scored_batch() -> Any:
    """A :class:`harness.types.ScoredBatch` whose scores require grad."""
    from harness.testing import make_scored_batch

    return make_scored_batch()


@pytest.fixture
def harness_tiny_beir(tmp_path: Path) -> Path:
    """A tiny BEIR folder (80 documents, 40 train and 20 test queries)."""
    from harness.testing import write_tiny_beir

    return write_tiny_beir(tmp_path / "tiny-beir")


@pytest.fixture
def harness_tiny_run() -> Callable[..., Any]:
    """``harness_tiny_run("kge", sampler=MySampler)``: one real seed-0 run on
    the family's tiny in-memory task, in the test process; the classes you
    pass replace the family's partner of their kind.  Returns the
    :class:`harness.types.RunResult`."""
    from harness.testing import TINY_TASKS, run_in_process

    def run(family: str, **classes: Any) -> Any:
        return run_in_process(
            task=TINY_TASKS[family],
            components=tuple(classes.values()),
            **{kind: cls.name for kind, cls in classes.items()},
        )

    return run
