"""End to end through the ``harness`` command, on a tiny BEIR folder and a toy model."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from conftest import (
    TOY,
    assert_no_process_left,
    assert_store_is_whole,
    results_json,
)

TRAIN = (
    "--param",
    "task.beir.epochs=2",
    "--param",
    "task.beir.batch_size=8",
    "--param",
    "task.beir.depth=20",
)


def bench_tiny(run_harness, tiny_beir, *args, **kwargs):
    return run_harness(
        "bench", *TOY, "--task", f"beir:{tiny_beir}", *TRAIN, *args, **kwargs
    )


#: the fault tests' bench: the in-memory STS task, whose protocol mines, trains
#: and evaluates like retrieval's but whose workers start without ranx's JIT
STS_BENCH = ("bench", *TOY, "--task", "tiny-sts", "--model", "bow", "--loss", "infonce")


def test_matrix_runs_stores_and_ranks(run_harness, tiny_beir):
    done = bench_tiny(
        run_harness,
        tiny_beir,
        "--model",
        "toy-bow",
        "--model",
        "toy-bow-frozen",
        "--loss",
        "infonce",
        "--loss",
        "margin",
        "--sampler",
        "random",
        "--sampler",
        "topk-hard",
        "--sampler",
        "simans",
        "--seeds",
        "2",
        "--jobs",
        "2",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ranked by ndcg@10" in done.stdout
    results = results_json(run_harness)
    assert len(results) == 2 * 3 * 2 + 2  # trained cells x seeds + zero-shot x seeds
    required = {
        "run_id",
        "task",
        "family",
        "model",
        "loss",
        "sampler",
        "seed",
        "status",
        "error",
        "metrics",
        "main_metric",
        "diagnostics",
        "timings",
        "dataset_sha256",
    }
    for result in results:
        assert required <= set(result)
        assert result["status"] == "ok", result["error"]
        assert result["family"] == "retrieval"
        assert set(result["metrics"]) == {"ndcg@10", "mrr@10", "recall@100", "map@100"}
        assert 0.0 <= result["metrics"]["ndcg@10"] <= 1.0
        assert len(result["dataset_sha256"]) == 64
        assert result["environment"]["packages"]["torch"]
    frozen = [r for r in results if r["model"] == "toy-bow-frozen"]
    assert {(r["loss"], r["sampler"]) for r in frozen} == {("none", "none")}
    trained = [r for r in results if r["model"] == "toy-bow"]
    for result in trained:
        diag = result["diagnostics"]
        assert diag["negatives_sampled"] > 0
        assert "hardness_gap_q50" in diag and "neg_rank_q50" in diag
        assert 0.0 <= diag["mining_share"] <= 1.0
        assert {"embed", "mine", "train", "evaluate", "total"} <= set(result["timings"])
    # hard negatives are harder than random ones, by construction
    gap = {
        r["sampler"]: r["diagnostics"]["hardness_gap_q50"]
        for r in trained
        if r["seed"] == 0 and r["loss"] == "infonce"
    }
    assert gap["topk-hard"] > gap["random"]
    # per-item scores come back on request
    per_item = results_json(run_harness, "--per-item", "--model", "toy-bow-frozen")
    assert len(per_item[0]["per_item"]["ndcg@10"]) == 20  # the 20 test queries


def _bench_and_time_its_output(args, env, cwd):
    """Run a bench; also how long its output stayed open after it exited."""
    bench = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    exited_at: list[float] = []
    watcher = threading.Thread(
        target=lambda: (bench.wait(), exited_at.append(time.monotonic()))
    )
    watcher.start()
    stdout, stderr = bench.communicate(timeout=300)  # returns at EOF
    closed_at = time.monotonic()
    watcher.join()
    done = subprocess.CompletedProcess(bench.args, bench.returncode, stdout, stderr)
    return done, max(0.0, closed_at - exited_at[0])


def test_resume_skips_completed_runs_and_rerun_repeats_them(
    run_harness, harness_env, tmp_path
):
    args = (*STS_BENCH, "--sampler", "random", "--seeds", "2")
    first = run_harness(*args)
    assert first.returncode == 0, first.stderr
    again, output_held_s = _bench_and_time_its_output(args, harness_env, tmp_path)
    assert again.returncode == 0
    assert "2 run(s) already completed" in again.stdout
    assert "0 run(s) executed" in again.stdout
    # nothing ran: the worker forkserver, started before planning, was
    # stopped with the bench, not left importing for nobody while holding
    # the bench's output open (it took ~1 s to notice by itself)
    assert output_held_s < 0.5
    ids = [r["run_id"] for r in results_json(run_harness)]
    rerun = run_harness(*args, "--rerun")
    assert "2 run(s) executed" in rerun.stdout
    assert sorted(r["run_id"] for r in results_json(run_harness)) == sorted(ids)


def test_run_id_is_stable_and_changes_with_config(run_harness):
    args = (*STS_BENCH, "--sampler", "random")
    run_harness(*args)
    bad = run_harness(*args, "--param", "sampler.random.nonexistent=1")
    assert (
        bad.returncode == 4
        and "sampler 'random' has no parameter 'nonexistent'" in bad.stderr
    )
    (first,) = results_json(run_harness)
    run_harness(*args, "--param", "loss.infonce.temperature=0.1")
    ids = {r["run_id"] for r in results_json(run_harness)}
    assert first["run_id"] in ids and len(ids) == 2


def test_broken_plugins_fail_only_their_own_runs(run_harness, tiny_beir):
    done = bench_tiny(
        run_harness,
        tiny_beir,
        "--model",
        "toy-bow",
        "--loss",
        "infonce",
        "--loss",
        "nan-loss",
        "--sampler",
        "random",
        "--sampler",
        "exploding",
        "--sampler",
        "returns-positive",
        "--sampler",
        "wrong-shape",
        "--sampler",
        "memory-hog",
    )
    assert done.returncode == 1
    by_cell = {(r["loss"], r["sampler"]): r for r in results_json(run_harness)}
    assert len(by_cell) == 10  # the bench went on after every failure
    assert by_cell[("infonce", "random")]["status"] == "ok"
    errors = {
        cell: r["error"] for cell, r in by_cell.items() if r["status"] == "failed"
    }
    assert errors[("infonce", "exploding")] == (
        "sampler 'exploding' (plugin 'broken_components'): raised RuntimeError: "
        "boom from the exploding sampler"
    )
    assert errors[("infonce", "returns-positive")].startswith(
        "sampler 'returns-positive' (plugin 'broken_components'): returned a known "
        "positive as a negative"
    )
    assert errors[("infonce", "wrong-shape")].startswith(
        "sampler 'wrong-shape' (plugin 'broken_components'): returned shape ("
    )
    assert errors[("infonce", "memory-hog")].startswith(
        "sampler 'memory-hog' (plugin 'broken_components'): raised RuntimeError: "
    )
    assert "can't allocate memory" in errors[("infonce", "memory-hog")]
    assert errors[("nan-loss", "random")] == (
        "loss 'nan-loss' (plugin 'broken_components'): returned NaN loss values"
    )
    assert all("\n" not in e for e in errors.values())
    assert "FAILED" in done.stdout


#: a sampler whose error reads like rich markup, with a stray closing tag
BRACKETED = """
from harness import Sampler, hookimpl


