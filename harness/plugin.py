"""Build a fresh plugin manager for a session: discovery, validation, registries.

Discovery order (pytest's, documented in the README):

1. blocked names from ``-p no:NAME`` are recorded first;
2. built-in plugins (:data:`BUILTIN_PLUGINS`), registered first so that user
   plugins win ``firstresult`` hooks (built-in defaults are ``trylast``);
3. modules named with ``-p MODULE``;
4. entry points in group ``harness``, unless autoload is disabled
   (``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1``);
5. modules listed in ``HARNESS_PLUGINS=mod1,mod2``;
6. every ``*.py`` file in each ``--plugins-dir DIR``.

There is no module-global manager: every session (and every worker process)
builds its own from a picklable :class:`PluginOptions`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .errors import UsageError
from .registry import Registries

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "LEADERBOARD_PLUGINS",
    "PluginHost",
    "PluginInfo",
    "PluginOptions",
    "hookimpl",
    "make_plugin_host",
]

hookimpl = pluggy.HookimplMarker("harness")

ENTRY_POINT_GROUP = "harness"
HOOK_PREFIX = "harness_"

#: built-in plugins, registered exactly like third-party ones
BUILTIN_PLUGINS: tuple[str, ...] = (
    # the host's own
    "harness.runner",
    "harness.executor",
    "harness.ray_executor",
    "harness.submitit_executor",
    "harness.store",
    "harness.terminal",
    # tasks
    "negbench_plugins.tasks.retrieval",
    "negbench_plugins.tasks.sts",
    "negbench_plugins.tasks.synth_fn",
    "negbench_plugins.tasks.mteb_task",
    "negbench_plugins.tasks.kge",
    "negbench_plugins.tasks.multilabel",
    "negbench_plugins.tasks.tiny",
    # models
    "negbench_plugins.models.minilm",
    "negbench_plugins.models.minilm_full",
    "negbench_plugins.models.bow",
    "negbench_plugins.models.kge",
    "negbench_plugins.models.label_models",
    # losses
    "negbench_plugins.losses.infonce",
    "negbench_plugins.losses.margin",
    "negbench_plugins.losses.pairwise_logistic",
    "negbench_plugins.losses.lambdarank",
    "negbench_plugins.losses.dcl",
    "negbench_plugins.losses.hcl",
    "negbench_plugins.losses.cet",
    "negbench_plugins.losses.bml",
    "negbench_plugins.losses.cosent",
    "negbench_plugins.losses.wmse",
    "negbench_plugins.losses.kge_pointwise",
    "negbench_plugins.losses.hasa",
    "negbench_plugins.losses.asl",
    "negbench_plugins.losses.dice",
    "negbench_plugins.losses.large_loss",
    # samplers
    "negbench_plugins.samplers.random",
    "negbench_plugins.samplers.in_batch",
    "negbench_plugins.samplers.topk_hard",
    "negbench_plugins.samplers.simans",
    "negbench_plugins.samplers.star",
    "negbench_plugins.samplers.adore",
    "negbench_plugins.samplers.positive_aware",
    "negbench_plugins.samplers.cluster",
    "negbench_plugins.samplers.moco_filter",
    "negbench_plugins.samplers.dhnm",
    "negbench_plugins.samplers.corruption",
    "negbench_plugins.samplers.hasa",
    "negbench_plugins.samplers.labels",
    # leaderboard
    "negbench_leaderboard.ranking",
    "negbench_leaderboard.json_render",
    "negbench_leaderboard.site",
)
#: the built-ins a leaderboard build uses: ranking and rendering, no components
LEADERBOARD_PLUGINS: tuple[str, ...] = tuple(
    m for m in BUILTIN_PLUGINS if m.startswith("negbench_leaderboard.")
)
#: built-ins that cannot be blocked (nothing would execute runs without them)
ESSENTIAL_PLUGINS: frozenset[str] = frozenset({"harness.runner"})

REGISTRATION_HOOKS: tuple[tuple[str, str], ...] = (
    ("task", "harness_register_tasks"),
    ("model", "harness_register_models"),
    ("loss", "harness_register_losses"),
    ("sampler", "harness_register_samplers"),
)


def _env_flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginOptions:
    """Everything that decides which plugins load; picklable for workers."""

    modules: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()
    plugins_dirs: tuple[str, ...] = ()
    #: single plugin files (``harness validate my_plugin.py``)
    files: tuple[str, ...] = ()
    env_modules: tuple[str, ...] = ()
    autoload: bool = True
    trace: bool = False
    #: load only these built-in modules (None: all of :data:`BUILTIN_PLUGINS`);
    #: ``harness leaderboard build`` needs none of the components
    builtins: tuple[str, ...] | None = None

    @classmethod
    def from_cli(
        cls,
        plugin_args: Iterable[str] = (),
        plugins_dirs: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> PluginOptions:
        """Interpret ``-p`` values (``no:NAME`` blocks) and the environment."""
        env = os.environ if environ is None else environ
        modules, blocked = [], []
        for arg in plugin_args:
            if arg.startswith("no:"):
                blocked.append(arg[3:])
            else:
                modules.append(arg)
        env_modules = tuple(
            m.strip() for m in env.get("HARNESS_PLUGINS", "").split(",") if m.strip()
        )
        return cls(
            modules=tuple(modules),
            blocked=tuple(blocked),
            plugins_dirs=tuple(str(Path(d).resolve()) for d in plugins_dirs),
            env_modules=env_modules,
            autoload=not _env_flag(env, "HARNESS_DISABLE_PLUGIN_AUTOLOAD"),
            trace=_env_flag(env, "HARNESS_TRACE_PLUGINS"),
        )


@dataclass(slots=True, kw_only=True)
class PluginInfo:
    """What ``harness plugins`` prints about one plugin."""

    name: str
    origin: str  #: builtin | module | entrypoint | env | file
    detail: str = ""  #: distribution + version, module path or file path
    hooks: list[str] = field(default_factory=list)
    components: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "origin": self.origin,
            "detail": self.detail,
            "hooks": self.hooks,
            "components": self.components,
        }


class HarnessPluginManager(pluggy.PluginManager):
    """Also treats unmarked ``harness_*`` functions as hook implementations.

    pytest does the same for ``pytest_*``; it means a misspelt hook name in a
    plugin is reported as an unknown hook instead of being silently ignored.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(HOOK_PREFIX):
            method = getattr(plugin, name, None)
            if callable(method) and not isinstance(method, type):
                return {}
        return opts


