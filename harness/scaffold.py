"""``harness new-plugin NAME``: a minimal installable plugin package.

The package has a ``pyproject.toml`` declaring the ``harness`` entry point,
the component (a small but real method to edit), and a test that runs the
component through negbench's contract kit (:mod:`harness.testing`).  It
passes its own tests unchanged::

    harness new-plugin soft-hard --kind sampler
    pip install -e soft-hard
    pytest soft-hard                  # the contracts
    harness validate soft-hard        # contracts + a smoke run per family
    harness bench --task scifact --model minilm-adapter --loss infonce \\
        --sampler soft-hard
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import UsageError

__all__ = ["KINDS", "new_plugin"]

KINDS = ("sampler", "loss")

_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "{title}: a negbench {kind} plugin"
requires-python = ">=3.11"
dependencies = ["negbench"]

# negbench finds the plugin through this entry point once the package is
# installed: `harness plugins` lists it, `harness bench --{kind} {name}` runs it.
[project.entry-points.harness]
{module} = "{module}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_SAMPLER = '''\
"""{title}: TODO describe the method and cite its paper here.

Negatives are drawn without replacement in proportion to
softmax(score / temperature) over the candidates that are not known
positives: a low temperature approaches top-k hard negatives, a high one
uniform random negatives (the "softmax sampling" family of hard-negative
mining, e.g. Robinson et al., "Contrastive Learning with Hard Negative
Samples", ICLR 2021).
"""

from __future__ import annotations

import torch

from harness import CandidateBatch, Sampler, hookimpl
from harness.sampling import log_weighted_draw

__all__ = ["{cls}"]


class {cls}(Sampler):
    """K negatives drawn in proportion to softmax(score / temperature)."""

    name = "{name}"
    families = frozenset({{"retrieval", "sts", "kge"}})
    pool = "mined"  # the model's current top-scored candidates

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.temperature = temperature

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        logits = (batch.scores / self.temperature).masked_fill(
            batch.known_positive, float("-inf")
        )
        # negbench's helper: K draws without replacement in proportion to
        # exp(logits) (Gumbel-top-k), never a -inf column, and with
        # replacement in a row that has fewer than K allowed candidates
        return log_weighted_draw(logits, num_negatives, generator)


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [{cls}]
'''

_LOSS = '''\
"""{title}: TODO describe the method and cite its paper here.

A margin ranking loss over the sampled negatives: every negative scored
within ``margin`` of the positive costs (margin - (positive - negative)),
averaged over the valid negatives of each anchor (the classic triplet /
margin-ranking objective, e.g. Weinberger & Saul, JMLR 2009).
"""

from __future__ import annotations

import torch

from harness import Loss, hookimpl

__all__ = ["{cls}"]


class {cls}(Loss):
    """Mean hinge over the valid negatives of each anchor."""

    name = "{name}"
    families = frozenset({{"retrieval", "sts", "kge"}})

    def __init__(self, margin: float = 0.2) -> None:
        super().__init__()  # a Loss is a torch.nn.Module
        if margin <= 0:
            raise ValueError("margin must be > 0")
        self.margin = margin

    def forward(
        self, positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        hinge = torch.relu(self.margin - (positive[:, None] - negative))
        hinge = torch.where(mask, hinge, torch.zeros_like(hinge))
        return hinge.sum(dim=1) / mask.sum(dim=1).clamp(min=1)


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [{cls}]
'''

_TEST = '''\
"""{title} through negbench's contract kit: the checks every {kind} passes."""

from harness.testing import {contract}

from {module} import {cls}


class Test{cls}({contract}):
    {attr} = {cls}
'''

_README = """\
# {dist}

A negbench {kind} plugin.

    pip install -e .
    pytest                          # negbench's contracts for a {kind}
    harness validate {dist}         # contracts + a smoke run per task family
    harness bench --{kind} {name} ...

Edit `src/{module}/__init__.py`; keep `name` unique among negbench's {kind}s
(`harness list {plural}`).
"""


def new_plugin(name: str, kind: str, parent: Path) -> Path:
    """Write the package ``parent/NAME`` and return its folder."""
    if kind not in KINDS:
        raise UsageError(
            f"--kind {kind}: scaffolds exist for {', '.join(KINDS)} "
            "(models and tasks: see docs/writing-plugins.md)"
        )
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name):
        raise UsageError(
            f"plugin name {name!r}: use lower-case words joined by '-' "
            "(it becomes the component's registry name)"
        )
    folder = parent / name
    if folder.exists():
        raise UsageError(f"{folder} already exists; nothing was written")
    module = name.replace("-", "_")
    fields = {
        "dist": name,
        "name": name,
        "module": module,
        "kind": kind,
        "plural": "losses" if kind == "loss" else f"{kind}s",
        "title": name.replace("-", " ").capitalize(),
        "cls": "".join(part.capitalize() for part in name.split("-"))
        + kind.capitalize(),
        "contract": "SamplerContract" if kind == "sampler" else "LossContract",
        "attr": "sampler_cls" if kind == "sampler" else "loss_cls",
    }
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"src/{module}/__init__.py": _SAMPLER if kind == "sampler" else _LOSS,
        f"tests/test_{module}.py": _TEST,
    }
    for relative, template in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(template.format(**fields))
    return folder
