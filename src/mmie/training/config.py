"""Experiment configs: one YAML file per experiment, validated strictly, overridable with ``--set``.

    task: ner
    model: {name: bert_crf, encoder: minilm, max_length: 128}
    data: {format: twitter, train: data/twitter2017/train.txt, dev: data/twitter2017/valid.txt}
    training: {epochs: 20, batch_size: 16, learning_rate: 4.0e-5}

Unknown keys and wrong types are :class:`mmie.errors.ConfigError` naming the key
(``training.lerning_rate: unknown key``). The ``model`` section is checked against the config
class of the named model (:mod:`mmie.models.registry`). Relative data paths are relative to the
working directory. ``--set training.learning_rate=5e-5`` overrides one key; the value is read as
YAML (``yaml.safe_load``, with ``5e-5`` a float as in YAML 1.2), so numbers, booleans, lists and null
work, after the file's ``base:`` (another config file it extends, :mod:`mmie.training.compose`) is
merged in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, model_validator

from mmie.errors import ConfigError, config_error
from mmie.models.base import ModelConfig
from mmie.models.registry import get_model_entry, model_config
from mmie.training.compose import compose_yaml, load_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    train: Path = Field(description="training file")
    dev: Path | None = Field(None, description="development file: model selection (the best epoch)")
    test: Path | None = Field(None, description="test file: scored once, with the selected model")
    format: str | None = Field(None, description="twitter | mnermi | mnre | mremi; detected when null")
    images: Path | list[Path] | None = Field(
        None,
        description="image folder, or a list of folders searched in order (MNER-MI-Plus: images/ and "
        "twitter2017_images/); multimodal models only, text models ignore it",
    )
    sample_fraction: float | None = Field(
        None, gt=0, le=1, description="low-resource: train on this stratified share of the TRAIN split (0.05 = 5%)"
    )
    sample_per_label: int | None = Field(
        None, ge=1, description="few-shot: train on K examples of every relation label / entity-type set"
    )
    sample_seed: int | None = Field(None, description="seed of the training sample; null: training.seed")

    @model_validator(mode="after")
    def _one_sample(self) -> DataConfig:
        if self.sample_fraction is not None and self.sample_per_label is not None:
            raise ValueError("sample_fraction and sample_per_label: give one of them, not both")
        return self


class TrainingConfig(_Strict):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(4e-5, gt=0, description="AdamW learning rate of the pretrained encoder")
    head_learning_rate: float | None = Field(
        None,
        gt=0,
        description="learning rate of the layers trained from scratch (classifier, CRF); null: learning_rate",
    )
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    max_grad_norm: float = Field(1.0, gt=0)
    gradient_accumulation_steps: int = Field(1, ge=1)
    group_by_length: bool = Field(
        False, description="batch posts of similar length together (less padding, faster; still shuffled)"
    )
    seed: int = 42
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    device: Literal["auto", "cpu"] = Field("auto", description="auto: the GPU when there is one")
    evals_per_epoch: int = Field(
        1, ge=1, description="dev evaluations (each with a checkpoint) per epoch, evenly spaced; the best one is kept"
    )
    logging_steps: int = Field(50, ge=1)
    report_to: list[Literal["tensorboard"]] = Field(default_factory=list)
    keep_checkpoints: bool = Field(False, description="keep checkpoint-* folders after a finished run")


class ExperimentConfig(_Strict):
    name: str | None = Field(None, description="run name; default: the config file's stem")
    task: Literal["ner", "re"]
    model: SerializeAsAny[ModelConfig]
    data: DataConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    output_dir: Path | None = Field(None, description="run folder; default runs/<name>")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# ----------------------------------------------------------------------------- errors


# -------------------------------------------------------------------------- overrides


def apply_overrides(settings: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """``["training.learning_rate=5e-5", ...]`` applied to a nested dict (a new one is returned)."""
    import copy

    result = copy.deepcopy(settings)
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {override!r}: expected key=value, e.g. training.learning_rate=5e-5")
        try:
            value = load_yaml(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"--set {key}: the value is not valid YAML: {error}") from None
        parts = key.strip().split(".")
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: depth + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return result


# ------------------------------------------------------------------------------ loading


def parse_config(settings: Mapping[str, Any], source: str | Path | None = None) -> ExperimentConfig:
    """Validate a config mapping (model section against the named model's config class)."""

    def fail(message: str) -> ConfigError:
        return ConfigError(f"{source}: {message}" if source else message)

    if not isinstance(settings, Mapping):
        raise fail(f"expected a mapping of sections, got {type(settings).__name__}")
    values = dict(settings)
    model = values.get("model")
    if model is None:
        raise fail("model: required key is missing")
    if not isinstance(model, Mapping) or "name" not in model:
        raise fail("model.name: required key is missing (one of the registered models)")
    try:
        entry = get_model_entry(str(model["name"]))
        values["model"] = model_config(dict(model))
    except ConfigError as error:
        raise fail(str(error)) from None
    try:
        config = ExperimentConfig.model_validate(values)
    except ValidationError as error:
        raise config_error(error, source=source) from None
    if entry.task != config.task:
        raise fail(f"model.name: {entry.name!r} is a {entry.task} model but task is {config.task!r}")
    return config


def load_config(
    config: ExperimentConfig | Mapping[str, Any] | str | Path, overrides: Iterable[str] = ()
) -> ExperimentConfig:
    """An ExperimentConfig from a YAML file, a mapping or a config, with ``--set`` overrides applied."""
    source: Path | None = None
    overrides = list(overrides)
    if isinstance(config, ExperimentConfig):
        if not overrides:
            return config
        settings: Any = config.model_dump(mode="json")
    elif isinstance(config, Mapping):
        settings = dict(config)
    else:
        source = Path(config)
        settings = compose_yaml(source)  # with its base: merged under it
        settings.setdefault("name", source.stem)
    return parse_config(apply_overrides(settings, overrides), source=source)
