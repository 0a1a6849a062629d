"""``mteb:NAME``: score a harness text model on any MTEB STS or Retrieval task.

``--task mteb:STS12`` or ``--task mteb:SciFact`` hands the run's model to
MTEB (Muennighoff et al., EACL 2023) through
:class:`negbench_plugins.models.mteb_encoder.MtebEncoder` and stores MTEB's
scores for the test split: its STS tasks form the ``sts`` family (main metric
``cosine_spearman``), its Retrieval tasks the ``retrieval`` family
(``ndcg_at_10``); the family and main metric come from MTEB's task metadata,
which is available offline.

The task only evaluates.  A trainable model is first trained by another
registered task when ``train_on`` names one (``--param mteb.train_on=stsb``):
that task is created with its defaults and its protocol trains the model with
the run's loss and sampler, so a model trained on one dataset is also scored
on any MTEB task.  Without ``train_on`` a trainable model is scored as it was
initialised.

MTEB downloads its datasets from the Hugging Face hub.  A dataset already in
the local Hugging Face cache is used offline; otherwise the hub must be
reachable (checked with a short timeout), or the task's runs are skipped with
one line saying so.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness import Evaluation, Model, Task, TaskInfo, hookimpl
from harness.context import RunContext
from harness.data import CONNECT_TIMEOUT_S, DataLocator
from harness.errors import DatasetUnavailable, UsageError
from harness.registry import split_name
from harness.types import DatasetRef

__all__ = ["MtebTask", "mteb_task_info"]

#: MTEB task type -> negbench family
FAMILY_OF_TYPE = {"STS": "sts", "Retrieval": "retrieval"}


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


@functools.lru_cache(maxsize=64)
def mteb_task_info(task_name: str) -> tuple[str, str, str, str, str]:
    """(family, main score, dataset path, dataset revision, description) of an
    MTEB task, from its metadata (offline).

    :raises UsageError: unknown name, or a task type negbench cannot run.
    """
    import mteb

    try:
        metadata = mteb.get_task(task_name).metadata
    except KeyError as exc:
        message = str(exc.args[0]) if exc.args else ""
        match = re.search(r"Did you mean:? '([^']+)'", message)
        hint = f"; did you mean 'mteb:{match.group(1)}'?" if match else ""
        raise UsageError(
            f"unknown MTEB task '{task_name}'{hint} (mteb.get_tasks() lists them)"
        ) from None
    family = FAMILY_OF_TYPE.get(metadata.type)
    if family is None:
        raise UsageError(
            f"MTEB task '{task_name}' is of type {metadata.type}; negbench runs "
            f"only {' and '.join(FAMILY_OF_TYPE)} tasks"
        )
    dataset = metadata.dataset
    return (
        family,
        str(metadata.main_score),
        str(dataset.get("path", "")),
        str(dataset.get("revision", "")),
        " ".join(str(metadata.description).split()),
    )


def _mteb_name(name: str | None) -> str:
    argument = split_name(name or "")[1]
    if not argument:
        raise UsageError(
            "task 'mteb' needs an MTEB task name: mteb:STS12, mteb:SciFact"
        )
    return argument


def _in_hf_cache(path: str, revision: str) -> bool:
    """Whether the hub snapshot of dataset ``path`` is in the local HF cache."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(
            path, repo_type="dataset", revision=revision or None, local_files_only=True
        )
    except Exception:  # LocalEntryNotFoundError and friends: not cached
        return False
    return True


def _hub_problem(path: str, revision: str) -> str | None:
    """Why the hub cannot serve dataset ``path`` right now (None: it can)."""
    from huggingface_hub import HfApi

    try:
        HfApi().dataset_info(path, revision=revision or None, timeout=CONNECT_TIMEOUT_S)
    except Exception as exc:
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    return None


@dataclass(slots=True)
class MtebData:
    """The MTEB task, and the training task with its data when ``train_on``."""

    task: Any
    trainer: tuple[Task, Any] | None = None


