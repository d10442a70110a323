"""GLRA and the image RE baselines end to end through the real engine, on a small SYNTHETIC MRE-MI sample.

`mmie data synth --task mre` -> `mmie train` with the demo configs (configs/synthetic/*.yaml; tiny real
BERT and ViT swapped in with --set) -> the run folder -> `mmie predict --images` (every GLRA line
carries one relevance per real image) -> `mmie evaluate --images` (the run's own test scores) ->
`mmie.load_model(path, images=DIR)`. The ablations and baselines go through the same path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import mmie
from conftest import make_tiny_bert
from mmie.data import read_crop_dict, read_dataset
from mmie.evaluation.metrics import re_scores
from mmie.evaluation.predictions import read_predictions
from mmie.training import train
from test_glra import make_tiny_vit
from test_score_cli import run  # runs `mmie ...` in-process: (exit code, stdout, stderr)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "synthetic"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """A SYNTHETIC MRE-MI folder written by the real CLI: splits, images/, images_vg/, images_vg.pth."""
    out = tmp_path_factory.mktemp("synth") / "synth_mre"
    code = run_cli(["data", "synth", "--task", "mre", "--out", str(out), "--posts", "40", "--seed", "5"])
    assert code == 0
    return out


def run_cli(argv: list[str]) -> int:
    from mmie.cli import main

    try:
        main(argv)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One frozen-feature cache for the module: each image and crop is encoded once."""
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="module")
def encoders(tmp_path_factory, sample) -> dict[str, str]:
    """A tiny BERT whose vocabulary covers the sample's words, and a tiny ViT (both from_pretrained folders)."""
    words = {
        token.lower()
        for split in ("train", "val", "test")
        for record in read_dataset(sample / f"{split}.txt").records
        for token in record.post.tokens
    }
    bert = make_tiny_bert(tmp_path_factory.mktemp("bert"), sorted(words))
    return {"bert": bert, "vit": make_tiny_vit(tmp_path_factory.mktemp("vit"))}


def overrides(sample: Path, encoders: dict[str, str], cache: Path, epochs: int, *extra: str) -> list[str]:
    return [
        f"model.encoder={encoders['bert']}",
        f"model.vision_encoder={encoders['vit']}",
        f"model.feature_cache={cache}",
        "model.max_length=48",
        f"data.train={sample / 'train.txt'}",
        f"data.dev={sample / 'val.txt'}",
        f"data.test={sample / 'test.txt'}",
        f"data.images={sample / 'images'}",
        f"training.epochs={epochs}",
        "training.learning_rate=1e-3",
        "training.head_learning_rate=3e-3",
        "training.logging_steps=5",
        *extra,
    ]


