from __future__ import annotations

import pytest
import torch

from harness import Loss, Sampler, UsageError
from harness.registry import Registry, split_name


class GoodSampler(Sampler):
    name = "good"
    families = frozenset({"retrieval"})

    def sample(self, batch, num_negatives, generator):
        return torch.zeros(batch.size, num_negatives, dtype=torch.long)


def test_duplicate_name_names_both_plugins():
    registry = Registry("sampler")
    registry.add(GoodSampler, "first-plugin")
    with pytest.raises(
        UsageError,
        match=r"duplicate sampler name 'good'.*'first-plugin'.*'second-plugin'",
    ):
        registry.add(GoodSampler, "second-plugin")


def test_unknown_name_suggests_close_matches():
    registry = Registry("sampler")
    registry.add(GoodSampler, "p")
    with pytest.raises(
        UsageError, match=r"unknown sampler 'godo'; did you mean 'good'\?"
    ):
        registry.get("godo")


def test_argument_only_for_tasks_that_accept_one():
    registry = Registry("sampler")
    registry.add(GoodSampler, "p")
    with pytest.raises(UsageError, match="does not take an argument"):
        registry.get("good:x")
    assert split_name("beir:/a/b:c") == ("beir", "/a/b:c")
    assert split_name("scifact") == ("scifact", None)


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"name": ""}, "'name' must be a lower-case identifier"),
        ({"name": "Bad Name"}, "'name' must be a lower-case identifier"),
        ({"families": frozenset()}, "'families' must be a non-empty subset"),
        ({"families": frozenset({"vision"})}, "'families' must be a non-empty subset"),
    ],
)
def test_malformed_classes_fail_at_registration(attrs, message):
    bad = type("Bad", (GoodSampler,), attrs)
    with pytest.raises(UsageError, match=message):
        Registry("sampler").add(bad, "my-plugin")


def test_abstract_methods_must_be_implemented():
    class NoSample(Sampler):
        name = "no-sample"
        families = frozenset({"retrieval"})

    with pytest.raises(UsageError, match="does not implement sample"):
        Registry("sampler").add(NoSample, "p")

    class NoForward(Loss):
        name = "no-forward"
        families = frozenset({"retrieval"})

    with pytest.raises(
        UsageError, match=r"does not implement forward \(or forward_batch\)"
    ):
        Registry("loss").add(NoForward, "p")


def test_wrong_kind_is_rejected():
    with pytest.raises(UsageError, match=r"not a subclass of harness\.Loss"):
        Registry("loss").add(GoodSampler, "p")
    with pytest.raises(UsageError, match="not a subclass"):
        Registry("loss").add(object(), "p")


@pytest.mark.parametrize(
    ("kind", "command"), [("loss", "losses"), ("sampler", "samplers")]
)
def test_unknown_name_points_at_the_list_command(kind: str, command: str) -> None:
    with pytest.raises(UsageError, match=rf"`harness list {command}` shows them all"):
        Registry(kind).get("nothing")
