"""Every experiment config shipped under configs/ loads and validates, so a typo in a key, a model
name or a value fails here and not hours into someone's run. Validation only: nothing is downloaded
or trained."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmie.training.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# configs/tables/ holds sweep files (one per paper table), not experiment configs: tests/test_table_sweeps.py
CONFIG_FILES = [
    path
    for path in sorted(CONFIGS.rglob("*.yaml")) + sorted(CONFIGS.rglob("*.yml"))
    if path.relative_to(CONFIGS).parts[0] != "tables"
]
# The rows of the MNER-MI paper's Table 3 that mmie's prefix models cover, on its three datasets.
MNER_ROWS = ["bert_crf", "bert_crf_first_image", "bert_crf_stitched", "prefix_all_images", "tpm_mi", "tpm_mi_frozen"]
MNER_DATASETS = ["mner_mi", "mner_mi_plus", "twitter2017"]


def test_there_are_configs_to_check():
    assert len(CONFIG_FILES) >= 40


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda path: str(path.relative_to(CONFIGS)))
def test_config_loads_and_validates(path: Path):
    config = load_config(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    # validation keeps every key that the file sets (nothing silently dropped or renamed)
    dumped = config.model_dump(mode="json")
    for section in ("model", "data", "training"):
        for key in raw.get(section) or {}:
            assert key in dumped[section], f"{path}: {section}.{key}"


@pytest.mark.parametrize("dataset", MNER_DATASETS)
@pytest.mark.parametrize("offline", [False, True])
def test_every_mner_row_has_a_config_with_the_intended_encoders(dataset: str, offline: bool):
    names = set()
    for row in MNER_ROWS:
        path = CONFIGS / dataset / ("offline" if offline else "") / f"{row}.yaml"
        config = load_config(path)
        model = config.model
        assert config.task == "ner" and model.name == ("tpm_mi" if row == "tpm_mi_frozen" else row)
        assert model.encoder == ("minilm" if offline else "bert-base-uncased")
        if row != "bert_crf":
            assert model.vision_encoder == ("efficientnet-lite0" if offline else "google/vit-base-patch16-224")
            # the paper's TPM-MI fine-tunes its ViT; the frozen variant reads the feature cache
            assert model.freeze_vision is (row == "tpm_mi_frozen")
        if row.startswith(("tpm_mi", "prefix_all")):
            assert model.max_images == 4
        if row != "bert_crf" or offline or dataset != "twitter2017":  # the text baseline's file predates these
            # MNER-MI paper sec. 5.2 grids: lr in [1e-5, 7e-5], batch in [8, 32]
            assert 1e-5 <= config.training.learning_rate <= 7e-5
            assert 8 <= config.training.batch_size <= 32
            names.add(config.name)
    # explicit run names: runs of different datasets and variants never share a run folder
    assert len(names) == len(MNER_ROWS) - (dataset == "twitter2017" and not offline)


def test_mner_mi_plus_searches_both_image_folders():
    config = load_config(CONFIGS / "mner_mi_plus" / "tpm_mi.yaml")
    assert [path.name for path in config.data.images] == ["images", "twitter2017_images"]
    # one folder stays a plain path
    assert load_config(CONFIGS / "mner_mi" / "tpm_mi.yaml").data.images == Path("data/mner_mi/images")
