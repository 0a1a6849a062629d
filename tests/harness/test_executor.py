"""The local executor's pieces that need no worker process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from itertools import accumulate

import pytest
import torch
from conftest import RECORDER

from harness.errors import UsageError
from harness.executor import check_local_devices
from harness.forkserver import FAMILY_PRELOADS, preload_modules
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
    assert preload_modules([_run("kge")]) == [
        "harness._preload",
        "harness._forkserver_exit",
    ]
    both = preload_modules([_run("retrieval"), _run("multilabel"), _run("kge")])
    assert both == [
        "harness._preload",
        "harness._preload_ranking",
        "sklearn.metrics",
        "harness._forkserver_exit",  # last: its exit callback runs first
    ]
    assert set(FAMILY_PRELOADS) <= {"retrieval", "sts", "kge", "multilabel"}


@pytest.fixture
def two_fake_gpus(monkeypatch):
    """torch in this process reports two CUDA GPUs (none is touched)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_a_device_this_machine_lacks_is_a_usage_error_naming_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_local_devices(["cpu"])
    with pytest.raises(UsageError, match=r"--device 'gpu': .*Expected one of"):
        check_local_devices(["gpu"])
    with pytest.raises(UsageError) as error:
        check_local_devices(["cpu", "cuda:0"])
    assert "--device cuda:0: no CUDA GPU is visible on this machine" in str(error.value)
    assert "use --device cpu, or --executor ray/slurm" in str(error.value)


def test_only_the_visible_gpus_may_be_named(two_fake_gpus):
    check_local_devices(["cuda", "cuda:0", "cuda:1"])
    with pytest.raises(UsageError, match="has 2 visible GPU"):
        check_local_devices(["cuda:0", "cuda:2"])


#: a driver that sees two GPUs: the local executor plans one run per GPU
FAKE_TWO_GPUS = """
import sys, torch
torch.cuda.is_available = lambda: True
torch.cuda.device_count = lambda: 2
from harness.cli import console_main
sys.argv[0] = "harness"
console_main()
"""


def test_several_gpus_run_one_run_each_at_a_time_seeing_only_their_own(
    harness_env, tmp_path
):
    """With two GPUs (CUDA_VISIBLE_DEVICES=4,6) and no --jobs, two workers
    run at once, each seeing one GPU as cuda:0; every run is stored once.
    The recorder answers the runs (after a sleep), so no GPU is needed."""
    record = tmp_path / "record.jsonl"
    env = {
        **harness_env,
        "HARNESS_TEST_RECORD": str(record),
        "RECORDER_ANSWER_RUNS": "1",
        "RECORDER_RUN_SECONDS": "1.5",
        "CUDA_VISIBLE_DEVICES": "4,6",
    }
    store = str(tmp_path / "gpus.db")
    bench = [
        *("bench", *RECORDER, "--store", store, "--task", "tiny-kge"),
        *("--model", "transe", "--loss", "nssa", "--sampler", "uniform"),
        *("--sampler", "bernoulli", "--seeds", "2"),
    ]
    done = subprocess.run(
        [sys.executable, "-c", FAKE_TWO_GPUS, *bench],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    runs = [c for c in calls if c["hook"] == "harness_run"]
    assert len(runs) == 4
    assert {c["device"] for c in runs} == {"cuda:0"}
    assert Counter(c["cuda_visible_devices"] for c in runs) == {"4": 2, "6": 2}
    driver = next(c["pid"] for c in calls if c["hook"] == "harness_session_start")
    assert len({c["pid"] for c in runs} - {driver}) == 4  # a worker per run
    # at most one run per GPU at any time, and the two GPUs busy together
    events = sorted([(c["start"], 1) for c in runs] + [(c["end"], -1) for c in runs])
    busy = list(accumulate(change for _, change in events))
    assert max(busy) == 2
    results = [sys.executable, "-m", "harness.cli", "results", "--json"]
    listed = subprocess.run(
        [*results, "--store", store],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    stored = json.loads(listed.stdout)
    assert sorted(r["status"] for r in stored) == ["ok"] * 4
