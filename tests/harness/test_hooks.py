"""One test per hookspec (datasette's rule), plus the call order of a whole session.

``test_every_hookspec_has_a_test`` fails when a hook is added without a
``test_hook_<name>`` here.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import RECORDER, TOY, harness_environment, results_json

from harness import Loss, Model, Sampler, Task, TextEncoder, hookimpl, hookspecs
from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import write_tiny_beir

SMALL = ("--param", "task.beir.epochs=1", "--param", "task.beir.depth=20")


def hookspec_names():
    return sorted(
        n
        for n, f in vars(hookspecs).items()
        if n.startswith("harness_") and callable(f)
    )


def test_every_hookspec_has_a_test():
    here = sys.modules[__name__]
    missing = [n for n in hookspec_names() if not hasattr(here, f"test_hook_{n}")]
    assert not missing, f"hooks without a test_hook_<name>: {missing}"


@pytest.mark.parametrize("name", hookspec_names())
def test_every_hookspec_documents_each_argument(name):
    function = getattr(hookspecs, name)
    doc = inspect.getdoc(function) or ""
    assert doc.split("\n")[0].strip(), f"{name} has no summary line"
    for arg in inspect.signature(function).parameters:
        assert f":param {arg}:" in doc, f"{name}: argument '{arg}' is not documented"
    if inspect.signature(function).return_annotation not in ("None", None):
        assert ":returns:" in doc, f"{name}: the return contract is not documented"


def recorded(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def record(tmp_path):
    return tmp_path / "record.jsonl"


def run_bench(run_harness, tiny_beir, record, *args, env=None):
    return run_harness(
        "bench",
        *TOY,
        *RECORDER,
        "--task",
        f"beir:{tiny_beir}",
        *SMALL,
        *args,
        env={"HARNESS_TEST_RECORD": str(record), **(env or {})},
    )


# -- registration hooks ---------------------------------------------------------------


def _host_with(plugin):
    return make_plugin_host(PluginOptions(autoload=False), extra=[("inline", plugin)])


def test_hook_harness_register_tasks():
    class MyTask(Task):
        name = "my-task"
        family = "retrieval"
        main_metric = "score"

        def locate(self, locator): ...
        def load(self, dataset, context): ...
        def fit(self, data, model, context): ...
        def evaluate(self, data, model, context): ...

    class Plugin:
        @hookimpl
        def harness_register_tasks(self):
            return [MyTask]

    entry = _host_with(Plugin()).registries.tasks.get("my-task")
    assert entry.cls is MyTask and entry.plugin == "inline"
    assert MyTask.families == frozenset({"retrieval"})


def test_hook_harness_register_models():
    class MyModel(TextEncoder):
        name = "my-model"

        def featurize(self, texts, *, side, context):
            return torch.zeros(len(texts), 2)

        def embed(self, features, *, side):
            return features

    class Plugin:
        @hookimpl
        def harness_register_models(self):
            return [MyModel]

    assert _host_with(Plugin()).registries.models.get("my-model").cls is MyModel
    assert issubclass(MyModel, Model)


def test_hook_harness_register_losses():
    class MyLoss(Loss):
        name = "my-loss"
        families = frozenset({"retrieval"})

        def forward(self, positive, negative, mask):
            return -positive

    class Plugin:
        @hookimpl
        def harness_register_losses(self):
            return [MyLoss]

    assert _host_with(Plugin()).registries.losses.get("my-loss").cls is MyLoss


def test_hook_harness_register_samplers():
    class MySampler(Sampler):
        name = "my-sampler"
        families = frozenset({"retrieval"})

        def sample(self, batch, num_negatives, generator):
            return torch.zeros(batch.size, num_negatives, dtype=torch.long)

    class Plugin:
        @hookimpl
        def harness_register_samplers(self):
            return [MySampler]

    host = _host_with(Plugin())
    assert host.registries.samplers.get("my-sampler").cls is MySampler
    assert host.infos["inline"].components == {"sampler": ["my-sampler"]}


# -- run protocol ---------------------------------------------------------------------

BASE = (
    "--model",
    "toy-bow",
    "--loss",
    "infonce",
    "--sampler",
    "random",
    "--sampler",
    "topk-hard",
)


def test_hook_harness_modify_runs(run_harness, tiny_beir, record):
    done = run_bench(
        run_harness,
        tiny_beir,
        record,
        *BASE,
        env={"RECORDER_DROP_SAMPLER": "topk-hard"},
    )
    assert done.returncode == 0, done.stderr
    assert "recorder dropped sampler topk-hard" in done.stdout
    assert {r["sampler"] for r in results_json(run_harness)} == {"random"}


@dataclass
class SharedBench:
    """One recorded ``harness bench --jobs 1`` that several hook tests read."""

    folder: Path  #: the bench's working folder (its store lives here)
    calls: list[dict]  #: the recorder's hook calls, in order
    env: dict[str, str]

    def harness(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "harness.cli", *args],
            cwd=self.folder,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


@pytest.fixture(scope="module")
def shared_bench(tmp_path_factory, cache_dir) -> SharedBench:
    folder = tmp_path_factory.mktemp("hooks")
    beir = write_tiny_beir(folder / "tiny")
    record = folder / "record.jsonl"
    bench = SharedBench(folder, [], harness_environment(cache_dir))
    done = bench.harness(
        "bench",
        *TOY,
        *RECORDER,
        "--task",
        f"beir:{beir}",
        *SMALL,
        *BASE,
        "--jobs",
        "1",
        HARNESS_TEST_RECORD=str(record),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    bench.calls = recorded(record)
    return bench


def test_hook_harness_session_start(shared_bench):
    calls = shared_bench.calls
    (start,) = [c for c in calls if c["hook"] == "harness_session_start"]
    assert len(start["runs"]) == 2


def test_hook_harness_run(run_harness, tiny_beir, record):
    done = run_bench(
        run_harness, tiny_beir, record, *BASE, env={"RECORDER_ANSWER_RUNS": "1"}
    )
    assert done.returncode == 0, done.stderr
    # the plugin answered first, so the built-in (trylast) runner never ran
    assert {r["metrics"]["ndcg@10"] for r in results_json(run_harness)} == {0.123}
    calls = recorded(record)
    assert not [c for c in calls if c["hook"] == "harness_run_phase"]
    main_pid = next(c["pid"] for c in calls if c["hook"] == "harness_session_start")
    assert all(
        c["pid"] != main_pid for c in calls if c["hook"] == "harness_run"
    )  # in workers


def test_hook_harness_executor(run_harness, tiny_beir, record):
    done = run_bench(run_harness, tiny_beir, record, *BASE, "--executor", "reversed")
    assert done.returncode == 0, done.stderr
    calls = recorded(record)
    (dispatch,) = [c for c in calls if c["hook"] == "harness_executor"]
    finished = [c["label"] for c in calls if c["hook"] == "harness_result"]
    assert finished == dispatch["runs"][::-1]  # the plugin's engine ran them
    assert len(results_json(run_harness)) == 2
    unknown = run_bench(
        run_harness, tiny_beir, record, *BASE, "--executor", "kubernetes"
    )
    assert unknown.returncode == 4
    assert unknown.stderr.strip() == (
        "ERROR: no plugin provides the executor 'kubernetes' "
        "(built-in: local, ray, slurm, submitit-local)"
    )


def test_hook_harness_run_phase(shared_bench):
    calls = shared_bench.calls
    phases = {c["phase"] for c in calls if c["hook"] == "harness_run_phase"}
    assert {"setup", "load", "train", "mine", "evaluate"} <= phases


def test_hook_harness_result(shared_bench):
    results = [c for c in shared_bench.calls if c["hook"] == "harness_result"]
    assert sorted(c["status"] for c in results) == ["ok", "ok"]


def test_hook_harness_session_finish(run_harness, tiny_beir, record):
    run_bench(run_harness, tiny_beir, record, *BASE)
    run_bench(
        run_harness, tiny_beir, record, *BASE
    )  # resumed: results come from the store
    finishes = [c for c in recorded(record) if c["hook"] == "harness_session_finish"]
    assert [f["results"] for f in finishes] == [2, 2]
    assert [f["exitstatus"] for f in finishes] == [0, 0]


def test_hook_call_order_over_a_session(shared_bench):
    order = [c["hook"] for c in shared_bench.calls]
    text = " ".join(dict.fromkeys(order))  # first occurrence of each hook
    assert re.fullmatch(
        "harness_modify_runs harness_session_start harness_run harness_run_phase "
        "harness_result harness_session_finish harness_rank",
        text,
    ), text
    # the terminal reporter ranks for its summary, after the other finish hooks
    assert order[-1] == "harness_rank"


# -- leaderboard -----------------------------------------------------------------------


def test_hook_harness_rank(shared_bench, record, tmp_path):
    done = shared_bench.harness(
        "leaderboard",
        "build",
        *TOY,
        *RECORDER,
        "--out",
        str(tmp_path / "b"),
        HARNESS_TEST_RECORD=str(record),
        RECORDER_RANK="1",
    )
    assert done.returncode == 0, done.stderr
    board = json.loads((tmp_path / "b" / "leaderboard.json").read_text())
    assert board["rows"] == []  # the plugin's board won over the built-in ranker


def test_hook_harness_render(shared_bench, record, tmp_path):
    done = shared_bench.harness(
        "leaderboard",
        "build",
        *TOY,
        *RECORDER,
        "--out",
        str(tmp_path / "b"),
        HARNESS_TEST_RECORD=str(record),
    )
    assert done.returncode == 0, done.stderr
    # every renderer runs: the built-in JSON and the plugin's text file
    assert (tmp_path / "b" / "leaderboard.json").exists()
    assert (tmp_path / "b" / "recorder.txt").read_text() == "2 rows\n"