class Bracketed(Sampler):
    name = "bracketed"
    families = frozenset({"sts"})

    def sample(self, batch, num_negatives, generator):
        raise IndexError("index [/3] out of range for [bold] axis")


@hookimpl
def harness_register_samplers():
    return [Bracketed]
"""


def test_an_error_in_brackets_is_shown_as_it_is(run_harness, tmp_path):
    """The bench reports it and goes on, and `harness results` shows it:
    neither reads it as markup (a stray closing tag crashed the bench)."""
    (tmp_path / "bracketed").mkdir()
    (tmp_path / "bracketed" / "bracketed.py").write_text(BRACKETED)
    done = run_harness(
        *STS_BENCH,
        *(
            "--plugins-dir",
            "bracketed",
            "--sampler",
            "bracketed",
            "--sampler",
            "random",
        ),
    )
    assert done.returncode == 1, done.stderr
    error = "raised IndexError: index [/3] out of range for [bold] axis"
    assert done.stdout.count(error) == 2  # as it failed, and in the summary
    shown = run_harness("results")
    assert shown.returncode == 0, shown.stderr
    # the table wraps the long error: its cells, joined, hold it whole
    cells = " ".join(
        line.split("│")[-2].strip() for line in shown.stdout.splitlines() if "│" in line
    )
    assert error in cells


def test_timeout_and_dead_worker_fail_the_run_only(run_harness, tiny_beir):
    done = bench_tiny(
        run_harness,
        tiny_beir,
        "--model",
        "toy-bow",
        "--loss",
        "infonce",
        "--sampler",
        "sleepy",
        "--sampler",
        "segfaulting",
        "--sampler",
        "random",
        "--param",
        "sampler.sleepy.seconds=5",
        "--timeout",
        "4",
        "--jobs",
        "2",
    )
    assert done.returncode == 1
    by_sampler = {r["sampler"]: r for r in results_json(run_harness)}
    assert by_sampler["random"]["status"] == "ok"
    assert by_sampler["sleepy"]["error"] == "timed out after 4s (--timeout)"
    # the last phase the worker reported says where it died
    assert by_sampler["segfaulting"]["error"].startswith(
        "worker process died without a result (killed by signal 9) during '"
    )


def test_inline_mode_gives_the_same_results(run_harness):
    args = (*STS_BENCH, "--sampler", "simans")
    run_harness(*args, "--jobs", "0")
    (inline,) = results_json(run_harness)
    run_harness(*args, "--rerun")
    (isolated,) = results_json(run_harness)
    assert inline["run_id"] == isolated["run_id"]
    assert inline["metrics"] == isolated["metrics"]  # same seed, same numbers


def test_kill_minus_9_loses_at_most_the_run_in_flight(
    run_harness, harness_env, tmp_path
):
    args = [
        sys.executable,
        "-m",
        "harness.cli",
        *STS_BENCH,
        "--sampler",
        "sleepy",
        "--param",
        "sampler.sleepy.seconds=0.3",
        "--seeds",
        "4",
    ]
    proc = subprocess.Popen(
        args,
        cwd=tmp_path,
        env=harness_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_until_a_run_is_stored(tmp_path / "harness-results" / "results.db")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # workers notice the dead parent within 0.5 s
    assert_no_process_left(tmp_path, "worker processes outlived the killed session")
    before = {r["run_id"] for r in results_json(run_harness)}
    assert 1 <= len(before) < 4
    again = subprocess.run(
        args,
        cwd=tmp_path,
        env=harness_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(before)} run(s) already completed" in again.stdout
    assert f"{4 - len(before)} run(s) executed" in again.stdout
    after = results_json(run_harness)
    assert len(after) == 4 and len({r["run_id"] for r in after}) == 4
    assert before <= {r["run_id"] for r in after}


def _wait_until_a_run_is_stored(db, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    stored = 0
    while time.monotonic() < deadline and stored < 1:
        time.sleep(0.2)
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    stored = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            except sqlite3.OperationalError:
                stored = 0
    assert stored >= 1, "no run finished before the deadline"


def _take_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_the_bench_keeps_finished_runs_and_leaves_no_process(
    run_harness, harness_env, tmp_path
):
    """A terminal's Ctrl-C reaches the whole foreground process group: the
    bench, its forkserver and its workers (here sent once the first run is
    stored, while the second runs).  The bench reports what finished and how
    many runs it did not execute (exit 2, no traceback); the finished run
    stays stored, the one in flight leaves no claim (a rerun resumes, as
    after kill -9 above), and no process is left."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "harness.cli", *STS_BENCH),
            *("--sampler", "random", "--seeds", "3", "--jobs", "1"),
        ],
        cwd=tmp_path,
        env={**harness_env, "NEGBENCH_TEST_INTERRUPT_AFTER": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,  # its own group, as a shell's foreground job
        # a shell's foreground job takes Ctrl-C even where this test runs with
        # SIGINT ignored (a background job of a script), which children inherit
        preexec_fn=_take_ctrl_c,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "Traceback" not in out, out
    assert (
        done.stdout.strip()
        .splitlines()[-1]
        .startswith("interrupted: 2 run(s) not executed")
    ), out
    assert_no_process_left(tmp_path, "processes outlived the interrupted bench")
    assert_store_is_whole(tmp_path / "harness-results" / "results.db")
    assert [r["seed"] for r in results_json(run_harness)] == [0]


def test_kill_minus_9_at_each_point_then_resume_completes(run_harness, tmp_path):
    # topk-hard mines: every phase below happens in each run
    bench = (*STS_BENCH, "--sampler", "topk-hard", "--seeds", "2")
    for point in ("mine", "train", "evaluate", "store-write"):
        done = run_harness(*bench, env={"NEGBENCH_TEST_KILL_AT": point})
        assert done.returncode == -signal.SIGKILL, (point, done.stderr)
        assert results_json(run_harness) == [], point  # nothing half-written
    done = run_harness(*bench)
    assert done.returncode == 0, done.stdout + done.stderr
    results = results_json(run_harness)
    assert sorted(r["seed"] for r in results) == [0, 1]  # each exactly once
    assert all(r["status"] == "ok" for r in results)
    assert_store_is_whole(tmp_path / "harness-results" / "results.db")


def test_concurrent_benches_on_one_store_split_the_work(
    run_harness, harness_env, tmp_path
):
    slow = (
        "--sampler",
        "sleepy",
        "--param",
        "sampler.sleepy.seconds=0.5",  # per step
        "--param",
        "task.tiny-sts.epochs=3",  # 9 steps: each run lasts ~5 s
        "--seeds",
        "2",
        "--threads",
        "1",  # two benches share the 2 cores: no oversubscription
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *STS_BENCH, *slow],
        cwd=tmp_path,
        env=harness_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    db = tmp_path / "harness-results" / "results.db"
    deadline = time.monotonic() + 120
    claimed = 0
    while time.monotonic() < deadline and claimed < 2:
        time.sleep(0.2)
        try:
            with sqlite3.connect(db) as conn:
                claimed = conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            claimed = 0
    assert claimed == 2, "the first bench never claimed its runs"
    # the same runs plus two more, while the first bench executes
    second = run_harness(*STS_BENCH, *slow, "--sampler", "random")
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 run(s) are being executed by another harness bench" in second.stdout
    results = results_json(run_harness)
    pairs = sorted((r["sampler"], r["seed"]) for r in results)
    assert pairs == [("random", 0), ("random", 1), ("sleepy", 0), ("sleepy", 1)]
    assert all(r["status"] == "ok" for r in results)
    assert_store_is_whole(db)


def test_usage_errors_are_one_line_with_exit_4(run_harness, tiny_beir, tmp_path):
    done = run_harness("bench", "--task", "scifcat", "--model", "minilm")
    assert done.returncode == 4
    assert done.stderr.strip() == (
        "ERROR: unknown task 'scifcat'; did you mean 'scifact'? "
        "(`harness list tasks` shows them all)"
    )
    garbage = tmp_path / "not-a-db.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    done = bench_tiny(
        run_harness, tiny_beir, "--model", "toy-bow-frozen", "--store", str(garbage)
    )
    assert done.returncode == 4
    assert f"result store {garbage}: not a negbench result database" in done.stderr
    assert garbage.read_bytes() == b"this is not sqlite" * 100
    done = run_harness("results", "--store", str(tmp_path / "missing.db"))
    assert done.returncode == 4 and "does not exist" in done.stderr
    done = run_harness("leaderboard", "build", "--store", str(tmp_path / "none.db"))
    assert done.returncode == 4 and "nothing to build" in done.stderr


