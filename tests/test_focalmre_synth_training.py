"""FocalMRE learns from its images: a short training run through the real engine on SYNTHETIC MRE
posts (`mmie.data.synth.generate_dataset`, what `mmie data synth --task mre` runs, with 64-pixel
images to keep it fast) beats MTB, the same text encoder without images, on the posts whose relation
only an image shows (docs/synthetic.md).

The vision side is the calibrated random ResNet of the TPM-MI test, 128 channels wide (frozen; its
BatchNorm statistics set from the sample's images): a linear probe on the mean of a post's framed
copies (what eq. 5 averages) finds the relation of ~0.8 of the image-decided instances. VG regions are the
generator's grounding crops (the first crop of a cue image frames the cue); no OD set, to keep it
fast. A FocalMRE whose image context is zeroed, or whose gate shuts the image out, is MTB with extra
weights and fails the margin.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mmie
from conftest import make_tiny_bert
from mmie.data import read_dataset, write_dataset
from mmie.data.synth import generate_dataset
from mmie.inference.challenges import challenge_sweep
from mmie.training import train
from test_tpm_mi_synth_training import make_calibrated_resnet

POSTS = 320
# Accuracy on the image-decided instances (~60, half of them None), FocalMRE over MTB. Measured at
# this commit: MTB 0.50 (it says None); FocalMRE 0.67-0.76 over training seeds 7-10.
MARGIN = 0.12


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synth") / "mre"
    generate_dataset("mre", folder, POSTS, seed=11, image_size=64)
    return folder


@pytest.fixture(scope="module")
def encoders(tmp_path_factory, sample: Path) -> dict[str, str]:
    words = {
        token.lower()
        for split in ("train", "val", "test")
        for record in read_dataset(sample / f"{split}.txt").records
        for token in record.post.tokens
    }
    bert = make_tiny_bert(tmp_path_factory.mktemp("synth-bert"), sorted(words))
    return {"text": bert, "vision": make_calibrated_resnet(tmp_path_factory.mktemp("synth-resnet"), sample, width=128)}


def experiment(sample: Path, model: dict) -> dict:
    return {
        "task": "re",
        "model": {"max_length": 48, "dropout": 0.0, **model},
        "data": {
            "format": "mremi",
            "train": str(sample / "train.txt"),
            "dev": str(sample / "val.txt"),
            "test": str(sample / "test.txt"),
            "images": str(sample / "images"),
        },
        "training": {
            "epochs": 20,
            "batch_size": 16,
            "learning_rate": 3e-4,  # slow text encoder: it memorises names before the head finds the cue
            "head_learning_rate": 3e-3,
            "warmup_ratio": 0.0,
            "seed": 7,
            "logging_steps": 20,
            "device": "cpu",
        },
    }


def image_decided(sample: Path) -> list:
    """The val and test instances whose relation only an image shows (the generator's ground truth)."""
    meta = [json.loads(line) for line in (sample / "synth_meta.jsonl").read_text().splitlines()]
    ambiguous = {row["id"] for row in meta if row["ambiguous"]}
    records = [r for split in ("val", "test") for r in read_dataset(sample / f"{split}.txt").records]
    return [r for r in records if r.id in ambiguous]


def accuracy(model_dir: Path, records: list, images: Path) -> float:
    predictions = mmie.load_model(model_dir, images=images).predict(records)
    return sum(p["relation"] == r.label for p, r in zip(predictions, records)) / len(records)


@pytest.mark.slow
def test_focalmre_reads_the_relation_from_its_images_and_mtb_cannot(sample, encoders, tmp_path):
    mtb = train(experiment(sample, {"name": "mtb", "encoder": encoders["text"]}), output_dir=tmp_path / "mtb")
    focal = train(
        experiment(
            sample,
            {
                "name": "focalmre",
                "encoder": encoders["text"],
                "vision_encoder": encoders["vision"],
                "freeze_vision": True,
                "feature_cache": str(tmp_path / "cache"),
                "regions": "precomputed",
                "regions_per_image": 2,
                "od_regions": "none",
                "patch_cells": 2,
                "attention_dropout": 0.0,
            },
        ),
        output_dir=tmp_path / "focalmre",
    )
    decided = image_decided(sample)
    assert len(decided) >= 30, len(decided)
    mtb_accuracy, focal_accuracy = (accuracy(r.model_dir, decided, sample / "images") for r in (mtb, focal))
    assert focal_accuracy >= mtb_accuracy + MARGIN, (focal_accuracy, mtb_accuracy)

    # Align-Noise (the paper's challenge set): every post of these instances shown with another post's
    # images. What FocalMRE read from its images is gone, so its score falls; MTB's does not move.
    decided_file = tmp_path / "image_decided.txt"
    write_dataset(decided, decided_file, "mremi")
    for result, falls in ((focal, True), (mtb, False)):
        model = mmie.load_model(result.model_dir, images=sample / "images")
        sweep = challenge_sweep(model, decided_file, "align-noise", ratios=[1.0])
        clean, noisy = (row["metrics"]["accuracy"] for row in sweep["results"])
        if falls:
            assert noisy <= clean - 0.08, (clean, noisy)
        else:
            assert noisy == clean, (clean, noisy)
