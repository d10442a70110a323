"""Models: one file per model, each registered by name (see :mod:`mmie.models.registry`).

    from mmie.models import create_model, list_models
    model = create_model("bert_crf", {"encoder": "minilm"}, labels)
"""

from __future__ import annotations

# Importing a model file registers it. Later model files add their import here.
from mmie.models import bert_cls, bert_crf, bert_softmax, mtb  # noqa: F401
from mmie.models import glra, mre_image_baselines, prefix_baselines, tpm_mi  # noqa: F401
from mmie.models import focalmre  # noqa: F401
from mmie.models.base import ExtractionModel, ModelConfig
from mmie.models.registry import create_model, get_model_entry, list_models, model_config, register_model

__all__ = [
    "ExtractionModel",
    "ModelConfig",
    "create_model",
    "get_model_entry",
    "list_models",
    "model_config",
    "register_model",
]
