"""The synthetic datasets: deterministic, readable by the real readers, and built so that the label of
an ambiguous post is decided by one image (often not the first) and not by its text."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from PIL import Image

from mmie.cli import main
from mmie.data import read_crop_dict, read_dataset
from mmie.data.synth import META_FILE, MNER_CUES, MRE_CUES, MRE_LABELS, generate_dataset, plan_posts
from mmie.data.synth.images import IMAGE_SIZE
from mmie.errors import ConfigError

SMALL = 40


def _tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _meta(root: Path) -> dict[str, dict]:
    return {m["id"]: m for m in map(json.loads, (root / META_FILE).read_text(encoding="utf-8").splitlines())}


@pytest.fixture(scope="module", params=["mner", "mre"])
def generated(request, tmp_path_factory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp(request.param) / "data"
    generate_dataset(request.param, out, SMALL, seed=7)
    return request.param, out


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(generated, tmp_path):
    task, first = generated
    again = tmp_path / "again"
    generate_dataset(task, again, SMALL, seed=7)
    assert _tree(first) == _tree(again)

    other = tmp_path / "other"
    generate_dataset(task, other, SMALL, seed=8)
    first_files, other_files = _tree(first), _tree(other)
    for name in ("train.txt", "val.txt", "test.txt", "images/1_0.jpg"):
        assert first_files[name] != other_files[name], name


def test_files_load_with_the_real_readers_and_images_open(generated):
    task, out = generated
    expected_format = {"mner": "mnermi", "mre": "mremi"}[task]
    sizes = {}
    for split in ("train", "val", "test"):
        dataset = read_dataset(out / f"{split}.txt")  # format detected from the content
        assert dataset.format == expected_format and not dataset.skipped
        sizes[split] = len(dataset.records)
        for record in dataset.records:
            post = record if task == "mner" else record.post
            assert 1 <= len(post.images) <= 4
            for name in post.images:
                with Image.open(out / "images" / name) as image:
                    assert image.format == "JPEG" and image.size == (IMAGE_SIZE, IMAGE_SIZE)
    assert sizes == {"train": 28, "val": 6, "test": 6}
    assert len(_meta(out)) == SMALL


def test_mre_grounding_crops_exist_and_surround_the_cue(generated):
    task, out = generated
    if task != "mre":
        assert not (out / "images_vg.pth").exists() and not (out / "images_vg").exists()
        return
    crops = read_crop_dict(out / "images_vg.pth")
    meta = _meta(out)
    image_names = {name for m in meta.values() for name in (f"{m['id']}_{k}.jpg" for k in range(m["n_images"]))}
    assert set(crops) == image_names
    cue_crop_sides, other_crop_sides = [], []
    for image_name, names in crops.items():
        assert 1 <= len(names) <= 2
        post_id, position = image_name[: -len(".jpg")].rsplit("_", 1)
        is_cue_image = meta[post_id]["cue_image"] == int(position)
        for j, name in enumerate(names):
            with Image.open(out / "images_vg" / name) as crop:
                side = min(crop.size)
            (cue_crop_sides if is_cue_image and j == 0 else other_crop_sides).append(side)
    # A grounding crop of the cue holds the large cue object; the other crops hold small distractors.
    assert cue_crop_sides and min(cue_crop_sides) >= 100
    assert max(other_crop_sides) < 80


@pytest.mark.parametrize("task", ["mner", "mre"])
def test_ambiguous_share_and_cue_positions(task):
    planned = plan_posts(task, 1500, seed=1)
    ambiguous = [p.meta for p in planned if p.meta["ambiguous"]]
    assert 0.5 <= len(ambiguous) / len(planned) <= 0.7
    with_cue = [m for m in ambiguous if m["cue_image"] is not None]
    positions = Counter(m["cue_image"] for m in with_cue)
    assert set(positions) == {0, 1, 2, 3}
    # The cue is the first image in a bit under half of the posts, as 1..4 images with a uniform position give.
    assert 0.35 <= positions[0] / len(with_cue) <= 0.55
    for m in with_cue:
        assert 0 <= m["cue_image"] < m["n_images"] <= 4
    # Text-decided posts carry no cue at all.
    assert all(p.meta["cue_image"] is None for p in planned if not p.meta["ambiguous"])


def test_mner_cue_matches_the_type_of_the_ambiguous_entity():
    for post in plan_posts("mner", 300, seed=2):
        meta, tags = post.meta, post.record.tags
        if meta["entity_span"] is not None:
            start, end = meta["entity_span"]
            assert tags[start] == f"B-{meta['label']}" and all(t == f"I-{meta['label']}" for t in tags[start + 1 : end])
        if meta["ambiguous"]:
            assert meta["cue"] == MNER_CUES[meta["label"]]
            assert post.images[meta["cue_image"]].cue == meta["cue"]
            assert sum(plan.cue is not None for plan in post.images) == 1


def test_mre_labels_and_cues():
    planned = plan_posts("mre", 600, seed=2)
    assert {p.meta["label"] for p in planned} == set(MRE_LABELS)
    for post in planned:
        record = post.record
        assert " ".join(record.post.tokens[record.head.start : record.head.end]) == record.head.name
        if post.meta["ambiguous"]:
            assert post.meta["cue"] == MRE_CUES.get(record.label)


def _lookup_accuracy(posts: list, key) -> float:
    """Train a lookup 'model' (majority label per key) on the first half, score it on the second half."""
    half = len(posts) // 2
    seen: dict[object, Counter] = defaultdict(Counter)
    for post in posts[:half]:
        seen[key(post)][post.meta["label"]] += 1
    held_out = [post for post in posts[half:] if key(post) in seen]
    return sum(seen[key(p)].most_common(1)[0][0] == p.meta["label"] for p in held_out) / len(held_out)


@pytest.mark.parametrize("task", ["mner", "mre"])
def test_text_of_an_ambiguous_post_does_not_predict_its_label(task):
    """Memorising the label of each template does no better on ambiguous posts than knowing only the
    entity types the text shows (MRE) or nothing (MNER); on text-decided posts it is perfect."""
    planned = plan_posts(task, 3000, seed=5)
    ambiguous = [p for p in planned if p.meta["ambiguous"]]
    telling = [p for p in planned if not p.meta["ambiguous"]]

    def by_template(post):
        return post.meta["template"]

    def by_types(post):  # all the text reveals on an ambiguous post
        return tuple(post.meta.get("types", ()))

    assert _lookup_accuracy(ambiguous, by_template) <= _lookup_accuracy(ambiguous, by_types) + 0.05
    assert _lookup_accuracy(telling, by_template) == 1.0
    if task == "mner":
        assert _lookup_accuracy(ambiguous, by_types) < 0.35  # four types, drawn uniformly
        # The very same text (template and name) occurs with different labels.
        labels_by_text: dict[str, set] = defaultdict(set)
        for post in ambiguous:
            labels_by_text[" ".join(post.record.tokens)].add(post.meta["label"])
        assert sum(len(labels) > 1 for labels in labels_by_text.values()) >= 20


def test_cli_writes_refuses_a_non_empty_folder_and_overwrites(tmp_path, capsys):
    out = tmp_path / "demo"
    main(["data", "synth", "--task", "mner", "--out", str(out), "--posts", "12", "--seed", "4"])
    assert "SYNTHETIC" in capsys.readouterr().out
    assert len(read_dataset(out / "train.txt").records) == 8

    with pytest.raises(SystemExit) as done:
        main(["data", "synth", "--task", "mner", "--out", str(out), "--posts", "12"])
    assert done.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "--overwrite" in error

    (out / "notes.txt").write_text("mine")
    main(["data", "synth", "--task", "mre", "--out", str(out), "--posts", "5", "--overwrite"])
    assert (out / "notes.txt").read_text() == "mine"  # only the generator's own files are replaced
    assert (out / "images_vg.pth").exists() and len(list((out / "images").iterdir())) == sum(
        m["n_images"] for m in _meta(out).values()
    )


def test_bad_arguments_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="posts"):
        generate_dataset("mner", tmp_path / "x", 2)
    with pytest.raises(ConfigError, match="task"):
        plan_posts("ocr", 10, 0)


# sha256 of a small default sample (16 posts, seed 11, 224 x 224), taken before the mechanism settings
# (small cues, distractors, order) were added: the default output must never change. The digest covers
# the record and meta files, the crop dictionary, and the rendered pixels and boxes of every image
# (pixels, not JPEG bytes, so that another libjpeg build does not fail it).
DEFAULT_SAMPLE_DIGESTS = {
    "mner": "f4f9f63576e4eaa3306fe45fe8f9621d4949fdca5d7582bf189f4f5d5a0703eb",
    "mre": "16ec96089b23d09a96481308e8d25d76f2f12ba03f7b88169baf8f0d01ac9b37",
}


def _sample_digest(task: str, out: Path, posts: int, seed: int) -> str:
    import hashlib

    from mmie.data.synth import grounding_boxes, render_image

    digest = hashlib.sha256()
    for name in ("train.txt", "val.txt", "test.txt", META_FILE):
        digest.update(name.encode())
        digest.update((out / name).read_bytes())
    if task == "mre":
        digest.update(json.dumps(read_crop_dict(out / "images_vg.pth"), sort_keys=True).encode())
    for post in plan_posts(task, posts, seed):
        for plan in post.images:
            rendered = render_image(plan, IMAGE_SIZE)
            digest.update(plan.name.encode())
            digest.update(rendered.image.tobytes())
            digest.update(json.dumps([rendered.cue_box, rendered.distractor_boxes]).encode())
            boxes = grounding_boxes(rendered, seed=plan.seed ^ 0x5EED, k=2, size=IMAGE_SIZE)
            digest.update(json.dumps(boxes).encode())
    return digest.hexdigest()


@pytest.mark.parametrize("task", ["mner", "mre"])
def test_default_output_is_the_one_of_before_the_mechanism_settings(task, tmp_path):
    generate_dataset(task, tmp_path / "d", 16, seed=11)
    assert _sample_digest(task, tmp_path / "d", 16, 11) == DEFAULT_SAMPLE_DIGESTS[task]
