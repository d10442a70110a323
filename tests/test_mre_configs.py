"""The MRE rows of the MRE-MI paper (Table 2: MTB, + first image, + all images, GLRA; Table 3: GLRA's
ablations) have a config on MRE-MI and MNRE, with the paper's encoders and an offline variant, and the
paper's settings (sec. 5.2). Validation only: nothing is downloaded or trained."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmie.training.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ABLATIONS = {
    "glra": {},
    "glra_wo_global": {"use_global": False},
    "glra_wo_local": {"use_local": False},
    "glra_wo_relevance": {"relevance_modulation": False},
}
ROWS = ["mtb", "mtb_first_image", "mtb_all_images", *ABLATIONS]


@pytest.mark.parametrize("dataset", ["mre_mi", "mnre"])
@pytest.mark.parametrize("offline", [False, True])
def test_every_mre_row_has_a_config_with_the_papers_settings(dataset: str, offline: bool):
    names = set()
    for row in ROWS:
        path = CONFIGS / dataset / ("offline" if offline else "") / f"{row}.yaml"
        config = load_config(path)
        model, training = config.model, config.training
        assert config.task == "re" and model.name == ("glra" if row in ABLATIONS else row)
        assert model.encoder == ("minilm" if offline else "bert-base-uncased")
        assert config.data.format == ("mremi" if dataset == "mre_mi" else "mnre")
        if row != "mtb":
            assert model.vision_encoder == ("efficientnet-lite0" if offline else "google/vit-large-patch16-384")
            assert model.freeze_vision  # the reference code never trains its ViT
            assert model.regions == "precomputed"
            # MRE-MI: up to 4 images and the release's 2 crops each; MNRE: one image, 3 crops (HVPNeT's loaders)
            assert (model.max_images, model.regions_per_image) == ((4, 2) if dataset == "mre_mi" else (1, 3))
        if row in ABLATIONS:
            switches = {"use_global": True, "use_local": True, "relevance_modulation": True, **ABLATIONS[row]}
            assert {key: getattr(model, key) for key in switches} == switches
            assert model.attention_heads == 1  # eq. 5 as written
        if path.parent.name != "mnre" or row != "mtb":  # mnre/mtb.yaml is the text baselines' file
            # sec. 5.2: AdamW, lr 4e-5, batch 16, at most 20 epochs; one learning rate (authors' code)
            assert (training.learning_rate, training.batch_size, training.epochs) == (4e-5, 16, 20)
            assert training.head_learning_rate is None
            names.add(config.name)
    assert len(names) == len(ROWS) - (dataset == "mnre" and not offline)  # run folders never collide


@pytest.mark.parametrize("row", ["mtb_first_image", "mtb_all_images", "glra"])
def test_demo_rows_use_offline_frozen_encoders_and_the_synthetic_crops(row: str):
    config = load_config(CONFIGS / "synthetic" / f"{row}.yaml")
    model = config.model
    assert (model.name, model.encoder, model.vision_encoder) == (row, "minilm", "efficientnet-lite0")
    assert model.freeze_vision and model.regions == "precomputed" and model.region_dict is None
    assert config.data.images == Path("demo_out/synth_mre/images")  # images_vg.pth beside it
    # the same training settings as the demo's MTB row: the comparison changes the inputs only
    assert config.training == load_config(CONFIGS / "synthetic" / "mtb.yaml").training
