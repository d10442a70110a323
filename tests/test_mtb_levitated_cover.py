"""One-pass MTB with ``packing: cover``: a post's segments are those of a few entities that cover its
pairs, each marked in the text as subject packing marks a head; a pair read from its tail's segment
goes to a second classifier. Checked on a tiny BERT: the cover itself, a forward pair scoring as in
subject packing, A->B and B->A read from one segment, training reading each pair from its named
side, and the Extractor reading such a post once."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import write_splits
from mmie.data.schema import Post, RelationInstance
from mmie.errors import ConfigError
from mmie.evaluation.predictions import read_predictions
from mmie.features.levitated import subject_cover
from mmie.inference.loading import load_model
from mmie.inference.saving import save_model_folder
from mmie.models import create_model, create_processor, create_vocabulary
from mmie.pipeline import Extractor
from mmie.training import train
from test_mtb_levitated import SPANS, TOKENS, build, encoder_calls, post_instances

A, B, C = (0, 0), (3, 4), (8, 9)  # entity sub-word spans (first, last)


def test_the_cover_reads_every_pair_from_few_entities():
    # a single pair is read from its head
    assert subject_cover({0: (B, A)}, {}) == [(B, [0])]
    # A->B and B->A: one segment, of the first entity in the text
    assert subject_cover({0: (A, B), 1: (B, A)}, {}) == [(A, [0, 1])]
    # a star into B (A->B, C->B): B covers both, read from their tails
    assert subject_cover({0: (A, B), 1: (C, B)}, {}) == [(B, [0, 1])]
    # a triangle A->B, A->C, B->C: A heads two, then B->C from its head
    assert subject_cover({0: (A, B), 1: (A, C), 2: (B, C)}, {}) == [(A, [0, 1]), (B, [2])]
    # a side given (training) is kept: pair 0 from its tail B, the rest covered greedily
    assert subject_cover({0: (A, B), 1: (A, C)}, {0: True}) == [(A, [1]), (B, [0])]


@pytest.fixture(scope="module")
def by_cover(tiny_bert):
    return build(tiny_bert, packing="cover")


def test_a_pair_read_from_its_head_scores_as_in_subject_packing(tiny_bert, by_cover):
    cover_model, cover, _ = by_cover
    subject_model, subject, _ = build(tiny_bert, packing="subject")  # the same seed: the same encoder and W
    torch.testing.assert_close(cover_model.classifier.weight, subject_model.classifier.weight)
    instances = post_instances()
    features = cover.featurize(instances, with_labels=False)
    batch = cover.collate(features)
    # alice heads two pairs, then bob is in the other two: bob->red cross read from its head,
    # new york->bob from its tail (inverse): two segments where subject packing has three
    assert batch["inverse"].tolist() == [False, False, False, True]
    n = len(features[0]["input_ids"])  # each segment: the text, its subject's 2 markers, 2 per partner
    assert batch["input_ids"].shape == (1, 2 * (n + 2 + 2 * 2))
    with torch.no_grad():
        by_cover_logits = cover_model(**batch).logits
        by_subject = subject_model(**subject.collate(subject.featurize(instances, with_labels=False))).logits
    forward = ~batch["inverse"]
    torch.testing.assert_close(by_cover_logits[forward], by_subject[forward], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(by_cover_logits[~forward], by_subject[~forward])  # the inverse classifier


def reverse_pairs(post_id: str = "p0") -> list[RelationInstance]:
    post = Post(id=post_id, tokens=list(TOKENS))
    alice, bob = SPANS["alice"], SPANS["bob"]
    return [RelationInstance(post, alice, bob, "None"), RelationInstance(post, bob, alice, "None")]


def test_a_pair_and_its_reverse_are_one_segment_and_score_as_read_alone(by_cover):
    model, processor, tokenizer = by_cover
    head_open, head_close, tail_open, tail_close = tokenizer.convert_tokens_to_ids(list(processor.config.markers))
    features = processor.featurize(reverse_pairs(), with_labels=False)
    batch = processor.collate(features)
    text = features[0]["input_ids"]
    row = batch["input_ids"][0].tolist()
    # one segment: the text with alice marked, then bob's two markers, once for both pairs
    assert batch["input_ids"].shape == (1, len(text) + 2 + 2)
    assert row == [text[0], head_open, *text[1:2], head_close, *text[2:], tail_open, tail_close]
    assert batch["inverse"].tolist() == [False, True]
    assert batch["head_marker"].tolist() == [1, len(text) + 2] and batch["tail_marker"].tolist() == [len(text) + 2, 1]
    # bob's levitated markers sit at bob's sub-word, past alice's two markers
    assert batch["position_ids"][0, -2:].tolist() == [len(text), len(text)]
    with torch.no_grad():
        together = model(**batch).logits
        # each pair alone, read from the same side (a training batch names its side)
        alone = [
            model(
                **{k: v for k, v in processor.collate([{**f, "labels": 0, "inverse": side}]).items() if k != "labels"}
            )
            for f, side in zip(features, (0, 1))
        ]
    torch.testing.assert_close(together, torch.cat([out.logits for out in alone]), rtol=1e-5, atol=1e-5)


def test_training_reads_each_pair_from_the_side_its_posts_cover_gives_it(by_cover):
    model, processor, _ = by_cover
    features = processor.featurize(post_instances())
    sides = [feature["inverse"] for feature in features]
    assert sides == [0, 0, 0, 1]  # as predicted: new york->bob read from bob's segment
    # a training batch holding one of the post's pairs still reads it from its post's side
    assert processor.collate([features[3]])["inverse"].tolist() == [True]
    assert processor.collate([{k: v for k, v in features[3].items() if k != "labels"}])["inverse"].tolist() == [False]
    batch = processor.collate(features)
    assert batch["inverse"].tolist() == [bool(side) for side in sides]  # training keeps the named side
    model.train()
    try:
        model.zero_grad()
        model(**batch).loss.backward()
        assert model.classifier.weight.grad.abs().sum() > 0 and model.inverse_classifier.weight.grad.abs().sum() > 0
    finally:
        model.zero_grad()
        model.eval()


def test_the_extractor_reads_a_post_with_a_pair_both_ways_once(tiny_bert, tmp_path):
    labels = ["None", "related"]  # untyped: every ordered pair of entities is a candidate
    config = {"name": "mtb_levitated", "encoder": tiny_bert, "max_length": 32, "packing": "cover"}
    tokenizer = create_vocabulary(config)
    model = create_model(create_processor(config, tokenizer, labels).config, labels, tokenizer=tokenizer)
    folder = save_model_folder(model, tokenizer, tmp_path / "model")
    loaded = load_model(folder)
    calls = encoder_calls(loaded.model)
    text = " ".join(TOKENS)
    entities = [
        {"start": text.index(name), "end": text.index(name) + len(name), "type": "PER"} for name in ("alice", "bob")
    ]
    result = Extractor(re=loaded, include_none=True)(text, entities=entities)
    assert [(r["head"], r["tail"]) for r in result["relations"]] == [(0, 1), (1, 0)]
    assert calls == [1]  # alice->bob and bob->alice: one segment


def test_training_both_sides_reads_each_pair_from_its_head_and_from_its_tail(tiny_bert, by_cover, tmp_path):
    model, processor, _ = build(tiny_bert, packing="cover", cover_training="both")
    instances = post_instances()
    views = processor.featurize_training(instances)
    assert [view["inverse"] for view in views] == [0, 1] * len(instances)
    assert len(processor.featurize(instances)) == len(instances)  # dev and prediction: one read a pair
    batch = processor.collate(views)
    assert batch["inverse"].tolist() == [False, True] * len(instances)
    # the head-side reads score as the cover model reads them from their head (same weights, seed 0)
    cover_model, cover_processor, _ = by_cover
    head_side = [{**feature, "inverse": 0} for feature in cover_processor.featurize(instances)]
    with torch.no_grad():
        both = model(**batch).logits
        forward = cover_model(**cover_processor.collate(head_side)).logits
    torch.testing.assert_close(both[0::2], forward, rtol=1e-5, atol=1e-5)
    model.train()
    model(**batch).loss.backward()
    assert model.classifier.weight.grad.abs().sum() > 0 and model.inverse_classifier.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("cover_training", ["both", "probe", None])
def test_under_probe_tail_side_reads_train_the_second_classifier_alone(tiny_bert, cover_training):
    # None: the default, probe
    model, processor, _ = build(tiny_bert, packing="cover", cover_training=cover_training)
    instances = post_instances()
    views = processor.featurize_training(instances)
    assert [view["inverse"] for view in views] == [0, 1] * len(instances)  # probe reads both sides, as both
    model.train()
    model(**processor.collate(views[1::2])).loss.backward()  # the tail-side reads only
    encoder = [p.grad for p in model.text_encoder.parameters() if p.requires_grad]
    reached = sum(0.0 if grad is None else float(grad.abs().sum()) for grad in encoder)
    assert model.inverse_classifier.weight.grad.abs().sum() > 0
    assert (reached > 0) == (cover_training == "both")  # probe: the encoder learns from head-side reads alone


def test_cover_packing_trains_both_sides_unless_told_to_train_the_cover_side_only(tiny_bert, by_cover):
    instances = post_instances()
    _, default, _ = by_cover
    assert [view["inverse"] for view in default.featurize_training(instances)] == [0, 1] * len(instances)
    _, cover_side, _ = build(tiny_bert, packing="cover", cover_training="cover")
    views = cover_side.featurize_training(instances)
    assert [view["inverse"] for view in views] == [feature["inverse"] for feature in cover_side.featurize(instances)]
    # other packings read each training pair once, and take no cover_training
    _, subject, _ = build(tiny_bert, packing="subject")
    assert len(subject.featurize_training(instances)) == len(instances)
    with pytest.raises(ConfigError, match="cover_training: both goes with packing: cover"):
        build(tiny_bert, packing="subject", cover_training="both")


@pytest.mark.slow
def test_a_run_with_both_sides_trains_on_two_reads_a_pair_and_predicts_one(tiny_bert, tmp_path):
    paths = write_splits(tmp_path / "data", "re", {"train": 24, "dev": 8, "test": 8})
    config = {
        "task": "re",
        "model": {"name": "mtb_levitated", "encoder": tiny_bert, "max_length": 32, "packing": "cover"},
        "data": {split: str(path) for split, path in paths.items()},
        "training": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "warmup_ratio": 0.0},
    }
    config["model"]["cover_training"] = "both"
    result = train(config, output_dir=tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["train_examples"] == 2 * 24
    predictions = read_predictions(tmp_path / "run" / "predictions" / "test.jsonl")
    assert len(predictions) == 8 and result.metrics["test"]["n"] == 8
