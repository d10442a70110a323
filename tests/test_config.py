"""Experiment configs: strict validation naming the key, --set overrides, the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmie.errors import ConfigError
from mmie.models import get_model_entry
from mmie.training.compose import compose_yaml
from mmie.training.config import apply_overrides, load_config

REPO = Path(__file__).resolve().parents[1]
# configs/tables/ holds sweep files, not experiment configs (tests/test_table_sweeps.py checks them).
SHIPPED = [path for path in sorted((REPO / "configs").rglob("*.yaml")) if path.parent.name != "tables"]

BASE = {
    "task": "ner",
    "model": {"name": "bert_crf"},
    "data": {"train": "train.txt", "dev": "dev.txt", "format": "twitter"},
    "training": {"epochs": 3},
}


def write(tmp_path: Path, settings: dict) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"training": {"lerning_rate": 1e-5}}, "training.lerning_rate: unknown key"),
        ({"training": {"epochs": "many"}}, "training.epochs: "),
        ({"training": {"mixed_precision": "fp8"}}, "training.mixed_precision: "),
        ({"training": {"evals_per_epoch": 0}}, "training.evals_per_epoch: Input should be greater than or equal to 1"),
        ({"model": {"name": "bert_crf", "dropot": 0.2}}, "model.dropot: unknown key"),
        ({"model": {"name": "bert_crf", "max_length": "long"}}, "model.max_length: "),
        ({"model": {"name": "bert_crff"}}, "model.name: unknown model 'bert_crff'"),
        ({"model": {"name": "mtb"}}, "model.name: 'mtb' is a re model but task is 'ner'"),
        ({"task": "re", "model": {"name": "mtb", "post_layer": "batch_norm"}}, "model.post_layer: "),
        ({"data": {"dev": "dev.txt"}}, "data.train: required key is missing"),
        ({"extra": 1}, "extra: unknown key"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, change, message):
    settings = {**BASE, **change}
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, settings))
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(tmp_path / "experiment.yaml"))


def test_defaults_and_model_config_class(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert config.name == "experiment"
    assert config.model.encoder == "minilm" and config.model.max_length == 128
    assert type(config.model).__name__ == "BertCrfConfig"
    assert config.training.learning_rate == 4e-5
    dumped = yaml.safe_load(config.to_yaml())  # round trip of the resolved config
    assert load_config(dumped) == config


def test_set_overrides_parse_values_as_yaml(tmp_path):
    config = load_config(
        write(tmp_path, BASE),
        [
            "training.learning_rate=5e-5",
            "training.epochs=7",
            "training.report_to=[tensorboard]",
            "data.test=some/test.txt",
            "data.dev=null",
            "model.dropout=0.3",
        ],
    )
    assert config.training.learning_rate == 5e-5 and config.training.epochs == 7
    assert config.training.report_to == ["tensorboard"]
    assert config.data.test == Path("some/test.txt") and config.data.dev is None
    assert config.model.dropout == 0.3
    with pytest.raises(ConfigError, match="training.lerning_rate: unknown key"):
        load_config(write(tmp_path, BASE), ["training.lerning_rate=1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(write(tmp_path, BASE), ["training.epochs"])
    with pytest.raises(ConfigError, match="task is not a section"):
        apply_overrides(BASE, ["task.x=1"])


def test_exponent_without_a_dot_is_a_float_in_files_and_overrides(tmp_path):
    # PyYAML follows YAML 1.1, where 5e-5 (no dot) is the string "5e-5": a raw settings dict (recorded
    # beside benchmark results) would carry a string although the validated config holds a float.
    settings = apply_overrides(BASE, ["training.learning_rate=5e-5", "training.head_learning_rate=1E-3"])
    assert settings["training"]["learning_rate"] == 5e-5 and settings["training"]["head_learning_rate"] == 1e-3
    assert type(settings["training"]["learning_rate"]) is float
    raw = apply_overrides(BASE, ["name=1e", "tag=e5", "epochs=7", "rate=5.0e-5", "seed=-2e+3", "ref=v1e5"])
    assert (raw["name"], raw["tag"], raw["ref"]) == ("1e", "e5", "v1e5")  # not numbers: still strings
    assert raw["epochs"] == 7 and type(raw["epochs"]) is int
    assert raw["rate"] == 5e-5 and raw["seed"] == -2000.0
    path = tmp_path / "exponent.yaml"
    path.write_text("task: ner\ntraining: {learning_rate: 3e-5, epochs: 2}\n")
    assert compose_yaml(path)["training"] == {"learning_rate": 3e-5, "epochs": 2}
    assert type(compose_yaml(path)["training"]["learning_rate"]) is float


def test_malformed_files(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: [ner\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


PAPER_ENCODERS = {"clip_re": "openai/clip-vit-base-patch32", "visualbert_re": "uclanlp/visualbert-vqa-coco-pre"}


def test_shipped_configs_are_valid():
    names = {path.relative_to(REPO / "configs").as_posix() for path in SHIPPED}
    assert {
        "twitter2017/bert_softmax.yaml",
        "twitter2017/bert_crf.yaml",
        "mnre/bert_cls.yaml",
        "mnre/mtb.yaml",
    } <= names
    for path in SHIPPED:
        config = load_config(path)
        if get_model_entry(config.model.name).builds_vocabulary:  # word-level models: no pretrained encoder
            assert config.model.encoder == "none" and config.data.dev is not None
        elif path.parent.name in ("synthetic", "offline"):
            assert config.model.encoder == "minilm"  # the offline demo and the offline variants
        else:  # BERT-base, but for the rows that are a pretrained vision-language model of their own
            paper_encoder = PAPER_ENCODERS.get(config.model.name, "bert-base-uncased")
            assert config.model.encoder == paper_encoder and config.data.dev is not None, path
