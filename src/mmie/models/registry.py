"""The model registry: ``@register_model`` on a model class, ``create_model(name, ...)`` to build one.

Like timm's registry: every model file registers its class under a short name, and configs, the
CLI and the tests find models only through here. Each class declares its task (``"ner"`` or
``"re"``) and its typed config class (a :class:`mmie.models.base.ModelConfig` subclass).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mmie.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from mmie.models.base import ExtractionModel, ModelConfig

TASKS = ("ner", "re")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    model_class: type[ExtractionModel]
    task: str
    config_class: type[ModelConfig]
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str) -> Callable[[type[ExtractionModel]], type[ExtractionModel]]:
    """Class decorator: make a model available to configs and ``create_model`` under ``name``."""

    def register(model_class: type[ExtractionModel]) -> type[ExtractionModel]:
        task = getattr(model_class, "task", None)
        if task not in TASKS:
            raise TypeError(f"{model_class.__name__}.task must be one of {TASKS}, got {task!r}")
        if name in _REGISTRY and _REGISTRY[name].model_class is not model_class:
            raise ValueError(f"model name {name!r} is already registered by {_REGISTRY[name].model_class}")
        doc = (model_class.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = ModelEntry(name, model_class, task, model_class.config_class, doc[0] if doc else "")
        model_class.registry_name = name
        return model_class

    return register


def _ensure_builtin_models() -> None:
    # The built-in model files register themselves when imported.
    import mmie.models  # noqa: F401


def list_models(task: str | None = None) -> list[str]:
    """Registered model names (of one task when given), sorted."""
    _ensure_builtin_models()
    return sorted(name for name, entry in _REGISTRY.items() if task is None or entry.task == task)


def get_model_entry(name: str) -> ModelEntry:
    _ensure_builtin_models()
    if name not in _REGISTRY:
        raise ConfigError(f"model.name: unknown model {name!r} (known: {', '.join(list_models())})")
    return _REGISTRY[name]


def model_config(name: str, settings: ModelConfig | dict[str, Any] | None = None) -> ModelConfig:
    """The typed config of model ``name`` from a mapping (ConfigError naming the key when invalid)."""
    from mmie.training.config import config_error

    entry = get_model_entry(name)
    if isinstance(settings, entry.config_class):
        return settings
    values = dict(settings.model_dump() if hasattr(settings, "model_dump") else settings or {})
    values.setdefault("name", name)
    if values["name"] != name:
        raise ConfigError(f"model.name: {values['name']!r} does not match the model {name!r}")
    try:
        return entry.config_class.model_validate(values)
    except ValidationError as error:
        raise config_error(error, prefix="model") from None


def create_model(
    name: str,
    config: ModelConfig | dict[str, Any] | None,
    labels: Sequence[str],
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    component_configs: dict[str, dict] | None = None,
) -> ExtractionModel:
    """Build model ``name`` for ``labels``.

    Without ``component_configs`` the pretrained parts (text encoder, ...) load their weights; with
    them (the saved configs of a model folder) they are built empty, for the saved weights to be
    loaded after. ``tokenizer``: the (possibly extended) tokenizer whose vocabulary the embeddings
    must cover; they are resized when it has tokens the encoder lacks (entity markers).
    """
    entry = get_model_entry(name)
    settings = model_config(name, config)
    components = entry.model_class.build_components(settings, component_configs)
    model = entry.model_class(settings, list(labels), **components)
    if tokenizer is not None:
        model.fit_vocabulary(len(tokenizer))
    return model