@dataclass(slots=True)
class PluginHost:
    """A session's plugin manager, its plugin catalogue and registries."""

    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo]
    registries: Registries

    @property
    def hook(self) -> Any:
        return self.pm.hook


class _Loader:
    """Registers plugins in discovery order, recording where each came from."""

    def __init__(self, options: PluginOptions) -> None:
        self.options = options
        self.pm = HarnessPluginManager("harness")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        for name in options.blocked:
            if name in ESSENTIAL_PLUGINS:
                raise UsageError(f"plugin '{name}' is essential and cannot be blocked")
            self.pm.set_blocked(name)

    def is_blocked(self, name: str) -> bool:
        # Built-ins may be blocked by their short name: `-p no:samplers.simans`.
        return any(name == b or name.endswith("." + b) for b in self.options.blocked)

    def register(self, plugin: object, name: str, origin: str, detail: str) -> None:
        if self.is_blocked(name):
            return
        if self.pm.has_plugin(name) or name in self.infos:
            previous = self.infos[name]
            raise UsageError(
                f"plugin name '{name}' ({origin} {detail}) is already taken by "
                f"{previous.origin} plugin {previous.detail}"
            )
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise UsageError(f"plugin '{name}' ({origin} {detail}): {exc}") from None
        self.infos[name] = PluginInfo(name=name, origin=origin, detail=detail)

    def import_module(self, module: str, what: str) -> ModuleType:
        try:
            return importlib.import_module(module)
        except Exception as exc:  # any import-time failure is the plugin's
            raise UsageError(
                f"{what}: cannot import '{module}': {_one_line(exc)}"
            ) from None

    def load_builtins(self, only: tuple[str, ...] | None = None) -> None:
        for module in BUILTIN_PLUGINS if only is None else only:
            if self.is_blocked(module) and module not in ESSENTIAL_PLUGINS:
                continue
            mod = self.import_module(module, "built-in plugin")
            self.register(mod, module, "builtin", _negbench_version())

    def load_modules(self, modules: Iterable[str], origin: str) -> None:
        flag = "-p" if origin == "module" else "HARNESS_PLUGINS"
        for module in modules:
            mod = self.import_module(module, f"plugin {flag} {module}")
            self.register(mod, module, origin, getattr(mod, "__file__", "") or module)

    def load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if self.is_blocked(ep.name):
                continue
            dist = ep.dist
            detail = f"{dist.name} {dist.version}" if dist else ep.value
            try:
                plugin = ep.load()
            except Exception as exc:
                raise UsageError(
                    f"entry point '{ep.name}' ({detail}): cannot load "
                    f"'{ep.value}': {_one_line(exc)}"
                ) from None
            self.register(plugin, ep.name, "entrypoint", detail)

    def load_directory(self, directory: str) -> None:
        path = Path(directory)
        if not path.is_dir():
            raise UsageError(f"--plugins-dir {directory}: not a directory")
        for file in sorted(path.glob("*.py")):
            if not file.name.startswith("_"):
                self.load_file(file)

    def load_file(self, file: Path) -> None:
        if not file.is_file():
            raise UsageError(f"plugin file {file}: no such file")
        if not self.is_blocked(file.stem):
            self.register(_import_file(file), file.stem, "file", str(file))

    def check_unknown_hooks(self) -> None:
        """Unknown hook names: an error, except for local files (skipped)."""
        known = [
            name
            for name, caller in vars(self.pm.hook).items()
            if isinstance(caller, pluggy.HookCaller) and caller.spec is not None
        ]
        for name in list(vars(self.pm.hook)):
            caller = getattr(self.pm.hook, name)
            if not isinstance(caller, pluggy.HookCaller) or caller.spec is not None:
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                info = self.infos[impl.plugin_name]
                hint = difflib.get_close_matches(name, known, n=1)
                message = (
                    f"plugin '{info.name}' ({info.origin} {info.detail}): unknown "
                    f"hook '{name}'" + (f"; did you mean '{hint[0]}'?" if hint else "")
                )
                if info.origin == "file":
                    warnings.warn(message + " (plugin skipped)", stacklevel=2)
                    self.pm.unregister(name=info.name)
                    del self.infos[info.name]
                else:
                    raise UsageError(message)

    def build_registries(self) -> Registries:
        registries = Registries()
        for kind, hook_name in REGISTRATION_HOOKS:
            caller = getattr(self.pm.hook, hook_name)
            # Call implementations one by one so each class is attributed to
            # the plugin that contributed it (duplicate errors name both).
            for impl in caller.get_hookimpls():
                try:
                    classes = impl.function()
                except Exception as exc:
                    raise UsageError(
                        f"plugin '{impl.plugin_name}': {hook_name}() raised "
                        f"{_one_line(exc)}"
                    ) from None
                for cls in classes or ():
                    registries[kind].add(cls, impl.plugin_name)
                    names = self.infos[impl.plugin_name].components.setdefault(kind, [])
                    names.append(cls.name)
        for name, info in self.infos.items():
            plugin = self.pm.get_plugin(name)
            info.hooks = sorted(
                caller.name for caller in (self.pm.get_hookcallers(plugin) or [])
            )
        return registries


