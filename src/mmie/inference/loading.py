"""Load a saved model folder (see :mod:`mmie.inference.saving`) for prediction and evaluation.

    model = mmie.load_model("runs/bert_crf/model")
    predictions = model.predict(posts)          # prediction-line dicts, in input order
    scores = model.evaluate(posts)               # metrics, with the by-number-of-images breakdown

Weights come from safetensors and the tokenizer from its JSON files (a word-level model's
vocabulary from ``vocabulary.json``): no pickle is read. A model folder is data: none of its code
runs (``trust_remote_code=False``), what it names (its vision encoder, a detector) is read from local
folders or the Hugging Face cache only, never downloaded (:mod:`mmie.encoders.hub`), and its paths
never choose where mmie writes: the ``feature_cache`` it was trained with is dropped, so frozen
features go to ``$MMIE_CACHE_DIR`` (or the default root).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_model as load_safetensors

from mmie.encoders.hub import local_files_only
from mmie.errors import ConfigError, DataError, MmieError
from mmie.inference.predict import Predictor
from mmie.inference.saving import CONFIG_NAME, MODEL_FORMAT, WEIGHTS_NAME
from mmie.models.registry import create_model, create_processor, create_vocabulary

if TYPE_CHECKING:
    from mmie.data.images import ImageDirs
    from mmie.features.processor import Processor, TextVocabulary
    from mmie.models.base import ExtractionModel


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: the one asked for, else the GPU when there is one, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class LoadedModel:
    """A trained model with its tokenizer (or word vocabulary), ready to predict."""

    model: ExtractionModel
    tokenizer: TextVocabulary
    path: Path
    images: ImageDirs | None = None  # image folder(s) the records' image references resolve against

    def __post_init__(self) -> None:
        self.processor = self.new_processor()
        self._predictor = Predictor(self.model, self.processor)

    def new_processor(self, images: ImageDirs | None = None, **settings: Any) -> Processor:
        """A processor for this model's inputs: its own config, or with ``settings`` changed (the same
        model fed other inputs, e.g. another crop dictionary); ``images``: another image folder."""
        config = self.model.model_config.model_copy(update=settings) if settings else self.model.model_config
        with local_files_only():  # what the folder names is never downloaded, now or on first use
            return create_processor(
                config, self.tokenizer, self.labels, images=images if images is not None else self.images
            )

    @property
    def task(self) -> str:
        return self.model.task

    @property
    def labels(self) -> list[str]:
        return list(self.model.labels)

    def iter_predictions(self, records: Sequence[Any], batch_size: int = 64, progress: bool = True) -> Iterator[dict]:
        return self._predictor.iter_predictions(records, batch_size=batch_size, progress=progress)

    def predict(self, records: Sequence[Any], batch_size: int = 64, progress: bool = False) -> list[dict]:
        return self._predictor.predict(records, batch_size=batch_size, progress=progress)

    def evaluate(self, records: Sequence[Any], batch_size: int = 64, progress: bool = False) -> dict:
        return self._predictor.evaluate(records, batch_size=batch_size, progress=progress)


def read_model_config(path: Path) -> dict:
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise MmieError(f"{path}: not an mmie model folder (no {CONFIG_NAME})")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as error:  # (UnicodeDecodeError is a ValueError)
        raise MmieError(f"{config_path}: not valid JSON: {error}") from None
    except OSError as error:
        raise MmieError(f"{config_path}: cannot read it: {error.strerror or error}") from None
    if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
        raise MmieError(f"{config_path}: not an mmie model config (format is not {MODEL_FORMAT!r})")
    expected = {"model": str, "labels": list, "model_config": dict, "components": dict}
    for key, kind in expected.items():
        if not isinstance(config.get(key), kind):
            raise MmieError(f"{config_path}: {key}: missing, or not a JSON {_JSON_NAMES[kind]}")
    if not config["labels"] or not all(isinstance(label, str) for label in config["labels"]):
        raise MmieError(f"{config_path}: labels: not a list of label names")
    if not all(isinstance(part, dict) for part in config["components"].values()):
        raise MmieError(f"{config_path}: components: each part's config is a JSON object")
    return config


_JSON_NAMES = {str: "string", list: "list", dict: "object"}


def load_model(
    path: str | Path, device: str | torch.device | None = None, images: ImageDirs | None = None
) -> LoadedModel:
    """Load the model folder ``path`` (offline: nothing is downloaded).

    ``images``: the folder the records' image references resolve against (image models need it).
    """
    path = Path(path)
    config = read_model_config(path)
    settings = {**config["model_config"], "name": config["model"]}
    if settings.get("feature_cache") is not None:  # a folder's path never chooses where mmie writes
        settings["feature_cache"] = None
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise MmieError(f"{path}: the model folder has no {WEIGHTS_NAME}")
    with local_files_only():
        try:
            model = create_model(settings, config["labels"], component_configs=config["components"])
        except ConfigError as error:  # what the folder's config names or holds: say which folder
            raise MmieError(f"{path}: {error}") from None
        try:  # the folder's tokenizer files, or a word-level model's vocabulary.json
            tokenizer = create_vocabulary(model.model_config, folder=path)
        except (ConfigError, DataError) as error:
            raise MmieError(f"{path}: the model folder's tokenizer: {str(error).split(': ', 1)[-1]}") from None
    try:
        load_safetensors(model, str(weights), strict=True)
    except Exception as error:  # a damaged or foreign weights file: safetensors raises its own types
        raise MmieError(f"{weights}: cannot load the weights: {str(error).splitlines()[0]}") from None
    model.to(choose_device(device)).eval()
    return LoadedModel(model, tokenizer, path, images)
