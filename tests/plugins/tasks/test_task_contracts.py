"""Every built-in task through the contract third-party tasks use
(:class:`harness.testing.TaskContract`): a known family and main metric, a
stable data fingerprint, a real run returning the main metric with per-item
scores, and (once per task class) the same metrics again under the seed.

The runs are shortened (one epoch, the first test items) so all 50 tasks
cost about a minute; their full protocols have their own tests next door.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.components import Task
from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import TaskContract, write_tiny_beir

#: protocol parameters of the contract runs, per family
SHORT: dict[str, dict[str, Any]] = {
    "retrieval": {"epochs": 1},
    "sts": {"epochs": 1},
    "kge": {"epochs": 1, "max_test": 100},
    "multilabel": {"epochs": 1, "max_train": 200, "max_test": 100},
}
#: generated tasks are quick at their own defaults
OWN_DEFAULTS = {"tiny-retrieval", "tiny-sts", "tiny-kge", "tiny-multilabel"}
#: one task per protocol also runs twice (determinism): the rest share it
DETERMINISM = OWN_DEFAULTS | {"cranfield", "stsb", "nations", "yeast", "goemotions"}
SYNTH_FN_SHORT = {"epochs": 1, "n_docs": 600, "n_train": 200, "n_test": 50}
#: NAME:ARGUMENT tasks and the argument their contract runs with
ARGUMENTS = {"beir": "", "mteb": "STS12"}


def _contract(name: str, cls: type[Task]) -> type[TaskContract]:
    family = cls.family
    kwargs = {} if name in OWN_DEFAULTS else dict(SHORT.get(family, {}))
    if name == "synth-fn":
        kwargs = SYNTH_FN_SHORT
    return type(
        f"Test_{name.replace('-', '_')}",
        (TaskContract,),
        {
            "task_cls": cls,
            "task_kwargs": kwargs,
            "task_argument": ARGUMENTS.get(name),
            "check_determinism": name in DETERMINISM,
        },
    )


_TASKS = make_plugin_host(PluginOptions(autoload=False)).registries.tasks
for _name in _TASKS.names():
    _class = _contract(_name, _TASKS.get(_name).cls)
    globals()[_class.__name__] = _class


@pytest.fixture(autouse=True, scope="module")
def _tiny_beir_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``beir:FOLDER`` runs on a tiny BEIR folder written for this module."""
    folder = write_tiny_beir(tmp_path_factory.mktemp("contract") / "tiny")
    globals()["Test_beir"].task_argument = str(folder)