def test_missing_dataset_is_skipped_with_one_line(run_harness, tmp_path):
    empty = tmp_path / "empty-data"
    empty.mkdir()
    done = run_harness(
        "bench",
        "--task",
        "scifact",
        "--model",
        "minilm",
        env={"HARNESS_DATA_DIR": str(empty)},
    )
    assert done.returncode == 5
    lines = [line for line in done.stdout.splitlines() if "skipped" in line]
    assert len(lines) == 1
    assert "task 'scifact' skipped: dataset 'scifact' not found" in lines[0]
    assert "HARNESS_DATA_DIR" in lines[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_results_json_is_a_list_even_when_empty(run_harness, tiny_beir):
    bench_tiny(run_harness, tiny_beir, "--model", "toy-bow-frozen")
    assert (
        json.loads(run_harness("results", "--json", "--status", "failed").stdout) == []
    )


def test_leaderboard_build_writes_json(run_harness, tiny_beir, tmp_path, harness_env):
    bench_tiny(
        run_harness,
        tiny_beir,
        "--model",
        "toy-bow-frozen",
        "--model",
        "toy-bow",
        "--loss",
        "infonce",
        "--sampler",
        "random",
    )
    done = run_harness("leaderboard", "build", *TOY, "--out", str(tmp_path / "site"))
    assert done.returncode == 0, done.stderr
    # the console command skips interpreter shutdown after a build: its
    # message must still reach a pipe
    assert "leaderboard of" in done.stdout
    site = tmp_path / "site"
    board = json.loads((site / "leaderboard.json").read_text())
    assert board["schema_version"] == 2
    assert {r["model"] for r in board["rows"]} == {"toy-bow", "toy-bow-frozen"}
    assert sorted(r["rank"] for r in board["rows"]) == [1, 2]
    # the paired test used the stored per-query scores, not just the seeds
    assert all("over 20 queries" in r["test"] for r in board["rows"])
    assert all(r["ci_low"] <= r["mean"] <= r["ci_high"] for r in board["rows"])
    # and the site: overview, task page, a page per run
    assert (site / "index.html").is_file()
    for run_id in board["runs"]:
        page = (site / "run" / f"{run_id}.html").read_text()
        assert "harness bench --task" in page
    # the bench recorded its task's info in the store, so the build loaded no
    # component plugin (nor torch), yet shows the task as its plugin describes it
    (task,) = board["tasks"]
    build = ["leaderboard", "build", "--out", str(tmp_path / "b2")]
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from harness.cli import main; "
            f"code = main({build!r}); print(code, 'torch' in sys.modules)",
        ],
        cwd=tmp_path,
        env=harness_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert probe.stdout.split()[-2:] == ["0", "False"], probe.stdout + probe.stderr
    light = json.loads((tmp_path / "b2" / "leaderboard.json").read_text())
    from harness.plugin import PluginOptions, make_plugin_host

    registry = make_plugin_host(PluginOptions(autoload=False)).registries.tasks
    described = registry.get(task).cls.info(task).description
    assert light["tasks"][task]["description"] == described != ""
    assert [r["rank"] for r in light["rows"]] == [r["rank"] for r in board["rows"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "-1"], "--seeds must be >= 1"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--jobs", "-2"], "--jobs must be >= 0"),
        (["--threads", "0"], "--threads must be >= 1"),
        # a negative timeout used to fail every run, 0 and nan to mean none
        (["--timeout", "-5"], "--timeout -5.0: must be a positive number"),
        (["--timeout", "0"], "--timeout 0.0: must be a positive number"),
        (["--timeout", "nan"], "--timeout nan: must be a positive number"),
        (["--address", "auto"], "--address needs --executor ray"),
        # was ignored: the data came from HARNESS_DATA_DIR or the cache
        (
            ["--data-dir", "/no/such/folder"],
            "--data-dir /no/such/folder: no such folder",
        ),
    ],
)
def test_bad_bench_options_are_usage_errors(args, message, capsys):
    from harness.cli import main

    assert main(["bench", *args]) == 4
    assert capsys.readouterr().err == f"ERROR: {message}\n"


