"""Shared fixtures: data location, a session cache, a CLI runner, a tiny BEIR set."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from harness.testing import write_tiny_beir

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGINS = REPO / "tests" / "example_plugins"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("HARNESS_CACHE_DIR"):
    # ranx's numba metrics compile once per cache, not once per test process
    os.environ.setdefault(
        "NUMBA_CACHE_DIR", str(Path(os.environ["HARNESS_CACHE_DIR"]) / "numba")
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    # `late` tests go last (a stable sort keeps the rest in file order), so
    # the background warm-up (embedding_warm_up) has the whole session to fill
    # the cache they read
    items.sort(key=lambda item: "late" in item.keywords)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets (``HARNESS_DATA_DIR``); tests needing them skip without."""
    value = os.environ.get("HARNESS_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("HARNESS_DATA_DIR is not set (see README: running the tests)")
    return Path(value)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole session so SciFact is embedded at most once."""
    value = os.environ.get("HARNESS_CACHE_DIR")
    path = Path(value) if value else tmp_path_factory.mktemp("harness-cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def harness_env(cache_dir: Path) -> dict[str, str]:
    return harness_environment(cache_dir)


# What the `late` tests embed with all-MiniLM-L6-v2: SciFact's corpus (1.3M
# tokens, minutes of both cores when cold), STS-B's and STS16's sentences.
WARM_UP = (
    *("bench", "--task", "scifact", "--task", "stsb", "--task", "sts16"),
    *("--model", "minilm", "--seeds", "1", "--threads", "2"),
)


@pytest.fixture(scope="session", autouse=True)
def embedding_warm_up(
    request: pytest.FixtureRequest,
    cache_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Fill the session's cache with the `late` tests' embeddings in the
    background, at the lowest CPU priority.

    Most tests leave a core idle (one Python thread, subprocess start-ups,
    waits for timeouts); a cold cache costs the `late` tests minutes of
    encoding.  ``harness bench`` of their zero-shot runs, under ``nice 19``,
    does that encoding in the idle time instead, and the `late` tests run last
    (pytest_collection_modifyitems).  The cache's per-key lock makes a test
    that gets there first wait for the warm-up's result rather than repeat
    it; the tests check the same numbers either way, from the same code.
    Passive OpenMP waits keep its two threads from spinning while the
    foreground holds a core.
    """
    data = os.environ.get("HARNESS_DATA_DIR")
    wanted = any("late" in item.keywords for item in request.session.items)
    datasets = ("scifact", "stsb", "sts12-16")
    if not wanted or not data or not all((Path(data) / d).is_dir() for d in datasets):
        yield
        return
    workdir = tmp_path_factory.mktemp("warm-up")
    env = {**harness_environment(cache_dir), "OMP_WAIT_POLICY": "PASSIVE"}
    with open(workdir / "warm-up.log", "w") as log:
        nice = ["nice", "-n", "19"] if shutil.which("nice") else []
        warm_up = subprocess.Popen(
            [*nice, sys.executable, "-m", "harness.cli", *WARM_UP],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
    try:
        yield
    finally:
        still_running = warm_up.poll() is None
        if still_running:  # a partial session: stop it and its workers
            os.killpg(warm_up.pid, signal.SIGKILL)
        warm_up.wait()
    if not still_running and warm_up.returncode != 0:
        # the late tests passed without it, slowly: say so rather than let
        # the suite's time creep back up unexplained
        tail = (workdir / "warm-up.log").read_text().strip().splitlines()[-3:]
        raise RuntimeError(
            f"the background warm-up (tests/conftest.py) exited with "
            f"{warm_up.returncode}: {' | '.join(tail)}"
        )


def harness_environment(cache_dir: Path) -> dict[str, str]:
    """The environment a CLI subprocess of the tests runs with: offline, the
    session's cache, no plugins or store from the caller's environment."""
    env = dict(os.environ)
    env["HARNESS_CACHE_DIR"] = str(cache_dir)
    env.setdefault("NUMBA_CACHE_DIR", str(cache_dir / "numba"))
    env["HF_HUB_OFFLINE"] = "1"
    env["HARNESS_OFFLINE"] = "1"
    env.pop("HARNESS_PLUGINS", None)
    env.pop("HARNESS_STORE", None)
    return env


RunHarness = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_harness(harness_env: dict[str, str], tmp_path: Path) -> RunHarness:
    """Run the ``harness`` CLI in a subprocess, in ``tmp_path``."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "harness.cli", *args],
            cwd=tmp_path,
            env={**harness_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


def results_json(run_harness: RunHarness, *args: str) -> list[dict[str, object]]:
    done = run_harness("results", "--json", *args)
    assert done.returncode == 0, done.stderr
    data: list[dict[str, object]] = json.loads(done.stdout)
    return data


def assert_no_process_left(tmp_path, message: str, timeout: float = 5) -> None:
    """No process of the bench is left within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        # the forkserver's command line names this test's folder (its sys.path)
        survivors = subprocess.run(  # noqa: PLW1510 - pgrep exits 1 on no match
            ["pgrep", "-f", str(tmp_path)], capture_output=True, text=True
        )
        if not survivors.stdout.strip() or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert survivors.stdout.strip() == "", message


def assert_store_is_whole(db_path) -> None:
    """SQLite's own check, no claim left behind, per-item scores for every ok run."""
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)
        bare = conn.execute(
            "SELECT COUNT(*) FROM runs WHERE status = 'ok' AND run_id NOT IN "
            "(SELECT run_id FROM item_scores)"
        ).fetchone()
        assert bare == (0,)


def executor_bench(tiny_beir: Path) -> tuple[str, ...]:
    """The executor tests' bench: tiny BEIR, the toy model, one seed and one
    thread (add the samplers), so every engine gives the same numbers."""
    return (
        *("bench", *TOY, "--task", f"beir:{tiny_beir}"),
        *("--param", "task.beir.epochs=2", "--param", "task.beir.batch_size=8"),
        *("--model", "toy-bow", "--loss", "infonce", "--seeds", "1", "--threads", "1"),
    )


def assert_phases_streamed(
    record: Path, samplers: tuple[str, ...], first: list[str]
) -> None:
    """Each run of ``samplers`` reported its phases to the driver as it ran:
    the recorder plugin (``tests/hook_plugins``, writing to ``record``) saw
    ``first``, then load, train and evaluate, and no phase after the result."""
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    for sampler in samplers:
        seen = [
            c.get("phase", "(result)")
            for c in calls
            if c["hook"] in ("harness_run_phase", "harness_result")
            and c["label"].split("::")[3] == sampler
        ]
        assert seen[: len(first)] == first, seen
        assert {"load", "train", "evaluate"} <= set(seen), seen
        assert seen.index("(result)") == len(seen) - 1, seen


def stored_by_sampler(run_harness: RunHarness, *args: str) -> dict[str, dict]:
    """The stored results by sampler, each stored exactly once."""
    results = results_json(run_harness, *args)
    by_sampler = {str(r["sampler"]): r for r in results}
    assert len(by_sampler) == len(results), results
    return by_sampler


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    return write_tiny_beir(tmp_path / "tiny")


#: arguments that load the toy model and example components from tests/example_plugins
TOY = ("--plugins-dir", str(EXAMPLE_PLUGINS))

#: a MULAN ARFF header: two features and two labels, interleaved
TOY_ARFF_HEADER = """@relation toy
@attribute f1 numeric
@attribute lab1 {0,1}
@attribute f2 numeric
@attribute lab2 {0,1}
@data
"""
#: the MULAN label XML naming TOY_ARFF_HEADER's two labels, one per line
TOY_LABEL_XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
<label name="lab1"></label>
<label name="lab2"></label>
</labels>
"""
#: arguments that load the hook recorder (tests/hook_plugins; it writes to the
#: file named by HARNESS_TEST_RECORD)
RECORDER = ("--plugins-dir", str(REPO / "tests" / "hook_plugins"))
