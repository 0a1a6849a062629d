"""Every built-in model through the contract third-party models use
(:class:`harness.testing.ModelContract`): shapes, finite outputs, gradients,
a real run on the tiny task of each family it declares, and determinism."""

from __future__ import annotations

from harness.testing import ModelContract
from negbench_plugins.models.bow import BagOfWords
from negbench_plugins.models.kge import ComplEx, DistMult, RotatE, TransE
from negbench_plugins.models.label_models import LinearLabels, MLPLabels
from negbench_plugins.models.minilm import MiniLM, MiniLMAdapter
from negbench_plugins.models.minilm_full import MiniLMFull


class TestBagOfWords(ModelContract):
    model_cls = BagOfWords


class TestTransE(ModelContract):
    model_cls = TransE


class TestDistMult(ModelContract):
    model_cls = DistMult


class TestComplEx(ModelContract):
    model_cls = ComplEx


class TestRotatE(ModelContract):
    model_cls = RotatE


class TestLinearLabels(ModelContract):
    model_cls = LinearLabels


class TestMLPLabels(ModelContract):
    model_cls = MLPLabels


class TestMiniLM(ModelContract):
    model_cls = MiniLM


class TestMiniLMAdapter(ModelContract):
    model_cls = MiniLMAdapter


class TestMiniLMFull(ModelContract):
    model_cls = MiniLMFull
    # the whole transformer trains: fewer steps keep it to seconds
    run_params = (
        "task.tiny-retrieval.n_train=16",
        "task.tiny-retrieval.num_negatives=1",
        "task.tiny-sts.n_train=60",
    )