@pytest.mark.parametrize(
    ("command", "folder"),
    [
        (["bench", "--task", "tiny-sts", "--jobs", "0", "--store", "{}/x.db"], ""),
        (["new-plugin", "soft-hard", "--dir", "{}"], "/soft-hard"),
    ],
    ids=["bench-store", "new-plugin-dir"],
)
def test_a_path_that_cannot_be_made_is_one_line(command, folder, tmp_path, capsys):
    # a folder to create under a regular file: was an INTERNALERROR traceback
    from harness.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / "sub"
    assert main([arg.format(target) for arg in command]) == 4
    assert capsys.readouterr().err == f"ERROR: {target}{folder}: Not a directory\n"


@pytest.mark.parametrize(
    "error", [RuntimeError("a bug"), OSError(5, "Input/output error")]
)
def test_a_bug_of_the_harness_is_an_internal_error(error, monkeypatch, capsys):
    # an OSError that names no file is not a path the user gave: a traceback
    from harness import cli

    def broken(args, console):
        raise error

    monkeypatch.setitem(cli.COMMANDS, "plugins", broken)
    assert cli.main(["plugins"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("INTERNALERROR: the harness itself failed:\nTraceback")
    assert err.endswith(f"{type(error).__name__}: {error}\n")


def test_same_config_and_seed_give_identical_numbers(run_harness):
    """Determinism on CPU, in another family than the tiny BEIR tests: a KGE
    run repeated in a fresh process reproduces every metric bit for bit."""
    args = (
        "bench",
        "--task",
        "nations",
        "--model",
        "transe",
        "--loss",
        "margin",
        "--sampler",
        "uniform",
        "--param",
        "task.nations.epochs=3",
        "--threads",
        "1",
        # on a GPU machine the default would be the GPU, whose kernels need
        # not repeat bit for bit (tests/harness/test_gpu.py covers it)
        "--device",
        "cpu",
    )
    first = run_harness(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    (before,) = results_json(run_harness)
    again = run_harness(*args, "--rerun")
    assert again.returncode == 0, again.stdout + again.stderr
    (after,) = results_json(run_harness)
    assert after["run_id"] == before["run_id"]
    assert after["metrics"] == before["metrics"]
    timing = {"mining_seconds", "mining_share"}  # wall clock, never repeatable
    assert {k: v for k, v in after["diagnostics"].items() if k not in timing} == {
        k: v for k, v in before["diagnostics"].items() if k not in timing
    }
    assert after["finished_at"] != before["finished_at"]  # it did run again
    # what could explain a difference elsewhere is recorded with the run
    environment = after["environment"]
    assert environment["torch_threads"] == 1
    assert environment["device"] == "cpu"
    assert {"device", "torch_interop_threads", "packages"} <= environment.keys()
    assert (
        environment["packages"]["torch"] == before["environment"]["packages"]["torch"]
    )


class _Exited(Exception):
    """Raised by the stand-ins for ``os._exit`` and ``sys.exit``."""


@pytest.fixture
def exits(monkeypatch):
    """console_main after a bench that set the fast-exit flag: records how it
    leaves (``os._exit`` skips the interpreter's teardown) and whether the
    ``atexit`` callbacks ran."""
    from harness import cli

    seen: list[tuple[str, int]] = []

    def leave(how):
        def stand_in(code):
            seen.append((how, code))
            raise _Exited

        return stand_in

    def bench_that_sets_the_flag(argv=None):
        cli._exit_when_done.set()
        return 0

    monkeypatch.setattr(cli, "main", bench_that_sets_the_flag)
    monkeypatch.setattr(cli.os, "_exit", leave("os._exit"))
    monkeypatch.setattr(cli.sys, "exit", leave("sys.exit"))
    run_callbacks = lambda: seen.append(("atexit", 0))  # noqa: E731
    monkeypatch.setattr(cli.atexit, "_run_exitfuncs", run_callbacks)
    yield seen
    cli._exit_when_done.clear()


def test_after_a_bench_the_command_skips_teardown_but_runs_atexit(exits):
    from harness.cli import console_main

    with pytest.raises(_Exited):
        console_main()
    assert exits == [("atexit", 0), ("os._exit", 0)]


def test_a_plugins_running_thread_gets_a_normal_exit(exits):
    """A non-daemon thread (a plugin's upload, say) is waited for, as always."""
    import threading

    from harness.cli import console_main

    release = threading.Event()
    uploader = threading.Thread(target=release.wait)
    uploader.start()
    try:
        with pytest.raises(_Exited):
            console_main()
    finally:
        release.set()
        uploader.join()
    assert exits == [("sys.exit", 0)]
