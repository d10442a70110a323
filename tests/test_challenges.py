"""Low-resource samples and the noise challenge sets: counts, strata, determinism, the files they write, the
engine's data.sample_* keys, and `mmie evaluate --challenge` end to end on a tiny FocalMRE run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import make_ner_posts, make_re_instances
from mmie.data import read_crop_dict, read_dataset, write_dataset
from mmie.data.challenge import align_noise, aug_noise, crop_keys, write_aug_noise
from mmie.data.sampling import sample_fraction, sample_per_label, stratum
from mmie.data.schema import Post, RelationInstance, Span
from mmie.data.synth import generate_dataset
from mmie.errors import ConfigError
from mmie.training import train
from mmie.training.config import load_config
from test_glra import make_tiny_vit
from test_score_cli import run


def labelled(counts: dict[str, int]) -> list[RelationInstance]:
    records = []
    for label, count in counts.items():
        for index in range(count):
            post = Post(id=f"{label}-{index}", tokens=["a", "b", "c"], images=[f"{label}-{index}.jpg"])
            records.append(RelationInstance(post, Span(0, 1, "a"), Span(2, 3, "c"), label))
    return records


# --------------------------------------------------------------------------------- samples


def test_fraction_sample_is_stratified_exact_ordered_and_seeded():
    records = labelled({"None": 60, "/per/per/peer": 30, "/per/per/couple": 10})
    sample = sample_fraction(records, 0.1, seed=1)
    assert Counter(r.label for r in sample) == {"None": 6, "/per/per/peer": 3, "/per/per/couple": 1}
    positions = [records.index(r) for r in sample]
    assert positions == sorted(positions)  # the original order
    assert [r.id for r in sample_fraction(records, 0.1, seed=1)] == [r.id for r in sample]
    assert [r.id for r in sample_fraction(records, 0.1, seed=2)] != [r.id for r in sample]
    # quotas 2.5 / 2.5 / 1.5 -> 6 records: the one left over goes to a largest remainder (ties: the larger stratum)
    odd = sample_fraction(labelled({"A": 5, "B": 5, "C": 3}), 0.5, seed=0)
    assert Counter(r.label for r in odd) == {"A": 3, "B": 2, "C": 1}
    assert len(sample_fraction(records, 0.001, seed=0)) == 1  # never empty
    with pytest.raises(ConfigError, match="sample_fraction"):
        sample_fraction(records, 0.0, seed=0)


def test_per_label_sample_keeps_k_of_every_label_and_all_of_a_rarer_one():
    records = labelled({"None": 40, "/per/per/peer": 20, "/per/per/couple": 3})
    for k in (1, 2, 5, 10):
        counts = Counter(r.label for r in sample_per_label(records, k, seed=42))
        assert counts == {"None": k, "/per/per/peer": k, "/per/per/couple": min(k, 3)}
    with pytest.raises(ConfigError, match="sample_per_label"):
        sample_per_label(records, 0, seed=0)
    posts = make_ner_posts(30)  # NER: strata are entity-type sets
    sample = sample_per_label(posts, 1, seed=0)
    assert sorted(stratum(p) for p in sample) == sorted({stratum(p) for p in posts})


def test_the_engine_samples_the_train_split_only_and_keeps_every_label(tmp_path, tiny_bert):
    from mmie.data import write_dataset

    train_records, dev_records = make_re_instances(30, seed=0), make_re_instances(6, seed=1)
    for split, records in (("train", train_records), ("dev", dev_records)):
        write_dataset(records, tmp_path / f"{split}.txt", "mremi")
    config = {
        "task": "re",
        "model": {"name": "mtb", "encoder": tiny_bert, "max_length": 32},
        "data": {"train": str(tmp_path / "train.txt"), "dev": str(tmp_path / "dev.txt"), "sample_per_label": 1},
        "training": {"epochs": 1, "batch_size": 8, "device": "cpu"},
    }
    result = train(config, output_dir=tmp_path / "run")
    labels = {r.label for r in train_records}
    assert result.summary["train_examples"] == len(labels)
    assert result.metrics["dev"]["n"] == len(dev_records)  # dev untouched
    assert "sampled 3 of 30 records (1 per label, seed 42)" in (tmp_path / "run" / "train.log").read_text()
    with pytest.raises(ConfigError, match="not both"):
        load_config(config, ["data.sample_fraction=0.5"])


def test_data_sample_cli(tmp_path, capsys):
    write_dataset(labelled({"None": 20, "X": 10}), tmp_path / "train.txt", "mremi")
    code, out, _ = run(
        ["data", "sample", str(tmp_path / "train.txt"), str(tmp_path / "s.txt"), "--fraction", "0.2"], capsys
    )
    assert code == 0 and "wrote 6 of 30" in out
    assert Counter(r.label for r in read_dataset(tmp_path / "s.txt").records) == {"None": 4, "X": 2}
    code, _, err = run(["data", "sample", str(tmp_path / "train.txt"), str(tmp_path / "s.txt")], capsys)
    assert code == 2 and "exactly one" in err


# ------------------------------------------------------------------------------ challenges


def test_align_noise_moves_images_of_exactly_the_ratio_and_is_deterministic():
    records = labelled({"None": 20})
    for ratio in (0.05, 0.2, 0.5, 1.0):
        noise = align_noise(records, ratio, seed=13)
        assert len(noise.shuffled) == max(1, round(ratio * 20))
        for index, (before, after) in enumerate(zip(records, noise.records)):
            moved = after.post.images != before.post.images
            assert moved is (index in noise.shuffled)
            assert after.post.tokens == before.post.tokens and after.label == before.label
        if len(noise.shuffled) >= 2:  # one cycle: the images are passed round, none lost or doubled
            assert sorted(r.post.images[0] for r in noise.records) == sorted(r.post.images[0] for r in records)
        again = align_noise(records, ratio, seed=13)
        assert [r.post.images for r in again.records] == [r.post.images for r in noise.records]
    assert align_noise(records, 0.5, seed=1).shuffled != align_noise(records, 0.5, seed=2).shuffled
    assert records[0].post.images == ["None-0.jpg"]  # the input is never changed


def test_aug_noise_replaces_or_deletes_the_ratio_of_regions_deterministically():
    crops = {f"{i}.jpg": [f"{i}_0.png", f"{i}_1.png"] for i in range(10)}
    crops["other.jpg"] = ["other_0.png"]  # an image the records do not name: left alone
    keys = [f"{i}.jpg" for i in range(10)]
    noise = aug_noise(crops, keys, 0.3, seed=5)  # 3 replaced, 3 deleted
    assert noise.regions == 20 and noise.replaced + noise.deleted == 6 and noise.replaced and noise.deleted
    assert noise.crops["other.jpg"] == ["other_0.png"]
    for key in keys:
        for name in noise.crops[key]:
            if name not in crops[key]:
                assert not name.startswith(key.split(".")[0] + "_")  # a region of ANOTHER image
    assert sum(len(noise.crops[k]) for k in keys) == 20 - noise.deleted
    assert aug_noise(crops, keys, 0.3, seed=5).crops == noise.crops
    assert aug_noise(crops, keys, 1.0, seed=13).replaced + aug_noise(crops, keys, 1.0, seed=13).deleted == 20


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "mre"
    generate_dataset("mre", out, posts=16, seed=4, image_size=64)
    return out


def test_challenge_cli_writes_ordinary_dataset_files(sample, tmp_path, capsys):
    code, out, _ = run(
        ["challenge", "align-noise", str(sample / "train.txt"), str(tmp_path / "a.txt"), "--ratio", "0.5"], capsys
    )
    assert code == 0
    noisy = read_dataset(tmp_path / "a.txt")
    assert noisy.format == "mremi" and len(noisy.records) == len(read_dataset(sample / "train.txt").records)
    code, out, _ = run(
        ["challenge", "aug-noise", str(sample / "train.txt"), str(tmp_path / "aug"), "--ratio", "0.5", "--seed", "3"],
        capsys,
    )
    assert code == 0 and "replaced" in out
    written = read_crop_dict(tmp_path / "aug" / "images_vg.pth")
    assert all((tmp_path / "aug" / "images_vg" / name).is_file() for names in written.values() for name in names)
    again = write_aug_noise(sample / "train.txt", tmp_path / "aug2", 0.5, seed=3)
    assert again.crops == written
    records = read_dataset(tmp_path / "aug" / "train.txt").records
    assert set(crop_keys(records)) <= set(written)


def tiny_run(sample: Path, tmp_path: Path, tiny_bert: str) -> list[str]:
    """Overrides training a synthetic config for one epoch on the tiny sample with tiny encoders."""
    return [
        f"model.encoder={tiny_bert}",
        f"model.vision_encoder={make_tiny_vit(tmp_path / 'vit')}",
        f"model.feature_cache={tmp_path / 'cache'}",
        "model.max_length=48",
        f"data.train={sample / 'train.txt'}",
        f"data.dev={sample / 'val.txt'}",
        "data.test=null",
        f"data.images={sample / 'images'}",
        "training.epochs=1",
        "training.device=cpu",
    ]


def test_evaluate_challenge_sweeps_the_ratios_into_one_table_and_json(sample, tmp_path, tiny_bert, capsys):
    overrides = [*tiny_run(sample, tmp_path, tiny_bert), "model.patch_cells=2"]
    config = Path(__file__).resolve().parents[1] / "configs" / "synthetic" / "focalmre.yaml"
    model_dir = train(config, overrides=overrides, output_dir=tmp_path / "run").model_dir
    clean_code, clean_out, _ = run(
        ["evaluate", str(model_dir), str(sample / "val.txt"), "--images", str(sample / "images"), "--json"], capsys
    )
    clean = json.loads(clean_out)
    for challenge, ratios in (("align-noise", [0.5, 1.0]), ("aug-noise", [0.3, 1.0])):
        out_json = tmp_path / f"{challenge}.json"
        code, out, err = run(
            [
                "evaluate",
                str(model_dir),
                str(sample / "val.txt"),
                "--images",
                str(sample / "images"),
                "--challenge",
                challenge,
                "--ratios",
                ",".join(map(str, ratios)),
                "--out",
                str(out_json),
            ],
            capsys,
        )
        assert code == 0, err
        result = json.loads(out_json.read_text())
        assert result["challenge"] == challenge and result["seed"] == 13 and result["data"] == str(sample / "val.txt")
        assert [row["ratio"] for row in result["results"]] == [0.0, *ratios]
        assert result["results"][0]["metrics"] == clean  # the clean row is what `mmie evaluate --json` prints
        assert set(result["results"][1]["metrics"]) == set(clean)  # the same fields; this one-epoch model
        # reads too little from its images for its score to move: that noise lowers the score of a model
        # that reads them is tested in test_focalmre_synth_training.py
        assert "| clean |" in out and "| 100% |" in out
    code, out, _ = run(
        ["evaluate", str(model_dir), str(sample / "val.txt"), "--images", str(sample / "images"), "--per-relation"],
        capsys,
    )
    assert code == 0 and "| relation (support) | P | R | F1 |" in out
    assert clean_code == 0


def test_aug_noise_works_for_a_model_computing_its_regions_on_the_fly(sample, tmp_path, tiny_bert, capsys):
    # MKGformer on grid regions (no crop dictionary): refused before; now they are written as one by the
    # model's own provider, and that is noised
    from mmie.inference.challenges import _region_sets
    from mmie.models import model_config

    overrides = [*tiny_run(sample, tmp_path, tiny_bert), "model.regions=grid"]
    config = Path(__file__).resolve().parents[1] / "configs" / "synthetic" / "mkgformer.yaml"
    model_dir = train(config, overrides=overrides, output_dir=tmp_path / "run").model_dir
    out_json = tmp_path / "aug.json"
    code, out, err = run(
        ["evaluate", str(model_dir), str(sample / "val.txt"), "--images", str(sample / "images"),
         "--challenge", "aug-noise", "--ratios", "0.5,1.0", "--out", str(out_json)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out_json.read_text())
    assert [row["ratio"] for row in result["results"]] == [0.0, 0.5, 1.0]
    # which sets each model's Aug-Noise acts on
    focal = {"name": "focalmre", "encoder": tiny_bert}
    assert [s[0] for s in _region_sets(model_config(focal))] == ["regions", "od_regions"]
    assert [s[0] for s in _region_sets(model_config({**focal, "od_regions": "none"}))] == ["regions"]
    assert _region_sets(model_config({**focal, "image_input": "original"})) == []
    assert _region_sets(model_config({"name": "mtb_first_image", "use_regions": False})) == []
    assert [s[3] for s in _region_sets(model_config({"name": "hvformer_mi", "regions_per_image": 3}))] == [3]


def test_a_sweep_with_challenges_scores_every_run_and_the_report_tables_them_side_by_side(sample, tmp_path, tiny_bert):
    import yaml

    from mmie.reporting.report import build_report
    from mmie.training.sweep import run_sweep

    vit = make_tiny_vit(tmp_path / "vit")
    configs = Path(__file__).resolve().parents[1] / "configs" / "synthetic"
    sweep_file = tmp_path / "table2.yaml"
    sweep_file.write_text(
        yaml.safe_dump(
            {
                "name": "table2",
                "seeds": [42],
                "models": {"MKGformer": str(configs / "mkgformer.yaml"), "FocalMRE": str(configs / "focalmre.yaml")},
                "datasets": {
                    "synth": [
                        f"data.train={sample / 'train.txt'}",
                        f"data.dev={sample / 'val.txt'}",
                        f"data.test={sample / 'val.txt'}",
                        f"data.images={sample / 'images'}",
                    ]
                },
                "overrides": [
                    f"model.encoder={tiny_bert}",
                    f"model.vision_encoder={vit}",
                    f"model.feature_cache={tmp_path / 'cache'}",
                    "model.max_length=48",
                    "training.epochs=1",
                    "training.device=cpu",
                ],
                "reference": "MKGformer",
                "challenges": {"align-noise": [1.0], "aug-noise": [0.5]},
            },
            sort_keys=False,
        )
    )
    _, runs, outcome = run_sweep(sweep_file, tmp_path / "runs")
    assert not outcome.failed and len(outcome.finished) == 2
    for sweep_run in runs:
        for challenge, ratio in (("align-noise", 1.0), ("aug-noise", 0.5)):
            result = json.loads((sweep_run.run_dir / f"challenge_{challenge}.json").read_text())
            assert [row["ratio"] for row in result["results"]] == [0.0, ratio]
    first_file = runs[0].run_dir / "challenge_aug-noise.json"
    stamp = first_file.stat().st_mtime_ns
    _, _, again = run_sweep(sweep_file, tmp_path / "runs")
    assert len(again.skipped) == 2 and first_file.stat().st_mtime_ns == stamp  # nothing scored twice
    tables = {table.name: table for table in build_report([tmp_path / "runs"], trials=100).tables}
    table = tables["challenge_aug-noise"]
    assert table.group_header == [("MKGformer", 3), ("FocalMRE", 3)]
    assert [row[0] for row in table.rows] == ["clean", "50%"]
    clean_f1 = runs[0].run_dir / "metrics.json"
    assert table.rows[0][3].values == [json.loads(clean_f1.read_text())["test"]["f1"]]  # clean = the run's test F1
