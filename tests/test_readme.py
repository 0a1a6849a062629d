"""The README's plugin example works as written (tiny set, toy model)."""

from __future__ import annotations

import re

import pytest
from conftest import REPO, TOY, results_json


def readme_python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_sampler_plugin_runs_from_a_plugins_dir(
    run_harness, tiny_beir, tmp_path
):
    plugin_source = next(b for b in readme_python_blocks() if "class HalfHard" in b)
    plugin_dir = tmp_path / "my_plugins"
    plugin_dir.mkdir()
    (plugin_dir / "my_sampler.py").write_text(plugin_source)
    done = run_harness(
        "bench",
        *TOY,
        "--plugins-dir",
        str(plugin_dir),
        "--task",
        f"beir:{tiny_beir}",
        "--param",
        "task.beir.epochs=1",
        "--model",
        "toy-bow",
        "--loss",
        "infonce",
        "--sampler",
        "half-hard",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = results_json(run_harness)
    assert result["sampler"] == "half-hard" and result["status"] == "ok"
    assert result["diagnostics"]["negatives_sampled"] > 0


def test_readme_contract_example_is_valid(tmp_path):
    blocks = readme_python_blocks()
    plugin = next(b for b in blocks if "class HalfHard" in b)
    contract = next(b for b in blocks if "SamplerContract" in b)
    namespace: dict[str, object] = {}
    exec(compile(plugin + "\n" + contract, "README.md", "exec"), namespace)
    test_class = namespace["TestHalfHard"]
    instance = test_class()
    ran = 0
    for name in dir(test_class):
        if name.startswith("test_"):
            try:
                getattr(instance, name)()
            except pytest.skip.Exception:  # the reads_scores=False check
                continue
            ran += 1
    assert ran >= 5
