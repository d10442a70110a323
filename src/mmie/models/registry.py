"""The model registry: each model name bound to its config class, model class and input processor.

    @register_model("glra", config=GlraConfig, processor=image_relation_processor)
    class GlraClassifier(ImageRelationModel): ...

    config = model_config({"name": "glra", "encoder": "minilm"})     # typed, validated
    tokenizer = create_vocabulary(config, train_records)             # or folder= a saved model
    processor = create_processor(config, tokenizer, labels, images="data/images")
    model = create_model(processor.config, labels, tokenizer=tokenizer)

Like timm's registry: training, evaluation, prediction, the Extractor, the tests and the benchmarks
build models and their inputs only through :func:`create_vocabulary`, :func:`create_model` and
:func:`create_processor`. What a model reads text with is declared by its config class: a config
that inherits :class:`~mmie.features.settings.WordInputs` reads words through a vocabulary built
from the training split (``ModelEntry.builds_vocabulary``); any other reads the sub-words of its
encoder's tokenizer.
The built-in families register themselves when :mod:`mmie.models` is imported, which Python does
before any of its modules (this one included) is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mmie.encoders.text import load_tokenizer
from mmie.errors import ConfigError, config_error
from mmie.features.settings import InputSettings, WordInputs
from mmie.features.words import WordVocabulary

if TYPE_CHECKING:
    from mmie.data.images import ImageDirs
    from mmie.data.schema import Post
    from mmie.features.processor import Processor, ProcessorFactory, TextVocabulary
    from mmie.models.base import ExtractionModel, ModelConfig

TASKS = ("ner", "re")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str
    config_class: type[ModelConfig]
    model_class: type[ExtractionModel]
    processor: ProcessorFactory
    description: str

    @property
    def builds_vocabulary(self) -> bool:
        """True when the model reads words through a vocabulary built from the training split (its
        config is a WordInputs), not the sub-words of a pretrained encoder's tokenizer."""
        return issubclass(self.config_class, WordInputs)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, *, config: type[ModelConfig], processor: ProcessorFactory
) -> Callable[[type[ExtractionModel]], type[ExtractionModel]]:
    """Class decorator: make a model available to configs under ``name``, with its config class and
    the factory of its input processor (:mod:`mmie.features.processor`)."""

    def register(model_class: type[ExtractionModel]) -> type[ExtractionModel]:
        task = getattr(model_class, "task", None)
        if task not in TASKS:
            raise TypeError(f"{model_class.__name__}.task must be one of {TASKS}, got {task!r}")
        if name in _REGISTRY and _REGISTRY[name].model_class is not model_class:
            raise ValueError(f"model name {name!r} is already registered by {_REGISTRY[name].model_class}")
        doc = (model_class.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = ModelEntry(name, task, config, model_class, processor, doc[0] if doc else "")
        model_class.config_class = config
        model_class.registry_name = name
        return model_class

    return register


def list_models(task: str | None = None) -> list[str]:
    """Registered model names (of one task when given), sorted."""
    return sorted(name for name, entry in _REGISTRY.items() if task is None or entry.task == task)


def get_model_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise ConfigError(f"model.name: unknown model {name!r} (known: {', '.join(list_models())})")
    return _REGISTRY[name]


def model_config(config: InputSettings | Mapping[str, Any], name: str | None = None) -> ModelConfig:
    """The typed config of a model from a mapping with ``name`` (or a config), validated against the
    named model's config class; a ConfigError naming the key when invalid."""
    values = dict(config.model_dump() if isinstance(config, InputSettings) else config)
    if name is not None:
        values.setdefault("name", name)
        if values["name"] != name:
            raise ConfigError(f"model.name: {values['name']!r} does not match the model {name!r}")
    if "name" not in values:
        raise ConfigError("model.name: required key is missing (one of the registered models)")
    entry = get_model_entry(str(values["name"]))
    if isinstance(config, entry.config_class):
        return config
    try:
        return entry.config_class.model_validate(values)
    except ValidationError as error:
        raise config_error(error, prefix="model") from None


def create_vocabulary(
    config: InputSettings | Mapping[str, Any],
    train_records: Sequence[Post] | None = None,
    *,
    folder: str | Path | None = None,
) -> TextVocabulary:
    """What the configured model reads its text with, the ``tokenizer`` of :func:`create_processor`
    and :func:`create_model`: the fast tokenizer of ``model.encoder``, or for the word-level models
    (``builds_vocabulary``) a WordVocabulary of ``train_records``, the training split (words and
    characters of no other split). ``folder``: a saved model folder, whose tokenizer files or
    ``vocabulary.json`` are read instead (offline)."""
    settings = model_config(config)
    if not get_model_entry(settings.name).builds_vocabulary:
        return load_tokenizer(str(folder) if folder is not None else settings.encoder)
    assert isinstance(settings, WordInputs)
    if folder is not None:
        return WordVocabulary.from_pretrained(folder)
    if train_records is None:
        raise ConfigError(
            f"model.name: {settings.name} builds its vocabulary from the training split: pass its records"
        )
    return WordVocabulary.build(train_records, lowercase=settings.lowercase, zero_digits=settings.zero_digits)


def create_processor(
    config: ModelConfig | Mapping[str, Any],
    tokenizer: TextVocabulary,
    labels: Sequence[str],
    *,
    images: ImageDirs | None = None,
) -> Processor:
    """The input processor of the configured model: tokenizer + featurizer + collator.

    ``tokenizer``: what :func:`create_vocabulary` gives. It prepares ``tokenizer`` first (entity
    markers are added as special tokens); ``processor.config`` is the config completed with what it
    chose (the markers, a vocabulary's sizes), the one to build and save the model with.
    ``images``: the image folder(s) the records' image references resolve against.
    """
    settings = model_config(config)
    return get_model_entry(settings.name).processor(settings, tokenizer, list(labels), images)


def create_model(
    config: InputSettings | Mapping[str, Any],  # processor.config: the settings, completed, of a model config
    labels: Sequence[str],
    *,
    tokenizer: TextVocabulary | None = None,
    component_configs: dict[str, dict] | None = None,
) -> ExtractionModel:
    """Build the configured model for ``labels``.

    Without ``component_configs`` the pretrained parts (text encoder, ...) load their weights; with
    them (the saved configs of a model folder) they are built empty, for the saved weights to be
    loaded after. ``tokenizer``: what the inputs are read with (:func:`create_vocabulary`), given for
    a new model only: the embeddings are resized when it has tokens the encoder lacks (entity
    markers), or filled from pretrained word vectors (``model.word_vectors`` of a word-level model).
    """
    settings = model_config(config)
    model_class = get_model_entry(settings.name).model_class
    components = model_class.build_components(settings, component_configs)
    model = model_class(settings, list(labels), **components)
    if tokenizer is not None:
        model.fit_vocabulary(tokenizer)
    return model
