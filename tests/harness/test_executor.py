"""The local executor's pieces that need no worker process."""

from __future__ import annotations

from harness.executor import FAMILY_PRELOADS, preload_modules
from harness.types import DatasetRef, Run, RunSpec


def _run(family: str) -> Run:
    return Run(
        spec=RunSpec(task=f"t-{family}", model="m"),
        family=family,
        dataset=DatasetRef(name="d", path=".", sha256="0"),
        versions={},
        main_metric="x",
    )


def test_the_forkserver_preloads_only_what_the_planned_families_use():
    assert preload_modules([_run("kge")]) == ["harness._preload"]
    both = preload_modules([_run("retrieval"), _run("multilabel"), _run("kge")])
    assert both == [
        "harness._preload",
        "harness._preload_ranking",
        "sklearn.metrics",
    ]
    assert set(FAMILY_PRELOADS) <= {"retrieval", "sts", "kge", "multilabel"}
