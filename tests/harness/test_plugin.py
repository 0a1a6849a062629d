"""Discovery: built-ins, -p, entry points, HARNESS_PLUGINS, --plugins-dir, blocking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import UsageError
from harness.plugin import BUILTIN_PLUGINS, PluginOptions, make_plugin_host

SAMPLER_SOURCE = """
import torch
from harness import Sampler, hookimpl

class {cls}(Sampler):
    name = "{name}"
    families = frozenset({{"retrieval"}})

    def sample(self, batch, num_negatives, generator):
        return torch.zeros(batch.size, num_negatives, dtype=torch.long)

@hookimpl
def harness_register_samplers():
    return [{cls}]
"""


def write_sampler_module(folder: Path, module: str, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}.py"
    path.write_text(SAMPLER_SOURCE.format(cls=f"S_{module}", name=name))
    return path


def make_fake_distribution(site: Path, module: str, name: str) -> None:
    """An installed-looking distribution 'fakedist 1.2' with a harness entry point."""
    write_sampler_module(site, module, name)
    info = site / "fakedist-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakedist\nVersion: 1.2\n"
    )
    (info / "entry_points.txt").write_text(f"[harness]\nfake = {module}\n")


def test_builtins_register_through_the_same_hooks():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert set(BUILTIN_PLUGINS) <= set(host.infos)
    assert all(host.infos[name].origin == "builtin" for name in BUILTIN_PLUGINS)
    entry = host.registries.samplers.get("simans")
    assert entry.plugin == "negbench_plugins.samplers.simans"
    assert host.infos[entry.plugin].components == {"sampler": ["simans"]}
    assert "harness_register_samplers" in host.infos[entry.plugin].hooks


def test_each_session_gets_a_fresh_manager():
    first = make_plugin_host(PluginOptions(autoload=False))
    second = make_plugin_host(PluginOptions(autoload=False))
    assert first.pm is not second.pm
    assert first.registries.samplers is not second.registries.samplers


def test_plugins_dir_loads_every_py_file(tmp_path):
    write_sampler_module(tmp_path / "pdir", "mine", "mine")
    (tmp_path / "pdir" / "_private.py").write_text(
        "raise RuntimeError('must not be imported')"
    )
    host = make_plugin_host(
        PluginOptions(autoload=False, plugins_dirs=(str(tmp_path / "pdir"),))
    )
    assert host.registries.samplers.get("mine").plugin == "mine"
    assert host.infos["mine"].origin == "file"
    assert host.infos["mine"].detail.endswith("mine.py")


def test_dash_p_module_and_env_modules(tmp_path, monkeypatch):
    write_sampler_module(tmp_path, "dash_p_mod", "from-p")
    write_sampler_module(tmp_path, "env_mod", "from-env")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HARNESS_PLUGINS", "env_mod")
    options = PluginOptions.from_cli(["dash_p_mod"], [])
    host = make_plugin_host(options)
    assert host.infos["dash_p_mod"].origin == "module"
    assert host.infos["env_mod"].origin == "env"
    assert {"from-p", "from-env"} <= set(host.registries.samplers.names())


def test_entry_points_with_distribution_version(tmp_path, monkeypatch):
    make_fake_distribution(tmp_path, "ep_plugin_mod", "from-ep")
    monkeypatch.syspath_prepend(str(tmp_path))
    host = make_plugin_host(PluginOptions(autoload=True))
    assert host.infos["fake"].origin == "entrypoint"
    assert host.infos["fake"].detail == "fakedist 1.2"
    assert host.registries.samplers.get("from-ep").plugin == "fake"
    # HARNESS_DISABLE_PLUGIN_AUTOLOAD=1 skips entry points
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    host = make_plugin_host(PluginOptions.from_cli([], []))
    assert "fake" not in host.infos
    assert "from-ep" not in host.registries.samplers


def test_block_with_no_prefix(tmp_path):
    write_sampler_module(tmp_path / "pdir", "blockme", "blocked-sampler")
    options = PluginOptions.from_cli(
        ["no:blockme", "no:samplers.simans"], [str(tmp_path / "pdir")]
    )
    host = make_plugin_host(options)
    assert "blocked-sampler" not in host.registries.samplers
    assert "simans" not in host.registries.samplers  # a built-in, by its short name
    assert "random" in host.registries.samplers


def test_essential_plugin_cannot_be_blocked():
    with pytest.raises(UsageError, match="essential"):
        make_plugin_host(PluginOptions.from_cli(["no:harness.runner"], []))


def test_duplicate_component_across_plugins_names_both(tmp_path):
    write_sampler_module(tmp_path / "pdir", "copycat", "simans")
    with pytest.raises(UsageError) as info:
        make_plugin_host(
            PluginOptions(autoload=False, plugins_dirs=(str(tmp_path / "pdir"),))
        )
    message = str(info.value)
    assert "duplicate sampler name 'simans'" in message
    assert "negbench_plugins.samplers.simans" in message and "copycat" in message


def test_broken_plugin_file_is_a_one_line_error(tmp_path):
    pdir = tmp_path / "pdir"
    pdir.mkdir()
    (pdir / "broken.py").write_text("def oops(:\n")
    with pytest.raises(UsageError) as info:
        make_plugin_host(PluginOptions(autoload=False, plugins_dirs=(str(pdir),)))
    assert "broken.py:1: SyntaxError" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_module_is_a_usage_error():
    with pytest.raises(UsageError, match="cannot import 'no_such_module_xyz'"):
        make_plugin_host(PluginOptions(autoload=False, modules=("no_such_module_xyz",)))


def test_unknown_hook_in_installed_plugin_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "typo_mod.py").write_text(
        "def harness_registr_samplers():\n    return []\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        UsageError,
        match=(
            "unknown hook 'harness_registr_samplers'; "
            "did you mean 'harness_register_samplers'"
        ),
    ):
        make_plugin_host(PluginOptions(autoload=False, modules=("typo_mod",)))


def test_unknown_hook_in_local_file_is_skipped_with_a_warning(tmp_path):
    pdir = tmp_path / "pdir"
    pdir.mkdir()
    (pdir / "typo_local.py").write_text(
        "def harness_registr_samplers():\n    return []\n"
    )
    with pytest.warns(UserWarning, match="unknown hook.*plugin skipped"):
        host = make_plugin_host(
            PluginOptions(autoload=False, plugins_dirs=(str(pdir),))
        )
    assert "typo_local" not in host.infos


def test_hookimpl_with_an_argument_the_spec_lacks(tmp_path, monkeypatch):
    (tmp_path / "badargs.py").write_text(
        "def harness_register_samplers(nonsense):\n    return []\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UsageError, match="plugin 'badargs'"):
        make_plugin_host(PluginOptions(autoload=False, modules=("badargs",)))


def test_cli_plugins_json_lists_origins(run_harness, tmp_path):
    site = tmp_path / "site"
    make_fake_distribution(site, "ep_cli_mod", "from-ep-cli")
    write_sampler_module(tmp_path / "pdir", "local_one", "local-one")
    done = run_harness(
        "plugins",
        "--json",
        "--plugins-dir",
        str(tmp_path / "pdir"),
        env={"PYTHONPATH": str(site)},
    )
    assert done.returncode == 0, done.stderr
    infos = {p["name"]: p for p in json.loads(done.stdout)}
    assert (
        infos["fake"]["origin"] == "entrypoint"
        and infos["fake"]["detail"] == "fakedist 1.2"
    )
    assert infos["fake"]["components"] == {"sampler": ["from-ep-cli"]}
    assert infos["local_one"]["origin"] == "file"
    assert infos["negbench_plugins.samplers.simans"]["origin"] == "builtin"
    listed = run_harness(
        "list",
        "samplers",
        "--plugins-dir",
        str(tmp_path / "pdir"),
        env={"PYTHONPATH": str(site)},
    )
    names = listed.stdout.split()
    assert names == sorted(names)  # one registered name per line, sorted
    assert {"from-ep-cli", "local-one", "random", "simans", "topk-hard"} <= set(names)
