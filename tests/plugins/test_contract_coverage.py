"""The meta-test: every built-in sampler, loss, model and task goes through
the same contract classes third-party plugins use (``harness.testing``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import (
    LabelLossContract,
    LossContract,
    ModelContract,
    SamplerContract,
    TaskContract,
)

HERE = Path(__file__).parent


def _contract_subjects(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """Names of the components that some test module's contract class tests."""
    kinds = ("sampler", "loss", "model", "task")
    covered: dict[str, set[str]] = {kind: set() for kind in kinds}
    for path in sorted(HERE.glob("*/test_*.py")):
        monkeypatch.syspath_prepend(str(path.parent))  # as pytest imports them
        spec = importlib.util.spec_from_file_location(f"coverage_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for value in vars(module).values():
            if not isinstance(value, type):
                continue
            if issubclass(value, SamplerContract) and hasattr(value, "sampler_cls"):
                covered["sampler"].add(value.sampler_cls.name)
            if issubclass(value, LossContract | LabelLossContract) and hasattr(
                value, "loss_cls"
            ):
                covered["loss"].add(value.loss_cls.name)
            if issubclass(value, ModelContract) and hasattr(value, "model_cls"):
                covered["model"].add(value.model_cls.name)
            if issubclass(value, TaskContract) and hasattr(value, "task_cls"):
                covered["task"].add(value.task_cls.name)
    return covered


def test_every_builtin_component_has_a_contract_test(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registries = make_plugin_host(PluginOptions(autoload=False)).registries
    covered = _contract_subjects(monkeypatch)
    for kind in ("sampler", "loss", "model", "task"):
        missing = sorted(set(registries[kind].names()) - covered[kind])
        assert not missing, (
            f"built-in {kind}s without a contract test (subclass "
            f"harness.testing's contract in tests/plugins/): {missing}"
        )
