"""Image-text providers: the precomputed JSON-lines format, a real Hugging Face pipeline model (a tiny
image classifier the test builds and saves) run once and cached, and the offline provider that says
it has nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mmie.cli import main
from mmie.data import write_dataset
from mmie.data.schema import Post
from mmie.errors import ConfigError, DataError
from mmie.imagetext import (
    HubImageText,
    ImageText,
    ImageTextUnavailable,
    NoImageText,
    PrecomputedImageText,
    read_image_text,
    write_image_text,
)


def _lines(path: Path, *records: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def test_the_precomputed_format_reads_back_what_was_written(tmp_path):
    entries = [
        ImageText("17_06_12598.jpg", caption="a woman singing on a stage", tags=["person", "microphone"], ocr="LIVE"),
        ImageText("16_05_15_484.jpg", tags=["beach"]),
    ]
    write_image_text(entries, tmp_path / "text.jsonl")
    assert list(read_image_text(tmp_path / "text.jsonl").values()) == entries
    provider = PrecomputedImageText(tmp_path / "text.jsonl")
    assert provider.text("17_06_12598.jpg").tags == ["person", "microphone"]
    assert provider.text("images/16_05_15_484.jpg").caption is None  # looked up by file name
    with pytest.raises(ImageTextUnavailable, match="no line for image 'other.jpg'"):
        provider.text("other.jpg")


def test_files_of_several_sources_merge_per_image(tmp_path):
    path = _lines(
        tmp_path / "merged.jsonl",
        {"image": "a.jpg", "caption": "a dog"},
        {"image": "a.jpg", "tags": ["dog", "grass"]},
        {"image": "a.jpg", "ocr": ""},
    )
    assert read_image_text(path)["a.jpg"] == ImageText("a.jpg", caption="a dog", tags=["dog", "grass"], ocr="")


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ('{"caption": "x"}', ":2: image: the image's file name is required"),
        ('{"image": "a.jpg", "tags": "dog"}', ":2: tags: expected a list of strings"),
        ('{"image": "a.jpg", "caption": ["x"]}', ":2: caption: expected a string"),
        ('{"image": "a.jpg", "labels": []}', ":2: labels: unknown field"),
        ("not json", ":2: not a JSON object"),
    ],
)
def test_bad_lines_are_named_by_file_line_and_field(tmp_path, line, where):
    path = _lines(tmp_path / "bad.jsonl", {"image": "ok.jpg"}, line)
    with pytest.raises(DataError) as error:
        read_image_text(path)
    assert str(error.value) == f"{path}{where}" or str(error.value).startswith(f"{path}{where}")


def test_offline_without_file_or_model_the_provider_says_it_has_nothing():
    with pytest.raises(ImageTextUnavailable, match="no captions, tags or OCR text for image 'a.jpg'"):
        NoImageText().text("a.jpg")


def test_a_model_that_is_not_on_disk_offline_is_reported_not_invented(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    image = tmp_path / "a.jpg"
    Image.new("RGB", (8, 8), "red").save(image)
    provider = HubImageText("nobody/no-such-detector", "object-detection", cache_dir=tmp_path / "cache")
    with pytest.raises(ImageTextUnavailable, match="cannot load the object-detection model 'nobody/no-such-detector'"):
        provider.text("a.jpg", image)
    assert not (tmp_path / "cache" / "nobody_no-such-detector.tags.jsonl").exists()
    with pytest.raises(ConfigError, match="gives tags, not caption"):
        HubImageText("x", "object-detection", cache_dir=tmp_path, field="caption")


def _tiny_classifier(path: Path) -> Path:
    """A 2-layer ViT image classifier (hidden 32) with three labels, saved with its image processor."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    labels = {0: "dog", 1: "beach", 2: "stage"}
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    ViTForImageClassification(config).save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def test_a_named_pipeline_model_runs_once_per_image_and_is_cached(tmp_path):
    model = str(_tiny_classifier(tmp_path / "tiny-vit"))
    images = tmp_path / "images"
    images.mkdir()
    for name, colour in (("1.jpg", "red"), ("2.jpg", "blue")):
        Image.new("RGB", (40, 30), colour).save(images / name)
    posts = [Post("a", ["x"], ["1.jpg", "2.jpg"], tags=["O"]), Post("b", ["y"], ["1.jpg"], tags=["O"])]
    write_dataset(posts, tmp_path / "posts.jsonl", "mnermi")
    out, cache = tmp_path / "tags.jsonl", tmp_path / "cache"
    args = ["imagetext", "build", str(tmp_path / "posts.jsonl"), "--images", str(images), "--model", model]
    args += ["--out", str(out), "--task", "image-classification", "--top-k", "2", "--threshold", "0"]
    main([*args, "--cache-dir", str(cache)])
    made = read_image_text(out)
    assert list(made) == ["1.jpg", "2.jpg"]  # each image once, in order of first appearance
    assert all(len(entry.tags) == 2 and set(entry.tags) <= {"dog", "beach", "stage"} for entry in made.values())
    cached = next(cache.glob("*.tags.jsonl"))
    assert read_image_text(cached) == made

    # a second provider over the same cache runs the model on nothing
    again = HubImageText(model, "image-classification", cache_dir=cache, top_k=2, threshold=0)
    assert again.text("1.jpg", images / "1.jpg") == made["1.jpg"] and again.runs == 0

    # a line cut off by a killed run is dropped, and the image is made again
    cached.write_text(cached.read_text().splitlines()[0] + '\n{"image": "2.j', encoding="utf-8")
    resumed = HubImageText(model, "image-classification", cache_dir=cache, top_k=2, threshold=0)
    assert list(resumed.entries) == ["1.jpg"]
    assert resumed.text("2.jpg", images / "2.jpg") == made["2.jpg"] and resumed.runs == 1
    resumed.close()
    assert read_image_text(cached) == made