class MtebTask(Task):
    """Any MTEB STS or Retrieval task: ``--task mteb:NAME`` (evaluation only).

    :param argument: the MTEB task name (``STS12``, ``SciFact``...).
    :param train_on: a registered negbench task (``stsb``, ``scifact``,
        ``beir:PATH``) whose protocol trains a trainable model before MTEB
        scores it; None (default) trains nothing.
    :param batch_size: texts per batch MTEB hands the encoder.
    """

    name = "mteb"
    families = frozenset({"retrieval", "sts"})
    accepts_argument = True
    description = (
        "An MTEB STS or Retrieval task, scored by MTEB on its test split; "
        "evaluation only: trains nothing unless train_on names a negbench task."
    )

    def __init__(
        self,
        *,
        argument: str = "",
        train_on: str | None = None,
        batch_size: int = 64,
    ) -> None:
        if not argument:
            raise ValueError("use mteb:NAME with an MTEB task name, e.g. mteb:STS12")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.task_name = argument
        self.train_on = train_on or None
        self.batch_size = batch_size

    @classmethod
    def info(cls, name: str | None = None) -> TaskInfo:
        task_name = _mteb_name(name)
        family, main_score, _, _, description = mteb_task_info(task_name)
        return TaskInfo(
            name=name or f"mteb:{task_name}",
            family=family,
            main_metric=main_score,
            description=f"MTEB {task_name}: {description} ({cls.description})",
        )

    # -- data -----------------------------------------------------------------------

    def locate(self, locator: DataLocator) -> DatasetRef:
        _, _, path, revision, _ = mteb_task_info(self.task_name)
        ref = functools.partial(
            DatasetRef,
            name=f"mteb:{self.task_name}",
            path=path,
            sha256=hashlib.sha256(
                f"mteb:{self.task_name}@{revision}".encode()
            ).hexdigest(),
        )
        if not path or _in_hf_cache(path, revision):
            return ref(origin="cache")
        offline = [f for f in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if _truthy(f)]
        if locator.offline:
            offline.append("HARNESS_OFFLINE/--offline")
        problem = (
            f"{' and '.join(offline)} set" if offline else _hub_problem(path, revision)
        )
        if problem is None:
            return ref(origin="download")
        raise DatasetUnavailable(
            f"MTEB task '{self.task_name}' needs network access to the Hugging Face "
            f"hub for its dataset {path} ({problem}); to run it offline, fill the "
            f"HF cache once online: `hf download {path} --repo-type dataset "
            f"--revision {revision}`"
        )

    def load(self, dataset: DatasetRef, context: RunContext) -> MtebData:
        import mteb

        return MtebData(task=mteb.get_task(self.task_name))

    # -- training -------------------------------------------------------------------

    def fit(self, data: MtebData, model: Model, context: RunContext) -> None:
        if self.train_on is None:
            return
        base = split_name(self.train_on)[0]
        entry = context.registries.tasks.get(self.train_on)
        if issubclass(entry.cls, MtebTask):
            raise UsageError("train_on must name a negbench task, not an mteb one")
        family = entry.cls.info(self.train_on).family
        for kind in ("loss", "sampler"):
            component = getattr(context, kind)
            if component is not None and family not in component.families:
                raise UsageError(
                    f"train_on={self.train_on!r} is a {family} task, but {kind} "
                    f"'{component.name}' does not support {family}"
                )
        argument = split_name(self.train_on)[1]
        kwargs: dict[str, Any] = {} if argument is None else {"argument": argument}
        trainer: Task = entry.cls(**kwargs)
        # The session's search path (--data-dir, --offline) when there is one.
        locator = context.locator or DataLocator.from_env(cache_dir=context.cache_dir)
        context.progress(f"training on {base}")
        train_data = trainer.load(trainer.locate(locator), context)
        data.trainer = (trainer, train_data)
        trainer.fit(train_data, model, context)

    # -- evaluation -----------------------------------------------------------------

    def evaluate(self, data: MtebData, model: Model, context: RunContext) -> Evaluation:
        import mteb

        from ..models.mteb_encoder import MtebEncoder

        task = data.task
        result = mteb.evaluate(
            MtebEncoder(model, context),
            task,
            cache=None,
            co2_tracker=False,
            show_progress_bar=False,
            encode_kwargs={"batch_size": self.batch_size, "show_progress_bar": False},
        )
        if result.exceptions:
            raise RuntimeError(f"MTEB failed: {result.exceptions[0].exception}")
        scores = result.task_results[0].scores
        splits = task.metadata.eval_splits
        split = "test" if "test" in scores else splits[0]
        return Evaluation(metrics=average_scores(scores[split]))


def average_scores(subsets: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Float scores of one split, averaged over its subsets (languages)."""
    values: dict[str, list[float]] = {}
    for scores in subsets:
        for key, value in scores.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                values.setdefault(key, []).append(float(value))
    return {
        key: sum(v) / len(v)
        for key, v in values.items()
        if len(v) == len(subsets) and all(math.isfinite(x) for x in v)
    }


@hookimpl
def harness_register_tasks() -> list[type[Task]]:
    return [MtebTask]
