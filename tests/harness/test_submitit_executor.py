"""``--executor submitit-local`` (submitit's local cluster: each run a job in
a subprocess, watched exactly as a Slurm job): the local executor's results,
progress streamed back through the job folder, a dying or hung job fails only
its own run; ``--slurm KEY=VALUE`` reaches the job script; no Slurm is a
one-line usage error."""

from __future__ import annotations

import re
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import (
    RECORDER,
    assert_phases_streamed,
    executor_bench,
    results_json,
    stored_by_sampler,
)

from harness.cli import main
from harness.errors import UsageError
from harness.executor import WorkerConfig
from harness.plugin import PluginOptions
from harness.submitit_executor import SubmititExecutor, parse_slurm_parameters

pytest.importorskip("submitit")


def test_submitit_local_matches_local_and_survives_dying_and_hung_runs(
    run_harness, tiny_beir, tmp_path
):
    bench = executor_bench(tiny_beir)
    good = ("--sampler", "random", "--sampler", "topk-hard")
    record = tmp_path / "record.jsonl"
    with ThreadPoolExecutor(1) as pool:
        # meanwhile, the local executor, same seeds and threads, its own store
        # (its CPU work fills the hung job's wait)
        local = pool.submit(run_harness, *bench, *good, "--store", "local.db")
        done = run_harness(
            *bench,
            *RECORDER,
            *good,
            "--sampler",
            "segfaulting",  # kills its job's process
            "--sampler",
            "sleepy",
            "--param",
            "sampler.sleepy.seconds=300",
            "--timeout",
            "10",  # from the job's start, after the imports a local worker preloads
            "--jobs",
            "4",  # all at once: the hung job's wait overlaps the others
            "--executor",
            "submitit-local",
            "--slurm",
            "partition=gpu",  # checked by submitit, ignored by its local cluster
            "--cache-dir",
            str(tmp_path / "cache"),  # the job folders are under it
            env={"HARNESS_TEST_RECORD": str(record)},
        )
        assert local.result().returncode == 0, local.result().stderr
    assert done.returncode == 1, done.stdout + done.stderr  # some runs failed
    # stored runs' job folders are gone, but for the two failed jobs' logs
    (session,) = (tmp_path / "cache" / "submitit").iterdir()
    kept = sorted(session.iterdir())
    assert len(kept) == 2 and all(list(job.glob("*_log.err")) for job in kept)
    assert "Traceback" not in done.stdout + done.stderr  # killed jobs are quiet
    # the driver saw each good run's phases, as they happened in the jobs
    first = ["dispatched", "started"]
    assert_phases_streamed(record, ("random", "topk-hard"), first)
    by_sampler = stored_by_sampler(run_harness)
    assert len(by_sampler) == 4  # every run stored exactly once, none lost
    assert by_sampler["segfaulting"]["status"] == "failed"
    assert re.match(
        r"submitit job \d+ failed \(UncompletedJobError\) during '\w+': ",
        by_sampler["segfaulting"]["error"],
    )
    assert by_sampler["sleepy"]["error"] == "timed out after 10s (--timeout)"
    in_jobs = {s: by_sampler[s] for s in ("random", "topk-hard")}
    assert all(r["status"] == "ok" for r in in_jobs.values())
    assert all(r["environment"]["torch_threads"] == 1 for r in in_jobs.values())
    # the same numbers as the local executor's, exactly
    local_results = results_json(run_harness, "--store", "local.db")
    assert {r["sampler"]: r["metrics"] for r in local_results} == {
        s: r["metrics"] for s, r in in_jobs.items()
    }


def test_slurm_parameters_parse_and_reach_the_job_script(tmp_path, monkeypatch):
    assert parse_slurm_parameters(
        ["partition=gpu", "mem_gb=32", "slurm_account=abc", "time=1-00:00:00"]
    ) == {"partition": "gpu", "mem_gb": 32, "account": "abc", "time": "1-00:00:00"}
    with pytest.raises(UsageError, match=r"--slurm 'partition': expected KEY=VALUE"):
        parse_slurm_parameters(["partition"])

    # a fake Slurm: submitit only checks that srun exists before a submission
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in ("sbatch", "srun"):
        (bin_dir / command).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / command).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", str(bin_dir))
    config = WorkerConfig(
        plugin_options=PluginOptions(), cache_dir=str(tmp_path), threads=2
    )
    executor = SubmititExecutor(
        config=config,
        device="cuda",
        timeout=600,
        slurm=parse_slurm_parameters(["partition=gpu", "mem_gb=32", "account=abc"]),
    )
    executor.check()
    script = executor.make(tmp_path / "%j")._executor._make_submission_file_text(
        "python -m submitit.core._submit", "uid"
    )
    for line in (
        "--cpus-per-task=2",  # --threads
        "--gpus-per-node=1",  # --device cuda
        "--time=13",  # --timeout 600 s + start-up + Slurm's warning, in minutes
        "--partition=gpu",
        "--mem=32GB",
        "--account=abc",
    ):
        assert f"#SBATCH {line}\n" in script, script
    bad = SubmititExecutor(config=config, slurm={"partitoin": "gpu"})
    with pytest.raises(UsageError, match=r"^--slurm: Unknown argument 'partitoin'"):
        bad.check()


def test_executor_slurm_without_slurm_is_a_one_line_usage_error(
    run_harness, tiny_beir, tmp_path
):
    empty = tmp_path / "no-slurm-here"
    empty.mkdir()
    bench = executor_bench(tiny_beir)
    done = run_harness(*bench, "--executor", "slurm", env={"PATH": str(empty)})
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stderr.strip() == (
        "ERROR: --executor slurm: Slurm is not available on this machine (no "
        "sbatch or srun on PATH); to try the setup on this machine, use "
        "--executor submitit-local"
    )
    assert "run(s) to execute" not in done.stdout  # before any planning output


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("--slurm", "partition=gpu"),
            "ERROR: --slurm needs --executor slurm (or submitit-local)",
        ),
        (
            ("--executor", "slurm", "--slurm", "partition"),
            "ERROR: --slurm 'partition': expected KEY=VALUE, e.g. partition=gpu",
        ),
    ],
    ids=["with-local", "malformed"],
)
def test_slurm_option_usage_errors(args, error, capsys):
    assert main(["bench", "--task", "beir:nowhere", *args]) == 4
    assert capsys.readouterr().err.strip() == error