def test_visualpt_moe_dictionaries_convert_and_its_placeholder_caption_is_dropped(tmp_path):
    import torch

    captions = {"1.jpg": "a man holding a guitar", "2.jpg": "There are nothing in the image"}
    tags = {"1.jpg": ["person", "person", "guitar"], "3.jpg": []}
    torch.save(captions, tmp_path / "caption_mre.pt")
    torch.save(tags, tmp_path / "object_tags_mre.pt")
    out = tmp_path / "text.jsonl"
    main(
        ["imagetext", "convert", "--out", str(out), "--visualpt-captions", str(tmp_path / "caption_mre.pt")]
        + ["--visualpt-tags", str(tmp_path / "object_tags_mre.pt")]
    )
    made = read_image_text(out)
    assert made["1.jpg"] == ImageText("1.jpg", caption="a man holding a guitar", tags=["person", "person", "guitar"])
    assert made["3.jpg"] == ImageText("3.jpg")
    assert "2.jpg" not in made  # the stand-in text of an unreadable image is not a caption
    torch.save(["not", "a", "dict"], tmp_path / "bad.pt")
    from mmie.imagetext.convert import convert_visualpt_moe

    with pytest.raises(DataError, match="expected a dictionary keyed by image name"):
        convert_visualpt_moe(out, tags=tmp_path / "bad.pt")


def test_ita_doc_files_convert_per_image_after_checking_the_words(tmp_path):
    # ITA's "doc" column file: the post's words and tags, <EOS>, then the image text tagged X,
    # its fields separated by further <EOS> (caption, object tags, OCR)
    posts = [
        Post("17_06_1", ["Kawhi", "Leonard", "scores"], ["17_06_1.jpg"], tags=["B-PER", "I-PER", "O"]),
        Post("17_06_2", ["RT", "@NBA"], ["17_06_2.jpg"], tags=["O", "B-ORG"]),
        Post("17_06_3", ["hello"], ["17_06_3.jpg"], tags=["O"]),
    ]
    write_dataset(posts, tmp_path / "test.txt", "twitter")
    ita = tmp_path / "test_doc.txt"
    ita.write_text(
        "Kawhi\tB-PER\nLeonard\tI-PER\nscores\tO\n<EOS>\tX\na\tX\nman\tX\nplaying\tX\n<EOS>\tX\n"
        "man\tX\nball\tX\n<EOS>\tX\nSPURS\tX\n\n"
        "RT\tO\n@NBA\tB-ORG\n<EOS>\tX\na\tX\nlogo\tX\n\nhello\tO\n\n",
        encoding="utf-8",
    )
    out = tmp_path / "ita.jsonl"
    main(["imagetext", "convert", "--out", str(out), "--ita", str(ita), "--ita-dataset", str(tmp_path / "test.txt")])
    made = read_image_text(out)
    assert made["17_06_1.jpg"] == ImageText("17_06_1.jpg", "a man playing", ["man", "ball"], "SPURS")
    assert made["17_06_2.jpg"] == ImageText("17_06_2.jpg", caption="a logo")
    assert "17_06_3.jpg" not in made  # no <EOS>: the file has no image text for it, none is invented
    from mmie.imagetext.convert import convert_ita

    shifted = tmp_path / "shifted.txt"
    shifted.write_text(ita.read_text(encoding="utf-8").replace("Kawhi", "Kobe"), encoding="utf-8")
    with pytest.raises(DataError, match="words differ from post .17_06_1."):
        convert_ita(shifted, tmp_path / "test.txt", out)
    with pytest.raises(DataError, match="order: 3 image-text parts"):
        convert_ita(ita, tmp_path / "test.txt", out, order=("caption", "tags"))
