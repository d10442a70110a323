"""OCSGA: the object labels of the image (a provider file the test writes) read as text, dense
co-attention from the words to the post's objects, the gate, the CRF; a short training run through
the real engine on SYNTHETIC posts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mmie
from conftest import make_ner_posts, make_tiny_bert
from mmie.data import read_dataset
from mmie.data.synth import generate_dataset
from mmie.errors import ConfigError
from mmie.training import train
from test_ita import build as build_model
from test_tpm_mi_synth_training import experiment


def write_tags(path: Path, posts, tags_of) -> Path:
    lines = [{"image": ref, "tags": tags_of(index)} for index, post in enumerate(posts) for ref in post.images]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def build(bert: str, posts, **settings):
    model, _, processor = build_model(bert, posts, "ocsga", **settings)
    return model, processor


def test_word_to_object_attention_sums_to_one_over_the_posts_objects(tiny_bert, tmp_path):
    posts = make_ner_posts(4)
    counts = [1, 3, 0, 2]  # objects per post; the third has none
    path = write_tags(tmp_path / "tags.jsonl", posts, lambda i: ["person", "car", "person"][: counts[i]])
    model, processor = build(tiny_bert, posts, image_text=str(path))
    batch = processor(posts)
    assert batch["object_mask"].sum(1).tolist() == counts
    model.eval()
    with torch.no_grad():
        attention = model(**{k: v for k, v in batch.items() if k != "labels"}).object_attention  # [B, h, n, K]
    words = batch["word_mask"]
    for row, count in enumerate(counts):
        per_word = attention[row][:, words[row]]  # [h, words, K]
        assert torch.allclose(per_word.sum(-1), torch.full(per_word.shape[:2], float(count > 0)), atol=1e-5)
        assert (per_word[..., count:] == 0).all()  # padded object slots get nothing


def test_changing_the_object_labels_changes_the_logits(tiny_bert, tmp_path):
    posts = make_ner_posts(4)
    logits = []
    for name, tags in (("a", ["person"]), ("b", ["car", "paris"])):
        model, processor = build(
            tiny_bert, posts, image_text=str(write_tags(tmp_path / f"{name}.jsonl", posts, lambda i, t=tags: t))
        )
        model.eval()
        with torch.no_grad():
            logits.append(model(**{k: v for k, v in processor(posts).items() if k != "labels"}).logits)
    assert not torch.allclose(logits[0], logits[1], atol=1e-4)


def test_without_object_labels_it_says_so_or_reads_the_text_alone_when_asked(tiny_bert):
    posts = make_ner_posts(2)
    with pytest.raises(ConfigError, match="model.image_text: ocsga reads"):
        build(tiny_bert, posts)[1].featurize(posts)
    _, processor = build(tiny_bert, posts, missing_image_text="text_only")
    assert processor(posts)["object_mask"].sum() == 0


def test_ocsga_trains_on_synthetic_posts_with_a_provider_file_and_reloads(tmp_path):
    sample = tmp_path / "synth"
    generate_dataset("mner", sample, 48, seed=5, image_size=64)
    meta = {row["id"]: row for row in map(json.loads, (sample / "synth_meta.jsonl").read_text().splitlines())}
    records = {split: read_dataset(sample / f"{split}.txt").records for split in ("train", "val", "test")}
    lines = []  # the image that shows a post's cue is tagged with it, the others with "noise"
    for post in (post for split in records.values() for post in split):
        for index, ref in enumerate(post.images):
            cue = meta[post.id]["cue"] if meta[post.id]["cue_image"] == index else None
            lines.append({"image": ref, "tags": [cue or "noise"]})
    tags = tmp_path / "tags.jsonl"
    tags.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    words = {t.lower() for split in records.values() for post in split for t in post.tokens}
    bert = make_tiny_bert(tmp_path / "bert", sorted(words | {"noise"}))
    config = experiment(sample, {"name": "ocsga", "encoder": bert, "image_text": str(tags)})  # the engine's path
    config["training"].update(epochs=2, batch_size=8)
    result = train(config, output_dir=tmp_path / "run")
    loaded = mmie.load_model(result.model_dir, images=sample / "images")
    assert loaded.evaluate(records["test"], progress=False)["f1"] == pytest.approx(result.metrics["test"]["f1"])
