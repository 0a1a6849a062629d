"""``harness validate``: contracts and smoke runs, with messages that say
what to fix, on a plugin file a method author would write."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from harness.cli import main
from harness.validate import Check, _print

PLUGIN = '''
import torch
from harness import Sampler, hookimpl


class FirstK(Sampler):
    """The hookspec docstring's minimal sampler: correct."""

    name = "first-k"
    families = frozenset({"retrieval"})

    def sample(self, batch, num_negatives, generator):
        order = batch.known_positive.float().argsort(dim=1, stable=True)
        return order[:, :num_negatives]


class OneTooMany(Sampler):
    """Forgets that num_negatives is the number of columns to return."""

    name = "one-too-many"
    families = frozenset({"retrieval"})

    def sample(self, batch, num_negatives, generator):
        order = batch.known_positive.float().argsort(dim=1, stable=True)
        return order[:, : num_negatives + 1]


@hookimpl
def harness_register_samplers():
    return [FirstK, OneTooMany]
'''


def test_validate_passes_a_good_sampler_and_explains_a_broken_one(
    run_harness, tmp_path: Path
) -> None:
    plugin = tmp_path / "my_samplers.py"
    plugin.write_text(PLUGIN)
    done = run_harness("validate", str(plugin))
    assert done.returncode == 1, done.stdout + done.stderr
    report = done.stdout
    good, broken = report.split("sampler one-too-many")
    assert "sampler first-k (families: retrieval)" in good
    assert "FAIL" not in good
    assert "pass smoke run: tiny-retrieval · bow · infonce · first-k: ndcg@10=" in good
    assert (
        "FAIL shape dtype and range: sample() returned shape (8, 6), expected "
        "(8, 5): one row per anchor, num_negatives columns"
    ) in broken
    assert (
        "FAIL smoke run: tiny-retrieval · bow · infonce · one-too-many: sampler "
        in broken
    )
    assert report.rstrip().endswith("8 passed, 4 failed, 2 skipped")


def test_validate_target_must_be_a_plugin(tmp_path: Path, capsys) -> None:
    assert main(["validate", "no_such_module_anywhere"]) == 4
    assert capsys.readouterr().err == (
        "ERROR: no_such_module_anywhere: not a .py file, an installed distribution "
        "with a 'harness' entry point, or an importable module\n"
    )
    empty = tmp_path / "empty_plugin.py"
    empty.write_text("x = 1\n")
    assert main(["validate", str(empty)]) == 4
    assert "registers no sampler, loss, model or task" in capsys.readouterr().err


BROKEN_MODEL = '''
import torch
from harness import KGEModel, hookimpl


class SharedOnly(KGEModel):
    """DistMult whose score_shared forgets the ``tails`` argument."""

    name = "shared-only"

    @property
    def built(self):
        return hasattr(self, "entities")

    def build(self, num_entities, num_relations):
        self.entities = torch.nn.Embedding(num_entities, 16)
        self.relations = torch.nn.Embedding(num_relations, 16)

    def score_pairs(self, heads, relations, tails):
        query = self.entities(heads) * self.relations(relations)
        return torch.einsum("bd,bkd->bk", query, self.entities(tails))

    def score_shared(self, heads, relations, tails=None):
        query = self.entities(heads) * self.relations(relations)
        return query @ self.entities.weight.T


@hookimpl
def harness_register_models():
    return [SharedOnly]
'''


def test_validate_checks_a_model_through_its_contract(
    run_harness, tmp_path: Path
) -> None:
    plugin = tmp_path / "my_model.py"
    plugin.write_text(BROKEN_MODEL)
    done = run_harness("validate", str(plugin))
    assert done.returncode == 1, done.stdout + done.stderr
    report = done.stdout
    assert "model shared-only (families: kge)" in report
    assert "pass trains and evaluates on each family" in report
    assert (
        "FAIL outputs have the promised shapes: score_shared(heads, relations, tails "
        "(M,)) returned (5, 12), expected (B, M) = (5, 4): score only the given tails"
    ) in " ".join(report.split())
    assert "pass smoke run: tiny-kge · shared-only · nssa · uniform: mrr=" in report


def _hanging_checks(kind, cls, label, announce):
    from harness.validate import Check

    announce("first check")
    yield Check(label, "first check", "pass")
    announce("hangs forever")
    import time

    time.sleep(3600)
    yield Check(label, "never reached", "pass")


def test_a_hanging_contract_check_fails_after_the_timeout() -> None:
    import time

    from harness.validate import _isolated

    start = time.monotonic()
    checks = _isolated(_hanging_checks, "sampler", object, "sampler stuck", 1.0)
    assert time.monotonic() - start < 30
    assert [(c.name, c.outcome) for c in checks] == [
        ("first check", "pass"),
        ("hangs forever", "FAIL"),
    ]
    assert checks[-1].message == "timed out after 1 s"


def test_validate_timeout_must_be_positive(capsys) -> None:
    assert main(["validate", "x.py", "--timeout", "0"]) == 4
    assert "--timeout 0.0: must be a positive number" in capsys.readouterr().err


def test_a_check_message_is_printed_as_it_is() -> None:
    """A failed check quotes the plugin's exception, which may hold "[...]":
    the report shows it, rich does not read it as markup."""
    out = io.StringIO()
    message = "sample() raised IndexError: index [/3] out of range for [bold] axis"
    _print(
        Console(file=out, width=200), Check("sampler x", "smoke run", "FAIL", message)
    )
    assert out.getvalue().strip() == f"FAIL smoke run: {message}"