def _negbench_version() -> str:
    from . import __version__

    return f"negbench {__version__}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _import_file(file: Path) -> ModuleType:
    """Import a plugins-dir file under a stable, collision-free module name."""
    module_name = f"harness_local_plugins.{file.stem}"
    existing = sys.modules.get(module_name)
    if existing is not None and getattr(existing, "__file__", None) == str(file):
        return existing
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise UsageError(f"--plugins-dir file {file}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise UsageError(
            f"--plugins-dir file {file}:{exc.lineno}: SyntaxError: {exc.msg}"
        ) from None
    except Exception as exc:
        del sys.modules[module_name]
        raise UsageError(f"--plugins-dir file {file}: {_one_line(exc)}") from None
    return module


def make_plugin_host(
    options: PluginOptions | None = None,
    *,
    extra: Iterable[tuple[str, object]] = (),
    trace_writer: Callable[..., None] | None = None,
) -> PluginHost:
    """Create a fresh plugin manager and registries.

    :param options: discovery options (default: built-ins plus autoload).
    :param extra: ``(name, plugin)`` objects to register after discovery;
        tests use it to register inline plugin classes.
    """
    options = options or PluginOptions()
    loader = _Loader(options)
    loader.load_builtins(options.builtins)
    loader.load_modules(options.modules, "module")
    if options.autoload:
        loader.load_entry_points()
    loader.load_modules(options.env_modules, "env")
    for directory in options.plugins_dirs:
        loader.load_directory(directory)
    for file in options.files:
        loader.load_file(Path(file))
    for name, plugin in extra:
        loader.register(plugin, name, "object", type(plugin).__name__)
    loader.check_unknown_hooks()
    if options.trace:
        loader.pm.trace.root.setwriter(trace_writer or _stderr_writer)
        loader.pm.enable_tracing()
    registries = loader.build_registries()
    return PluginHost(pm=loader.pm, infos=loader.infos, registries=registries)


def _stderr_writer(*args: Any) -> None:
    print(*args, file=sys.stderr, end="")
