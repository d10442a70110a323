"""ITA: the image-text view (the post, a separator, the image text from a precomputed provider file)
and the text view, labels on the post's words only, the cross-view KL over the CRF marginals, and a
short training run through the real engine on SYNTHETIC posts with a provider file the test writes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

import mmie
from conftest import make_ner_posts, make_tiny_bert
from mmie.data import read_dataset
from mmie.data.synth import generate_dataset
from mmie.errors import ConfigError, DataError
from mmie.models import create_model, create_processor, create_vocabulary
from mmie.models.layers.crf import ConstrainedCRF
from mmie.training import train
from mmie.training.engine import label_set
from test_tpm_mi_synth_training import experiment


def write_image_text(path: Path, posts, caption: str = "alice visited paris", tags=("person",), ocr="today") -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for ref in {ref for post in posts for ref in post.images}:
            handle.write(json.dumps({"image": ref, "caption": caption, "tags": list(tags), "ocr": ocr}) + "\n")
    return path


def build(bert: str, posts, name: str = "ita", **settings):
    """The model, its tokenizer and its processor, built as the engine builds them (also OCSGA's)."""
    labels = label_set("ner", posts)
    config = {"name": name, "encoder": bert, "max_length": 64, **settings}
    tokenizer = create_vocabulary(config, posts)
    processor = create_processor(config, tokenizer, labels)
    torch.manual_seed(0)
    model = create_model(processor.config, labels, tokenizer=tokenizer)
    return model, tokenizer, processor


def test_labels_fall_on_the_posts_words_never_on_the_appended_text(tiny_bert, tmp_path):
    posts = make_ner_posts(4)
    _, tokenizer, processor = build(tiny_bert, posts, image_text=str(write_image_text(tmp_path / "it.jsonl", posts)))
    for post, feature in zip(posts, processor.featurize(posts)):
        tokens = tokenizer.convert_ids_to_tokens(feature["input_ids"])
        first_separator = tokens.index(tokenizer.sep_token)
        assert "paris" in tokens[first_separator:] and "today" in tokens[first_separator:]  # the image text is there
        assert len(feature["labels"]) == len(post.tokens) == len(feature["word_starts"])
        assert max(feature["word_starts"]) < first_separator  # every labelled position is one of the post's
        assert all(feature["token_type_ids"][start] == 0 for start in feature["word_starts"])
        # the text view: the same words, nothing appended
        text_tokens = tokenizer.convert_ids_to_tokens(feature["text_input_ids"])
        assert text_tokens == tokens[: first_separator + 1]
        assert feature["text_word_starts"] == feature["word_starts"]


def test_crf_marginals_are_the_brute_force_ones():
    torch.manual_seed(0)
    crf = ConstrainedCRF(["O", "B-PER", "I-PER"])
    emissions = torch.randn(2, 3, 3)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    marginals = crf.marginal_scores(emissions, mask).softmax(-1)
    for row, length in enumerate(mask.sum(1).tolist()):
        scores = {}
        for path in itertools.product(range(3), repeat=length):
            tags = torch.tensor([list(path) + [0] * (3 - length)])
            scores[path] = -crf.crf(emissions[row : row + 1], tags, mask[row : row + 1], reduction="sum")
        weights = torch.stack([-score for score in scores.values()]).softmax(0)
        for position in range(length):
            expected = torch.zeros(3)
            for weight, path in zip(weights, scores):
                expected[path[position]] += weight
            assert torch.allclose(marginals[row, position], expected, atol=1e-5)


def test_the_cross_view_kl_is_zero_when_both_views_agree_and_teaches_the_text_view_only(tiny_bert, tmp_path):
    posts = make_ner_posts(4)
    model, _, processor = build(tiny_bert, posts, image_text=str(write_image_text(tmp_path / "it.jsonl", posts)))
    batch = processor(posts)
    mask = batch["word_mask"]
    emissions = torch.randn(*mask.shape, len(model.labels))
    assert model.alignment_loss(emissions, emissions.clone(), mask).item() == pytest.approx(0.0, abs=1e-6)
    cross = torch.randn_like(emissions, requires_grad=True)
    text = torch.randn_like(emissions, requires_grad=True)
    divergence = model.alignment_loss(cross, text, mask)
    assert divergence.item() > 0.01
    divergence.backward()
    assert cross.grad is None and text.grad is not None and text.grad.abs().sum() > 0  # q' is the teacher
    # through the model: the loss carries the KL term; with weight 0 it is the two NLLs alone
    model.train()
    torch.manual_seed(0)
    with_alignment = model(**batch).loss
    model.alignment_weight = 0.0
    torch.manual_seed(0)
    without = model(**batch).loss
    model.alignment_weight = 1.0
    torch.manual_seed(0)
    text_nll_and_kl = model(**batch).loss
    assert with_alignment.item() != pytest.approx(without.item())
    assert text_nll_and_kl.item() > 0


def test_changing_the_provider_text_changes_the_logits(tiny_bert, tmp_path):
    posts = make_ner_posts(4)
    first = write_image_text(tmp_path / "a.jsonl", posts, caption="alice visited paris")
    second = write_image_text(tmp_path / "b.jsonl", posts, caption="dave joined red cross", tags=("car",), ocr="")
    logits = {}
    for name, path in (("a", first), ("b", second)):
        for view in ("image_text", "text"):
            model, _, processor = build(tiny_bert, posts, image_text=str(path), predict_view=view)
            model.eval()
            batch = {key: value for key, value in processor(posts).items() if key != "labels"}
            with torch.no_grad():
                logits[name, view] = model(**batch).logits
    assert not torch.allclose(logits["a", "image_text"], logits["b", "image_text"], atol=1e-4)
    assert torch.equal(logits["a", "text"], logits["b", "text"])  # the text view never reads the image text


def test_without_image_text_it_says_so_or_reads_the_text_alone_when_asked(tiny_bert, tmp_path):
    posts = make_ner_posts(2)
    with pytest.raises(ConfigError, match="model.image_text: ita reads the captions"):
        build(tiny_bert, posts)[2].featurize(posts)
    with pytest.raises(ConfigError, match="model.image_text: no such image-text file"):
        build(tiny_bert, posts, image_text=str(tmp_path / "missing.jsonl"))
    partial = write_image_text(tmp_path / "partial.jsonl", posts[:1])
    with pytest.raises(DataError, match="no line for image"):
        build(tiny_bert, posts, image_text=str(partial))[2].featurize(posts)
    # the explicit text-only fallback: the image-text view of an uncovered post is its text view
    _, _, processor = build(tiny_bert, posts, image_text=str(partial), missing_image_text="text_only")
    covered, uncovered = processor.featurize(posts)
    assert covered["input_ids"] != covered["text_input_ids"]
    assert uncovered["input_ids"] == uncovered["text_input_ids"]
    _, _, processor = build(tiny_bert, posts, missing_image_text="text_only")
    assert all(f["input_ids"] == f["text_input_ids"] for f in processor.featurize(posts))


def test_ita_trains_on_synthetic_posts_with_a_provider_file_and_reloads(tmp_path):
    sample = tmp_path / "synth"
    generate_dataset("mner", sample, 48, seed=5, image_size=64)
    meta = {row["id"]: row for row in map(json.loads, (sample / "synth_meta.jsonl").read_text().splitlines())}
    records = {split: read_dataset(sample / f"{split}.txt").records for split in ("train", "val", "test")}
    # the provider file: the image that shows a post's cue is tagged with it, the others "noise"
    lines = []
    for post in (post for split in records.values() for post in split):
        row = meta[post.id]
        for index, ref in enumerate(post.images):
            cue = row["cue"] if row["cue_image"] == index else None
            lines.append({"image": ref, "caption": f"a picture of {cue or 'nothing'}", "tags": [cue or "noise"]})
    image_text = tmp_path / "imagetext.jsonl"
    image_text.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    words = {t.lower() for split in records.values() for post in split for t in post.tokens}
    bert = make_tiny_bert(tmp_path / "bert", sorted(words | {"picture", "nothing", "noise"}))
    config = experiment(
        sample, {"name": "ita", "encoder": bert, "image_text": str(image_text)}
    )  # the engine's real path
    config["training"].update(epochs=2, batch_size=8)
    result = train(config, output_dir=tmp_path / "run")
    assert 0.0 <= result.metrics["test"]["f1"] <= 1.0
    loaded = mmie.load_model(result.model_dir, images=sample / "images")
    assert loaded.evaluate(records["test"], progress=False)["f1"] == pytest.approx(result.metrics["test"]["f1"])
    # a file that lacks an image of the training split: the error names the split's file and the record
    first = records["train"][0]
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(json.dumps(line) + "\n" for line in lines if line["image"] not in first.images))
    config["model"]["image_text"] = str(partial)
    with pytest.raises(DataError, match=rf"^{sample / 'train.txt'}: record {first.id}: images: .*no line for image"):
        train(config, output_dir=tmp_path / "partial")


WORDS = ["paris", "alice", "dave", "visited"]


def test_the_first_images_text_by_default_every_images_when_asked(tiny_bert, tmp_path):
    posts = [post for post in make_ner_posts(8) if len(post.images) >= 2][:1]
    assert posts
    path = tmp_path / "it.jsonl"
    path.write_text(
        "".join(json.dumps({"image": ref, "caption": word}) + "\n" for ref, word in zip(posts[0].images, WORDS)),
        encoding="utf-8",
    )
    for setting, expected in (("first", WORDS[:1]), ("all", WORDS[: len(posts[0].images)])):
        _, tokenizer, processor = build(tiny_bert, posts, image_text=str(path), image_text_images=setting)
        tokens = tokenizer.convert_ids_to_tokens(processor.featurize(posts)[0]["input_ids"])
        appended = tokens[tokens.index(tokenizer.sep_token) + 1 :]
        assert [token for token in appended if token != tokenizer.sep_token] == expected
