"""Suites and the run matrix."""

from __future__ import annotations

import re

import pytest

from harness import UsageError
from harness.config import (
    Selections,
    builtin_suites,
    expand_matrix,
    load_suite,
    param_table_from_cli,
    parse_param,
)
from harness.plugin import PluginOptions, make_plugin_host


@pytest.fixture(scope="module")
def registries():
    return make_plugin_host(PluginOptions(autoload=False)).registries


def write(tmp_path, text, name="suite.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def labels(expansion):
    return [s.label for s in expansion.specs]


def test_builtin_suites_load_and_expand(registries):
    assert {"quick", "standard"} <= set(builtin_suites())
    quick = expand_matrix(registries, suites=[load_suite("quick")])
    assert "scifact::minilm::none::none::0" in labels(quick)
    assert "scifact::minilm-adapter::infonce::simans::0" in labels(quick)
    assert "synth-fn::bow::infonce::positive-aware::0" in labels(quick)
    assert {s.task for s in quick.specs} == {
        "scifact",
        "stsb",
        "synth-fn",
        "nations",
        "umls",
        "yeast",
        "yeast-partial",
    }
    assert len(quick.specs) == 27
    umls = [s for s in quick.specs if s.task == "umls"]
    assert all(s.params["task"] == {"epochs": 20} for s in umls)
    # block parameters reach only their block's runs
    synth = [s for s in quick.specs if s.task == "synth-fn"]
    assert all(s.params["loss"] == {"in_batch": False} for s in synth)
    assert all("loss" not in s.params for s in quick.specs if s.task != "synth-fn")
    standard = expand_matrix(registries, suites=[load_suite("standard")])
    assert {s.seed for s in standard.specs} == {0, 1, 2}
    # every compatible sampler x loss, on the three tasks
    for task in ("scifact", "stsb", "synth-fn"):
        cells = {(s.loss, s.sampler) for s in standard.specs if s.task == task}
        assert ("lambdarank", "adore") in cells and ("w-mse", "none") in cells
        assert len(cells) >= 90
    # every KGE model x loss x sampler on the five graphs
    for task in ("nations", "umls", "kinship", "codex-s", "wn18rr"):
        cells = {(s.model, s.loss, s.sampler) for s in standard.specs if s.task == task}
        assert len(cells) == 4 * 5 * 6 and ("rotate", "hasa", "hasa") in cells
    # every multi-label loss x label sampler on MULAN + GoEmotions
    label_losses = {"bce", "focal", "asl", "dice", "assume-negative", "ll-r", "ll-ct"}
    for task in ("yeast", "delicious", "goemotions"):
        cells = {(s.loss, s.sampler) for s in standard.specs if s.task == task}
        assert {loss for loss, _ in cells} == label_losses
        assert {"all", "partial-fc", "topk-hard"} <= {s for _, s in cells}
    partial = {(s.loss, s.sampler) for s in standard.specs if s.task == "yeast-partial"}
    assert ("ll-r", "all") in partial and ("assume-negative", "topk-hard") in partial


def test_zero_shot_models_take_no_loss_or_sampler(registries):
    expansion = expand_matrix(
        registries,
        selections=Selections(task=["scifact"], model=["minilm"], loss=["margin"]),
    )
    assert labels(expansion) == ["scifact::minilm::none::none::0"]


def test_selections_alone_define_the_matrix(registries):
    expansion = expand_matrix(
        registries,
        selections=Selections(
            task=["scifact"], model=["minilm-adapter"], sampler=["simans"]
        ),
        seeds=2,
    )
    # missing --loss axis = every compatible loss; negative-free ones take no sampler
    retrieval_losses = [
        e.name for e in registries.losses if "retrieval" in e.cls.families
    ]
    expected = []
    for loss in retrieval_losses:
        needs = registries.losses.get(loss).cls.needs_negatives
        sampler = "simans" if needs else "none"
        expected += [f"scifact::minilm-adapter::{loss}::{sampler}::{s}" for s in (0, 1)]
    assert labels(expansion) == expected
    assert "scifact::minilm-adapter::w-mse::none::0" in labels(expansion)
    assert "scifact::minilm-adapter::infonce::simans::1" in labels(expansion)


def test_selections_filter_a_suite(registries):
    expansion = expand_matrix(
        registries,
        suites=[load_suite("quick")],
        selections=Selections(sampler=["simans"]),
    )
    assert {s.sampler for s in expansion.specs} == {"simans"}
    assert len(expansion.specs) == 4  # scifact x 2 losses, stsb, synth-fn


def test_task_is_required_without_a_suite(registries):
    with pytest.raises(UsageError, match="--task is required"):
        expand_matrix(registries, selections=Selections(model=["minilm"]))


def test_unknown_names_get_suggestions(registries):
    with pytest.raises(
        UsageError, match="unknown sampler 'simnas'; did you mean 'simans'"
    ):
        expand_matrix(
            registries, selections=Selections(task=["scifact"], sampler=["simnas"])
        )


def test_params_are_kind_scoped_and_validated(registries, tmp_path):
    suite = load_suite(
        write(
            tmp_path,
            """
            seeds = 1
            [params.task.scifact]
            epochs = 1
            [[matrix]]
            task = "scifact"
            model = "minilm-adapter"
            loss = "infonce"
            sampler = ["simans", "random"]
            [matrix.params.sampler.simans]
            a = 2.0
            """,
        )
    )
    expansion = expand_matrix(
        registries,
        suites=[suite],
        cli_params=param_table_from_cli(["loss.infonce.temperature=0.1"]),
    )
    by_sampler = {s.sampler: s for s in expansion.specs}
    assert by_sampler["simans"].params == {
        "task": {"epochs": 1},
        "loss": {"temperature": 0.1},
        "sampler": {"a": 2.0},
    }
    assert "sampler" not in by_sampler["random"].params


def test_unknown_parameter_names_the_component_and_suggests(registries, tmp_path):
    path = write(
        tmp_path,
        """
        [[matrix]]
        task = "scifact"
        model = "minilm-adapter"
        [matrix.params.sampler.simans]
        aa = 1.0
        """,
    )
    with pytest.raises(
        UsageError, match=r"sampler 'simans' has no parameter 'aa'; did you mean 'a'"
    ):
        expand_matrix(registries, suites=[load_suite(path)])


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("task.scifact.epochs=abc", "task 'scifact' parameter 'epochs' takes an int"),
        ("task.scifact.epochs=2.0", "'epochs' takes an int, got 2.0"),
        ("task.scifact.epochs=1e400", "'epochs' takes an int, got inf"),
        ("loss.infonce.in_batch=1", "'in_batch' takes a bool, got 1"),
        ("task.scifact.refresh=1.5", "'refresh' takes a str or an int, got 1.5"),
        (
            "sampler.simans.kernel=gauss",
            "sampler 'simans' parameter 'kernel' takes one of 'squared', 'laplace', "
            "got 'gauss'",
        ),
    ],
)
def test_a_parameter_of_the_wrong_type_is_a_usage_error(registries, param, message):
    # these failed every run at its start (or ran: epochs=inf), and stored them
    with pytest.raises(UsageError, match=re.escape(message)):
        expand_matrix(
            registries,
            selections=Selections(task=["scifact"], model=["minilm-adapter"]),
            cli_params=param_table_from_cli([param]),
        )


