"""Config files that compose (``base:``): the shipped configs resolve to the recorded snapshot, and the
composition rules on small files (deep merge, lists replace, bases of bases, relative paths, errors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mmie.errors import ConfigError
from mmie.training.compose import compose_yaml
from mmie.training.config import load_config

REPO = Path(__file__).resolve().parents[1]
# tests/fixtures/config_snapshot.json: load_config(path).model_dump(mode="json") of every experiment
# config, taken before the configs composed. A new config is added to it on purpose (same form:
# repo-relative key, sort_keys, indent 1); a changed value is changed in it on purpose.
SNAPSHOT = json.loads((REPO / "tests" / "fixtures" / "config_snapshot.json").read_text(encoding="utf-8"))
# configs/tables/ holds sweep files, not experiment configs (tests/test_table_sweeps.py checks them).
SHIPPED = sorted(
    path.relative_to(REPO).as_posix()
    for path in (REPO / "configs").rglob("*")
    if path.suffix in (".yaml", ".yml") and path.relative_to(REPO / "configs").parts[0] != "tables"
)


def test_the_snapshot_has_exactly_the_shipped_configs():
    assert len(SHIPPED) >= 90
    assert sorted(SNAPSHOT) == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_resolves_to_the_snapshot(name: str):
    assert load_config(REPO / name).model_dump(mode="json") == SNAPSHOT[name]


def test_offline_variants_compose_their_paper_row():
    offline = [name for name in SHIPPED if "/offline/" in name]
    assert len(offline) == 116
    for name in offline:
        raw = yaml.safe_load((REPO / name).read_text(encoding="utf-8"))
        assert raw["base"] == f"../{Path(name).name}", name


# ------------------------------------------------------------------------------ the rules


def write(path: Path, settings: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


ROW = {
    "name": "row",
    "task": "ner",
    "model": {"name": "bert_crf", "encoder": "bert-base-uncased", "dropout": 0.2},
    "data": {"train": "train.txt", "dev": "dev.txt", "images": ["a", "b"]},
    "training": {"epochs": 15, "batch_size": 8},
}


def test_mappings_merge_key_by_key_and_lists_replace(tmp_path):
    write(tmp_path / "row.yaml", ROW)
    variant = write(
        tmp_path / "variant.yaml",
        {
            "base": "row.yaml",
            "model": {"encoder": "minilm"},
            "data": {"images": ["c"]},
        },
    )
    settings = compose_yaml(variant)
    assert "base" not in settings
    assert settings["model"] == {"name": "bert_crf", "encoder": "minilm", "dropout": 0.2}
    assert settings["data"] == {"train": "train.txt", "dev": "dev.txt", "images": ["c"]}  # not a, b, c
    assert settings["training"] == ROW["training"]


def test_the_base_name_does_not_leak_into_the_variant(tmp_path):
    write(tmp_path / "row.yaml", ROW)
    assert "name" not in compose_yaml(write(tmp_path / "variant.yaml", {"base": "row.yaml"}))
    # so the run name is the variant's stem, or the name the variant sets
    assert load_config(tmp_path / "variant.yaml").name == "variant"
    assert load_config(tmp_path / "row.yaml").name == "row"
    named = write(tmp_path / "named.yaml", {"base": "row.yaml", "name": "row-offline"})
    assert load_config(named).name == "row-offline"


def test_bases_of_bases_resolve_relative_to_the_file_that_names_them(tmp_path):
    write(tmp_path / "paper" / "row.yaml", ROW)
    write(tmp_path / "paper" / "offline" / "row.yaml", {"base": "../row.yaml", "model": {"encoder": "minilm"}})
    tiny = write(
        tmp_path / "elsewhere" / "tiny.yaml",
        {
            "base": "../paper/offline/row.yaml",
            "training": {"epochs": 1},
        },
    )
    config = load_config(tiny)
    assert config.name == "tiny"
    assert config.model.encoder == "minilm" and config.model.dropout == 0.2  # from the middle and the row
    assert config.training.epochs == 1 and config.training.batch_size == 8


def test_set_overrides_apply_after_composition(tmp_path):
    write(tmp_path / "row.yaml", ROW)
    variant = write(tmp_path / "variant.yaml", {"base": "row.yaml", "training": {"epochs": 2}})
    config = load_config(variant, ["training.epochs=3", "model.dropout=0.3", "name=other"])
    assert config.training.epochs == 3 and config.model.dropout == 0.3 and config.name == "other"
    assert config.training.batch_size == 8


def test_a_cycle_of_bases_names_the_files(tmp_path):
    write(tmp_path / "a.yaml", {**ROW, "base": "sub/b.yaml"})
    write(tmp_path / "sub" / "b.yaml", {"base": "../a.yaml"})
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "a.yaml")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'a.yaml'}: base: ")
    assert "a cycle of bases" in message
    assert f"{tmp_path / 'sub' / 'b.yaml'}: base: " in message
    with pytest.raises(ConfigError, match="a cycle of bases"):
        load_config(write(tmp_path / "self.yaml", {"base": "self.yaml"}))


def test_a_missing_base_names_the_file_and_the_key(tmp_path):
    variant = write(tmp_path / "variant.yaml", {"base": "../nope.yaml", "name": "x"})
    with pytest.raises(ConfigError) as caught:
        load_config(variant)
    assert str(caught.value) == f"{variant}: base: no such file ../nope.yaml"


def test_a_missing_base_of_a_base_names_both_files(tmp_path):
    middle = write(tmp_path / "middle.yaml", {"base": "nope.yaml"})
    variant = write(tmp_path / "variant.yaml", {"base": "middle.yaml"})
    with pytest.raises(ConfigError) as caught:
        load_config(variant)
    assert str(caught.value) == f"{variant}: base: {middle}: base: no such file nope.yaml"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1, 2]\n", "expected a mapping of sections, got list"),
        ("", "the config file is empty"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_a_base_that_is_not_a_mapping_names_the_file_and_the_key(tmp_path, text, problem):
    (tmp_path / "row.yaml").write_text(text, encoding="utf-8")
    variant = write(tmp_path / "variant.yaml", {"base": "row.yaml"})
    with pytest.raises(ConfigError) as caught:
        load_config(variant)
    assert str(caught.value).startswith(f"{variant}: base: {tmp_path / 'row.yaml'}: {problem}")


@pytest.mark.parametrize("value", [None, 3, ["a.yaml"], ""])
def test_base_must_be_a_file_name(tmp_path, value):
    variant = write(tmp_path / "variant.yaml", {"base": value})
    with pytest.raises(ConfigError, match=r"variant\.yaml: base: expected the path of a config file"):
        load_config(variant)


def test_keys_from_the_base_are_validated_and_errors_name_the_loaded_file(tmp_path):
    write(tmp_path / "row.yaml", {**ROW, "training": {"lerning_rate": 1e-5}})
    variant = write(tmp_path / "variant.yaml", {"base": "row.yaml"})
    with pytest.raises(ConfigError, match="training.lerning_rate: unknown key") as caught:
        load_config(variant)
    assert str(caught.value).startswith(str(variant))
