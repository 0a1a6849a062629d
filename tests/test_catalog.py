"""Every registered sampler and loss runs in a real matrix without failing.

The issue's smoke check: a 1-seed run of every compatible sampler x loss on a
retrieval task.  Here on the tiny BEIR folder with the built-in ``bow`` model,
one epoch, so the whole catalogue runs in well under a minute.
"""

from __future__ import annotations

from conftest import results_json

from harness.plugin import PluginOptions, make_plugin_host

SAMPLERS = {
    "random", "in-batch", "topk-hard", "simans", "star", "adore",
    "positive-aware", "cluster", "moco-filter", "dhnm",
}  # fmt: skip
LOSSES = {
    "infonce", "margin", "pairwise-logistic", "lambdarank", "dcl", "hcl",
    "cet", "bml", "cosent", "w-mse",
}  # fmt: skip


def trained_cells(run_harness, done):
    """The (loss, sampler) cells of a bench that must have succeeded entirely."""
    results = results_json(run_harness)
    failed = {
        (r["loss"], r["sampler"]): r["error"] for r in results if r["status"] != "ok"
    }
    assert not failed, failed
    assert done.returncode == 0, done.stdout + done.stderr
    return {(r["loss"], r["sampler"]) for r in results}


def test_the_issue_catalogue_is_registered():
    registries = make_plugin_host(PluginOptions(autoload=False)).registries
    assert SAMPLERS <= set(registries.samplers.names())
    assert LOSSES <= set(registries.losses.names())
    assert {"minilm", "minilm-adapter", "bow", "minilm-full"} <= set(
        registries.models.names()
    )
    expected_tasks = {
        "scifact",
        "cranfield",
        "stsb",
        "stsb-unsup",
        "sick-r",
        "synth-fn",
    }
    assert expected_tasks | {f"sts{y}" for y in range(12, 17)} <= set(
        registries.tasks.names()
    )


def test_every_sampler_and_loss_trains_on_retrieval(run_harness, tiny_beir):
    done = run_harness(
        "bench", "--task", f"beir:{tiny_beir}", "--model", "bow",
        "--param", "task.beir.epochs=1", "--param", "task.beir.batch_size=8",
        "--param", "task.beir.depth=20",
        # ClusterNS waits for its trigger; start it at once on this small set
        "--param", "sampler.cluster.start_cosine=1.0",
        "--param", "sampler.cluster.clusters=4",
        "--jobs", "2",
    )  # fmt: skip
    cells = trained_cells(run_harness, done)
    negative_free = {("w-mse", "none")}
    assert (
        cells
        == {(loss, s) for loss in LOSSES - {"w-mse"} for s in SAMPLERS} | negative_free
    )


LABEL_SAMPLERS = {
    "all", "partial-fc", "topk-hard", "random", "simans", "positive-aware",
}  # fmt: skip
LABEL_LOSSES = {"bce", "focal", "asl", "dice", "assume-negative", "ll-r", "ll-ct"}


def test_every_label_sampler_and_loss_trains_on_yeast(run_harness, data_dir):
    registries = make_plugin_host(PluginOptions(autoload=False)).registries
    families = {
        name: registries.samplers.get(name).cls.families
        for name in registries.samplers.names()
    }
    assert {n for n, f in families.items() if "multilabel" in f} == LABEL_SAMPLERS
    done = run_harness(
        "bench", "--task", "yeast-partial", "--model", "mlp",
        "--param", "task.yeast-partial.epochs=2",
        "--param", "task.yeast-partial.max_train=300",
        "--jobs", "2",
    )  # fmt: skip
    cells = trained_cells(run_harness, done)
    assert cells == {(loss, s) for loss in LABEL_LOSSES for s in LABEL_SAMPLERS}
