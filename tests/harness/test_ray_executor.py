"""``--executor ray`` on a local Ray instance (2 CPUs, no dashboard, no usage
statistics): the local executor's results, progress streamed back from the
Ray workers, a dead worker or a hung run fails only its own run, and stored
runs are never dispatched."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from conftest import (
    RECORDER,
    assert_phases_streamed,
    executor_bench,
    results_json,
    stored_by_sampler,
)

from harness.executor import visible_device
from harness.ray_executor import RayExecutor, _drain

pytest.importorskip("ray")


def test_ray_matches_local_and_survives_dying_and_hung_runs(
    run_harness, harness_env, tiny_beir, tmp_path
):
    env = {"RAY_USAGE_STATS_ENABLED": "0"}
    bench = executor_bench(tiny_beir)
    good = ("--sampler", "random", "--sampler", "topk-hard")
    record = tmp_path / "record.jsonl"
    with ThreadPoolExecutor(1) as pool:
        # meanwhile, the local executor, same seeds and threads, its own
        # store (its CPU work fills the hung run's wait)
        local = pool.submit(run_harness, *bench, *good, "--store", "local.db")
        done = _ray_bench(run_harness, bench, good, record, env)
        assert local.result().returncode == 0, local.result().stderr
    assert done.returncode == 1, done.stdout + done.stderr  # some runs failed
    # the driver saw each good run's phases, as they happened in the workers
    assert_phases_streamed(record, ("random", "topk-hard"), ["dispatched"])
    by_sampler = stored_by_sampler(run_harness)
    assert len(by_sampler) == 4  # every run stored exactly once, none lost
    assert by_sampler["segfaulting"]["status"] == "failed"
    assert re.match(
        r"Ray worker failed \(\w+\)( during '\w+')?: ",  # the phase if it got out
        by_sampler["segfaulting"]["error"],
    )
    assert by_sampler["sleepy"]["error"] == "timed out after 15s (--timeout)"
    on_ray = {s: by_sampler[s] for s in ("random", "topk-hard")}
    assert all(r["status"] == "ok" for r in on_ray.values()), {
        s: (r["status"], r["error"]) for s, r in on_ray.items()
    }
    assert all(r["environment"]["torch_threads"] == 1 for r in on_ray.values())

    # resume: stored runs are not dispatched (no cluster is even started)
    again = run_harness(*bench, *good, "--executor", "ray", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 run(s) already completed" in again.stdout

    # the local executor, same seeds and threads: the same numbers exactly
    local_results = results_json(run_harness, "--store", "local.db")
    assert {r["sampler"]: r["metrics"] for r in local_results} == {
        s: r["metrics"] for s, r in on_ray.items()
    }


def _ray_bench(run_harness, bench, good, record, env):
    return run_harness(
        *bench,
        *RECORDER,
        *good,
        "--sampler",
        "segfaulting",  # kills its worker, also on the retry
        "--sampler",
        "sleepy",
        "--param",
        "sampler.sleepy.seconds=300",
        "--timeout",
        "15",  # from the run's start on its worker (not its dispatch)
        "--executor",
        "ray",
        env={**env, "HARNESS_TEST_RECORD": str(record)},
    )


@pytest.mark.parametrize(
    ("device", "visible", "expected"),
    [
        ("cpu", None, ("cpu", None)),
        ("cuda:1", None, ("cuda:0", "1")),
        ("cuda:1", "4,6", ("cuda:0", "6")),
    ],
)
def test_each_gpu_worker_sees_only_its_device(device, visible, expected):
    assert visible_device(device, visible) == expected
    with pytest.raises(ValueError, match="not among CUDA_VISIBLE_DEVICES"):
        visible_device("cuda:2", "4,6")


def test_a_lost_phase_board_loses_progress_not_the_bench():
    """If the progress actor's node dies, draining it gives no updates
    instead of an exception that would stop the driver."""
    ray = pytest.importorskip("ray")

    def gone(ref):
        raise ray.exceptions.RayError("the actor died")

    board = SimpleNamespace(drain=SimpleNamespace(remote=lambda: "ref"))
    fake = SimpleNamespace(exceptions=ray.exceptions, get=gone)
    assert _drain(fake, board) == []
    alive = SimpleNamespace(exceptions=ray.exceptions, get=lambda ref: [("r", "a", "")])
    assert _drain(alive, board) == [("r", "a", "")]


@pytest.mark.parametrize(
    ("device", "cluster_gpus", "per_run"),
    [
        ("cpu", 4, 0),  # --device cpu never asks for a GPU
        ("cuda", 0, 1),  # asked for: Ray waits until the cluster has one
        (None, 4, 1),  # auto: one GPU per run where the cluster has GPUs
        (None, 0, 0),
    ],
)
def test_gpu_runs_ask_ray_for_one_gpu_and_slots_follow_the_cluster(
    device, cluster_gpus, per_run
):
    cluster = {"CPU": 16.0, "GPU": float(cluster_gpus)}
    fake = SimpleNamespace(cluster_resources=lambda: cluster)
    executor = RayExecutor(config=SimpleNamespace(threads=2), device=device)
    assert executor._gpus_per_run(fake) == per_run
    # runs at once: CPUs / --threads, and no more than the GPUs for GPU runs
    expected = min(8, cluster_gpus) if per_run else 8
    assert executor._slots(fake, cpus=2, gpus=per_run) == max(1, expected)
    executor.max_in_flight = 3  # --jobs caps it
    assert executor._slots(fake, cpus=2, gpus=per_run) == max(1, min(3, expected))
