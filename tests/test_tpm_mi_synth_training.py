"""A short training run through the real engine on a small SYNTHETIC sample (`mmie data synth`):
TPM-MI, reading every image of a post through the feature cache, beats the text-only BERT-CRF.

On most synthetic posts the entity's type is shown only by one of the 1..4 images (docs/synthetic.md),
so a model that ignores the images cannot learn it. Both models are tiny and trained from scratch: a
2-layer BERT over the sample's own vocabulary and a frozen two-stage ResNet with random filters whose
BatchNorm statistics are set from the sample's training images (as a pretrained network's are from its
data): a linear probe on its pooled features tells cue images from noise images and the four cues
apart (~0.95 per image against a 0.75 majority).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from PIL import Image
from transformers import ResNetConfig, ResNetModel

import mmie
from conftest import make_tiny_bert
from mmie.data import read_dataset
from mmie.data.synth import generate_dataset
from mmie.evaluation.metrics import ner_scores
from mmie.training import train

POSTS = 320
ViTProcessor = getattr(transformers, "ViTImageProcessorPil", transformers.ViTImageProcessor)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synth") / "mner"
    generate_dataset("mner", folder, POSTS, seed=13, image_size=64)
    return folder


@pytest.fixture(scope="module")
def encoders(tmp_path_factory, sample: Path) -> dict[str, str]:
    words = {
        token.lower()
        for split in ("train", "val", "test")
        for post in read_dataset(sample / f"{split}.txt").records
        for token in post.tokens
    }
    bert = make_tiny_bert(tmp_path_factory.mktemp("synth-bert"), sorted(words))
    return {"text": bert, "vision": make_calibrated_resnet(tmp_path_factory.mktemp("synth-resnet"), sample)}


def make_calibrated_resnet(path: Path, sample: Path, width: int = 64) -> str:
    """A tiny random ResNet (``width``-d pooled output) whose BatchNorm layers normalise the sample's images."""
    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=16, hidden_sizes=[32, width], depths=[1, 1], layer_type="basic")
    model = ResNetModel(config)
    processor = ViTProcessor(size={"height": 64, "width": 64})
    records = read_dataset(sample / "train.txt").records  # posts (NER) or relation instances (RE)
    train_images = list(dict.fromkeys(ref for r in records for ref in getattr(r, "post", r).images))[:128]
    pictures = [Image.open(sample / "images" / ref).convert("RGB") for ref in train_images]
    pixels = processor(images=pictures, return_tensors="pt")["pixel_values"]
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration pass
    with torch.no_grad():
        model.train()(pixel_values=pixels)
    model.eval().save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


def image_decided_posts(sample: Path) -> list:
    """The dev and test posts whose entity type is shown only by an image (the generator's ground truth)."""
    meta = [json.loads(line) for line in (sample / "synth_meta.jsonl").read_text().splitlines()]
    ambiguous = {row["id"] for row in meta if row["ambiguous"]}
    records = [post for split in ("val", "test") for post in read_dataset(sample / f"{split}.txt").records]
    return [post for post in records if post.id in ambiguous]


def f1_on(model_dir: Path, posts: list, images: Path) -> float:
    """Entity F1 of the saved model on ``posts``."""
    predictions = mmie.load_model(model_dir, images=images).iter_predictions(posts, progress=False)
    return ner_scores([list(post.tags) for post in posts], [line["tags"] for line in predictions])["f1"]


def experiment(sample: Path, model: dict) -> dict:
    return {
        "task": "ner",
        "model": {"max_length": 48, "dropout": 0.0, **model},
        "data": {
            "format": "mnermi",
            "train": str(sample / "train.txt"),
            "dev": str(sample / "val.txt"),
            "test": str(sample / "test.txt"),
            "images": str(sample / "images"),
        },
        "training": {
            "epochs": 12,
            "batch_size": 16,
            "learning_rate": 3e-3,
            "head_learning_rate": 3e-3,
            "warmup_ratio": 0.0,
            "seed": 7,
            "logging_steps": 20,
            "device": "cpu",
        },
    }


@pytest.mark.slow
def test_tpm_mi_beats_the_text_only_model_through_the_engine(sample, encoders, tmp_path):
    text = train(experiment(sample, {"name": "bert_crf", "encoder": encoders["text"]}), output_dir=tmp_path / "text")
    cache = tmp_path / "vision-cache"
    tpm_settings = {
        "name": "tpm_mi",
        "encoder": encoders["text"],
        "vision_encoder": encoders["vision"],
        "freeze_vision": True,
        "feature_cache": str(cache),
        "prefix_dropout": 0.0,
    }
    tpm = train(experiment(sample, tpm_settings), output_dir=tmp_path / "tpm")

    # Posts whose entity type only an image shows, dev and test together (~60 posts): the text-only
    # model can only guess their type; TPM-MI reads it from whichever image shows the cue.
    ambiguous = image_decided_posts(sample)
    text_f1, tpm_f1 = (f1_on(result.model_dir, ambiguous, sample / "images") for result in (text, tpm))
    assert tpm_f1 >= text_f1 + 0.1, (tpm_f1, text_f1)
    # and over all posts
    overall = {
        name: (r.metrics["dev"]["f1"] + r.metrics["test"]["f1"]) / 2 for name, r in (("text", text), ("tpm", tpm))
    }
    assert overall["tpm"] > overall["text"], overall

    # every distinct image was encoded once into the cache: one entry file per image of the sample
    entries = list(cache.rglob("*.safetensors"))
    assert len(entries) == len(list((sample / "images").glob("*.jpg")))

    # the saved model reloads and, given the image folders in a list (searched in order), scores the same
    empty = tmp_path / "no-images-here"
    empty.mkdir()
    loaded = mmie.load_model(tpm.model_dir, images=[empty, sample / "images"])
    test_records = read_dataset(sample / "test.txt").records
    assert loaded.evaluate(test_records, progress=False)["f1"] == pytest.approx(tpm.metrics["test"]["f1"])
    saved = json.loads((tpm.run_dir / "metrics.json").read_text())
    assert saved["test"]["f1"] == tpm.metrics["test"]["f1"]
