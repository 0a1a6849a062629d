"""``kill -9`` at random moments, as a user would do it (slow: ``tox -e slow``).

`test_cli.py` kills the bench at each named point (mining, training,
evaluation, the store write) on a toy task.  This test does what a user
does instead: it starts a real matrix (three task families on real data,
in worker processes), kills it with SIGKILL at a random moment, sometimes
while a second bench shares the store, sometimes with its whole process
group, and starts it again; eight times, and then the same command is left
to finish.  What is stored must be whole and right after every kill, and
in the end every run must be stored exactly once, with the metrics of an
uninterrupted bench of the same matrix.

The random moments come from ``NEGBENCH_KILL_SEED`` (default: a fresh
seed, printed on failure), so a failure can be replayed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_no_process_left, assert_store_is_whole

pytestmark = pytest.mark.slow

# Three families of runs of a few seconds each, with different phases (the
# KGE runs mine with top-k and HaSa): a random moment lands in mining,
# training, evaluation, a store write or between runs.
SUITE = """
name = "kill-at-random"
seeds = 2

[[matrix]]
task = "nations"
model = "distmult"
loss = "nssa"
sampler = ["uniform", "topk-hard", "hasa"]

[[matrix]]
task = "yeast"
model = "mlp"
loss = ["bce", "asl"]
sampler = "all"

[[matrix]]
task = "synth-fn"
model = "bow"
loss = "infonce"
sampler = ["random", "topk-hard"]
"""
RUNS = 14  # (3 + 2 + 2) cells x 2 seeds
KILLS = 8
#: per-run timings, the only diagnostics that differ between two benches
TIMED = {"mining_seconds", "mining_share"}


def _bench(folder: Path, env: dict[str, str], jobs: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "harness.cli", "bench", "--suite", "kill.toml"),
            *("--store", "results.db", "--jobs", str(jobs), "--threads", "1"),
        ],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a group of its own, to kill it whole
    )


def _records(db: Path) -> dict[str, dict[str, object]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT run_id, status, record FROM runs").fetchall()
    assert len(rows) == len({run_id for run_id, _, _ in rows})
    assert all(status == "ok" for _, status, _ in rows), rows
    records = {}
    for run_id, _, record in rows:
        data = json.loads(record)
        diagnostics = {
            key: value for key, value in data["diagnostics"].items() if key not in TIMED
        }
        records[run_id] = {"metrics": data["metrics"], "diagnostics": diagnostics}
    return records


def test_kill_minus_9_at_random_moments_loses_and_duplicates_nothing(
    data_dir: Path, harness_env: dict[str, str], tmp_path: Path
):
    seed = int(os.environ.get("NEGBENCH_KILL_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    for folder in (reference, killed):
        folder.mkdir()
        (folder / "kill.toml").write_text(SUITE)

    start = time.monotonic()
    done = _bench(reference, harness_env, jobs=2)
    assert done.wait(timeout=600) == 0
    uninterrupted = time.monotonic() - start
    expected = _records(reference / "results.db")
    assert len(expected) == RUNS

    log = []
    db = killed / "results.db"
    for _ in range(KILLS):
        benches = [_bench(killed, harness_env, jobs=2)]
        if rng.random() < 1 / 3:  # a second bench on the same store
            time.sleep(rng.uniform(0, 1))
            benches.append(_bench(killed, harness_env, jobs=1))
        # a third of an uninterrupted bench at most: each attempt gets a few
        # runs done, or none (killed while starting up)
        moment = rng.uniform(0.5, uninterrupted / 3)
        deadline = time.monotonic() + moment
        while time.monotonic() < deadline and any(b.poll() is None for b in benches):
            time.sleep(0.05)
        for bench in benches:
            if bench.poll() is None:
                whole = rng.random() < 0.5
                if whole:  # the bench, its forkserver and its workers
                    os.killpg(bench.pid, signal.SIGKILL)
                else:  # the bench alone: its workers must notice and exit
                    os.kill(bench.pid, signal.SIGKILL)
                log.append(f"killed after {moment:.1f}s, whole={whole}")
            else:
                log.append(f"exited {bench.returncode} within {moment:.1f}s")
            bench.wait()
        context = f"NEGBENCH_KILL_SEED={seed}: {log}"
        if db.exists():  # what is stored is whole and right, whenever it died
            with sqlite3.connect(db) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            stored = _records(db)
            assert stored == {key: expected[key] for key in stored}, context
    print(context)  # shown with -rP: what was killed when
    assert any(line.startswith("killed") for line in log), context

    # the same command, left alone, completes the matrix
    assert _bench(killed, harness_env, jobs=2).wait(timeout=600) == 0, context
    assert_no_process_left(tmp_path, f"processes outlived the benches; {context}")
    assert_store_is_whole(db)
    assert _records(db) == expected, context
