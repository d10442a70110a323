"""Save a trained model as a self-contained folder; nothing in it is a pickle.

    model/
      config.json          mmie: model name, task, label set, model config, the parts' HF configs
      model.safetensors    all weights (encoder and head)
      tokenizer.json ...   the tokenizer, entity markers included
                           (word-level models: vocabulary.json, the words and characters of training)

The folder is written next to its destination and moved into place at the end, so an interrupted
save never leaves a half-written model folder. :func:`mmie.inference.loading.load_model` reads it
back offline: the encoder is rebuilt from its saved config, not downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors.torch import save_model as save_safetensors

from mmie._version import __version__ as mmie_version
from mmie.io import atomic_folder

if TYPE_CHECKING:
    from mmie.features.processor import TextVocabulary
    from mmie.models.base import ExtractionModel

MODEL_FORMAT = "mmie-model"
MODEL_FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def model_folder_config(model: ExtractionModel) -> dict:
    return {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "mmie_version": mmie_version,
        "model": model.registry_name,
        "task": model.task,
        "labels": list(model.labels),
        "model_config": model.model_config.model_dump(mode="json"),
        "components": model.component_configs(),
    }


def save_model_folder(model: ExtractionModel, tokenizer: TextVocabulary, path: str | Path) -> Path:
    """Write ``model`` and ``tokenizer`` (what it reads text with) to the folder ``path`` (replacing it,
    atomically)."""
    path = Path(path)
    with atomic_folder(path) as staging:
        save_safetensors(model, str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
        tokenizer.save_pretrained(str(staging))
        # Written after the tokenizer: its config.json (not the tokenizer's) is the folder's config.
        (staging / CONFIG_NAME).write_text(json.dumps(model_folder_config(model), indent=2) + "\n", encoding="utf-8")
    return path