@pytest.mark.parametrize(
    "param",
    [
        "loss.infonce.temperature=1",  # an int is a float
        "task.scifact.refresh='step'",
        "task.scifact.refresh=3",
        "sampler.simans.kernel=laplace",
    ],
)
def test_a_parameter_of_the_right_type_passes(registries, param):
    expansion = expand_matrix(
        registries,
        selections=Selections(task=["scifact"], model=["minilm-adapter"]),
        cli_params=param_table_from_cli([param]),
    )
    assert expansion.specs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "seeds = 1\n[[matrix]]\ntask = 'scifact'\nmodle = 'minilm'\n",
            "unknown key 'modle'; did you mean 'model'",
        ),
        (
            "sedes = 2\n[[matrix]]\ntask='scifact'\nmodel='minilm'\n",
            "unknown key 'sedes'; did you mean 'seeds'",
        ),
        (
            "seeds = 0\n[[matrix]]\ntask='scifact'\nmodel='minilm'\n",
            "'seeds' must be a positive integer",
        ),
        (  # TOML's true is a Python bool, and a bool is an int
            "seeds = true\n[[matrix]]\ntask='scifact'\nmodel='minilm'\n",
            "'seeds' must be a positive integer",
        ),
        ("seeds = 1\n", "needs at least one \\[\\[matrix\\]\\] block"),
        ("matrix = [1]\n", "\\[\\[matrix\\]\\] #1: expected a table, got 1"),
        ("[[matrix]]\nmodel='minilm'\n", "missing 'task'"),
        (
            "[[matrix]]\ntask = 3\nmodel='minilm'\n",
            "expected a name or a list of names",
        ),
        ("[[matrix\n", "suite file .*suite.toml"),
    ],
)
def test_malformed_suites_give_one_line_errors(tmp_path, text, message):
    with pytest.raises(UsageError, match=message) as info:
        load_suite(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_a_suite_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "suite.toml"
    path.write_bytes(b"[[matrix]]\ntask = 'sci\xfffact'\nmodel = 'minilm'\n")
    with pytest.raises(UsageError) as info:
        load_suite(str(path))
    assert str(info.value) == f"suite file {path}: line 2 is not valid UTF-8"


def test_unknown_suite_name():
    with pytest.raises(UsageError, match="did you mean 'quick'"):
        load_suite("quik")


def test_incompatible_components_are_dropped_with_a_note(registries):
    import torch

    from harness import Sampler, hookimpl

    class KgeOnly(Sampler):
        name = "kge-only"
        families = frozenset({"kge"})

        def sample(self, batch, num_negatives, generator):
            return torch.zeros(batch.size, num_negatives, dtype=torch.long)

    class Plugin:
        @hookimpl
        def harness_register_samplers(self):
            return [KgeOnly]

    host = make_plugin_host(
        PluginOptions(autoload=False), extra=[("kge-plugin", Plugin())]
    )
    expansion = expand_matrix(
        host.registries,
        selections=Selections(
            task=["scifact"],
            model=["minilm-adapter"],
            loss=["infonce"],
            sampler=["kge-only", "random"],
        ),
    )
    assert [s.sampler for s in expansion.specs] == ["random"]
    assert any(
        "'kge-only' does not support the retrieval family" in n for n in expansion.notes
    )
    # '*' silently takes only compatible ones
    expansion = expand_matrix(
        host.registries,
        selections=Selections(
            task=["scifact"], model=["minilm-adapter"], loss=["infonce"]
        ),
    )
    assert "kge-only" not in {s.sampler for s in expansion.specs}


def test_a_component_skipped_for_several_families_gets_one_note(registries):
    expansion = expand_matrix(
        registries,
        selections=Selections(
            task=["tiny-retrieval", "tiny-sts", "tiny-multilabel", "tiny-kge"],
            model=["bow"],
            loss=["infonce"],
            sampler=["random"],
        ),
    )
    assert {s.task for s in expansion.specs} == {"tiny-retrieval", "tiny-sts"}
    assert [n for n in expansion.notes if "'bow'" in n] == [
        "model 'bow' does not support the multilabel and kge families "
        "(it supports retrieval, sts); skipped"
    ]


def test_parse_param_values():
    assert parse_param("sampler.simans.a=0.5") == ("sampler", "simans", "a", 0.5)
    assert parse_param("sampler.simans.kernel=laplace") == (
        "sampler",
        "simans",
        "kernel",
        "laplace",
    )
    assert parse_param("task.scifact.epochs=2") == ("task", "scifact", "epochs", 2)
    assert parse_param("model.minilm-adapter.shared=false")[3] is False
    with pytest.raises(UsageError, match=r"KIND\.NAME\.KEY=VALUE"):
        parse_param("simans.a=0.5")
