"""The sweep files of configs/tables/ written for FocalMRE's Tables 6 and 7 (the sweep runner is
issue8's): each names existing experiment configs, and every grid value applied to each of them as
an override gives a valid config (so the sweep cannot fail on a typo hours in)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from mmie.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = {
    "focalmre_table6_low_resource": ("data.sample_fraction", [0.05, 0.1, 0.2, 0.5]),
    "focalmre_table7_few_shot": ("data.sample_per_label", [1, 2, 5, 10]),
}
KEYS = {"name", "output_dir", "seeds", "models", "datasets", "grid", "overrides", "reference"}


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_sweep_file_names_existing_configs_and_valid_keys(name: str):
    sweep = yaml.safe_load((ROOT / "configs" / "tables" / f"{name}.yaml").read_text(encoding="utf-8"))
    assert set(sweep) <= KEYS and sweep["name"] == name
    key, values = SWEEPS[name]
    assert sweep["grid"] == {key: values}
    assert sweep["reference"] in sweep["models"] and "FocalMRE" in sweep["models"]
    assert all(isinstance(seed, int) for seed in sweep["seeds"])
    for label, path in sweep["models"].items():
        assert (ROOT / path).is_file(), f"{label}: {path}"
        for dataset_overrides, combination in itertools.product(
            (sweep.get("datasets") or {"": []}).values(), itertools.product(*sweep["grid"].values())
        ):
            overrides = [
                *dataset_overrides,
                *sweep.get("overrides", []),
                *(f"{k}={v}" for k, v in zip(sweep["grid"], combination)),
                f"training.seed={sweep['seeds'][0]}",
            ]
            config = load_config(ROOT / path, overrides)
            assert getattr(config.data, key.split(".")[1]) == combination[0]


MECHANISM_SWEEPS = {
    "synthetic_mechanisms": (
        "ner",
        "demo_out/synth_mech_mner",
        ["bert_crf", "bert_crf_first_image", "bert_crf_stitched", "prefix_all_images", "tpm_mi"],
    ),
    "synthetic_mechanisms_mre": (
        "re",
        "demo_out/synth_mech_mre",
        ["mtb", "mtb_first_image", "mtb_all_images", "glra", "glra", "glra", "glra", "focalmre"],
    ),
}


@pytest.mark.parametrize("name", sorted(MECHANISM_SWEEPS))
def test_mechanism_sweeps_train_the_rows_on_the_preset_for_three_seeds(name: str):
    from mmie.training.sweep import run_sweep

    task, folder, models = MECHANISM_SWEEPS[name]
    path = ROOT / "configs" / "tables" / f"{name}.yaml"
    assert "--preset mechanisms" in path.read_text(encoding="utf-8")  # the header says how to make the data
    sweep, runs, _ = run_sweep(path, dry_run=True)  # every run's config is loaded and checked
    assert sweep.seeds == [42, 43, 44] and sweep.reference in sweep.models
    assert len(runs) == 3 * len(models)
    configs = {}
    for run in runs:
        config = load_config(run.config, run.overrides)
        assert config.task == task and str(config.data.test) == f"{folder}/test.txt"
        configs[run.row] = config
    assert [configs[row].model.name for row in sweep.models] == models
    if task == "re":  # GLRA and its three ablations (MRE-MI Table 3)
        switches = [
            (c.model.use_global, c.model.use_local, c.model.relevance_modulation)
            for row, c in configs.items()
            if c.model.name == "glra"
        ]
        assert switches == [(True, True, True), (False, True, True), (True, False, True), (True, True, False)]


@pytest.mark.parametrize(
    ("name", "reference", "rows"),
    [
        ("mre_mi_table2", "HVFormer-MI", ["PCNN", "VisualBERT", "CLIP", "HVFormer", "HVFormer-MI"]),
        ("mnre_table2", "HVFormer-MI", ["PCNN", "VisualBERT", "CLIP", "HVFormer", "HVFormer-MI"]),
        ("focalmre_table2_challenge", "MKGformer", ["MKGformer", "FocalMRE"]),
    ],
)
def test_the_mre_tables_name_their_rows_reference_and_challenges(name: str, reference: str, rows: list[str]):
    from mmie.data.challenge import PAPER_RATIOS
    from mmie.training.sweep import load_sweep

    path = ROOT / "configs" / "tables" / f"{name}.yaml"
    sweep = load_sweep(path)
    assert sweep.reference == reference and set(rows) <= set(sweep.models)
    for label, config in sweep.models.items():
        loaded = load_config(ROOT / config, [f"training.seed={sweep.seeds[0]}"])
        assert loaded.task == "re", label
    if name == "focalmre_table2_challenge":  # the paper's ratios, on MNRE, both models reading regions
        assert {k: tuple(v) for k, v in sweep.challenges.items()} == {k: tuple(v) for k, v in PAPER_RATIOS.items()}
        assert list(sweep.datasets) == ["mnre"]


@pytest.mark.parametrize("name", ["mner_mi_table3", "mner_mi_plus_table3"])
def test_the_mner_mi_tables_test_against_visualpt_moe_mi_as_the_paper(name: str):
    """MNER-MI paper, Table 3: "The marker † refers to significant test p-value < 0.05 when compared with
    VisualPT-MoE-MI"; its single-image row is in the table too."""
    from mmie.training.sweep import load_sweep

    sweep = load_sweep(ROOT / "configs" / "tables" / f"{name}.yaml")
    assert sweep.reference == "VisualPT-MoE-MI"
    for label, model in (("VisualPT-MoE-MI", "visualpt_moe_mi"), ("VisualPT-MoE", "visualpt_moe")):
        config = load_config(ROOT / sweep.models[label], [f"training.seed={sweep.seeds[0]}"])
        assert config.model.name == model and config.model.experts == ("image", "crops", "tags", "caption", "random")