def test_glra_trains_through_the_engine_and_every_prediction_explains_its_images(
    sample, encoders, cache, tmp_path, capsys
):
    result = train(CONFIGS / "glra.yaml", output_dir=tmp_path / "run", overrides=overrides(sample, encoders, cache, 2))
    assert {"config.yaml", "metrics.json", "summary.json", "train.log", "model"} <= {
        p.name for p in result.run_dir.iterdir()
    }
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert set(metrics) == {"dev", "test", "data"}
    assert {"single", "multi"} <= set(metrics["test"]["by_images"])
    assert result.summary["global_step"] == 2 * -(-len(read_dataset(sample / "train.txt").records) // 16)
    # frozen vision: every image and crop of the sample has its entry in the feature cache
    crops = read_crop_dict(sample / "images_vg.pth")
    files = [sample / "images" / ref for ref in crops] + [
        sample / "images_vg" / n for v in crops.values() for n in v[:2]
    ]
    entries = {path.stem for path in cache.glob("*/??/*.safetensors")}
    assert {hashlib.sha256(path.read_bytes()).hexdigest() for path in files} <= entries

    test_file, images = sample / "test.txt", sample / "images"
    records = read_dataset(test_file).records
    capsys.readouterr()
    out = tmp_path / "predictions.jsonl"
    code, stdout, err = run(
        ["predict", str(result.model_dir), str(test_file), "--out", str(out), "--images", str(images)], capsys
    )
    assert code == 0, err
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(records)
    predictions = read_predictions(out)
    for prediction, record in zip(predictions, records):
        assert prediction["id"] == record.id and prediction["n_images"] == record.post.n_images
        assert len(prediction["relevance"]) == record.post.n_images
        assert all(0.0 < value < 1.0 for value in prediction["relevance"])
        assert abs(sum(prediction["scores"].values()) - 1.0) < 1e-3

    # evaluate from the saved folder gives the run's test scores, through the CLI and the Python API
    code, stdout, err = run(
        ["evaluate", str(result.model_dir), str(test_file), "--images", str(images), "--json"], capsys
    )
    assert code == 0, err
    assert json.loads(stdout) == metrics["test"]
    loaded = mmie.load_model(result.model_dir, images=images)
    assert loaded.evaluate(records, progress=False) == metrics["test"]

    # without --images an image model stops with one clear line
    code, _, err = run(["evaluate", str(result.model_dir), str(test_file)], capsys)
    assert code == 2 and "data.images" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def full_glra_scores(sample, encoders, cache, tmp_path_factory) -> list[dict]:
    """The class scores of every test post from GLRA with all its parts, trained as the variants below are."""
    result = train(
        CONFIGS / "glra.yaml",
        output_dir=tmp_path_factory.mktemp("glra") / "run",
        overrides=overrides(sample, encoders, cache, 1),
    )
    records = read_dataset(sample / "test.txt").records
    return [p["scores"] for p in mmie.load_model(result.model_dir, images=sample / "images").predict(records)]


@pytest.mark.parametrize(
    ("config", "extra", "has_relevance"),
    [
        ("mtb_first_image.yaml", [], False),
        ("mtb_all_images.yaml", [], False),
        ("glra.yaml", ["model.use_global=false"], True),  # relevance of an image = that of its best region
        ("glra.yaml", ["model.use_local=false"], True),
        ("glra.yaml", ["model.relevance_modulation=false"], False),
    ],
)
def test_baselines_and_ablations_train_through_the_engine(
    sample, encoders, cache, tmp_path, config, extra, has_relevance, full_glra_scores
):
    """Each variant trains, and what it removes changes its outputs: the same seed and steps as the full
    GLRA give other class scores (an ablation switch that did nothing would give the same)."""
    result = train(
        CONFIGS / config, output_dir=tmp_path / "run", overrides=overrides(sample, encoders, cache, 1, *extra)
    )
    records = read_dataset(sample / "test.txt").records
    predictions = mmie.load_model(result.model_dir, images=sample / "images").predict(records, progress=False)
    assert [p["id"] for p in predictions] == [r.id for r in records]
    gold, predicted = [r.label for r in records], [p["relation"] for p in predictions]
    assert result.metrics["test"]["f1"] == pytest.approx(re_scores(gold, predicted)["f1"])  # scored from these
    difference = max(
        abs(p["scores"][label] - full[label]) for p, full in zip(predictions, full_glra_scores) for label in full
    )
    assert difference > 1e-3, difference
    if has_relevance:
        assert [len(p["relevance"]) for p in predictions] == [r.post.n_images for r in records]
    else:
        assert all("relevance" not in p for p in predictions)


def test_a_frozen_encoder_on_pixels_encodes_in_chunks_with_the_same_vectors(encoders):
    """The reference code's way (pixels every step, frozen encoder): more images than one chunk, same vectors."""
    import torch

    from mmie.models.image_model import ENCODE_CHUNK
    from mmie.models.registry import create_model, get_model_entry

    entry = get_model_entry("glra")
    config = entry.config_class(
        name="glra", encoder=encoders["bert"], vision_encoder=encoders["vit"], freeze_vision=True
    )
    model = create_model(config, ["None", "/per/per/peer"])
    generator = torch.Generator().manual_seed(0)
    image_mask = torch.ones(8, 4, dtype=torch.bool)
    region_mask = torch.ones(8, 4, 2, dtype=torch.bool)
    region_mask[0, 0, 1] = False
    pixels = torch.randn(8, 4, 3, 32, 32, generator=generator)
    region_pixels = torch.randn(8, 4, 2, 3, 32, 32, generator=generator)
    real = int(image_mask.sum() + region_mask.sum())
    assert real > 2 * ENCODE_CHUNK  # several chunks
    model.train()  # training mode: the frozen encoder still runs without a graph
    images, regions = model._encode_pixels(pixels, image_mask, region_pixels, region_mask)
    assert not images.requires_grad and not regions.requires_grad
    with torch.no_grad():
        whole = model.vision_encoder.encode_pixels(torch.cat([pixels[image_mask], region_pixels[region_mask]]))
    torch.testing.assert_close(images[image_mask], whole.global_features[: int(image_mask.sum())])
    torch.testing.assert_close(regions[region_mask], whole.global_features[int(image_mask.sum()) :])
    assert torch.equal(regions[0, 0, 1], torch.zeros_like(regions[0, 0, 1]))
