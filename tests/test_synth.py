"""The synthetic datasets: deterministic, readable by the real readers, and built so that the label of
an ambiguous post is decided by one image (often not the first) and not by its text."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmie.cli import main
from mmie.data import read_crop_dict, read_dataset
from mmie.data.schema import Post
from mmie.data.synth import (
    BACKGROUND_COLOURS,
    META_FILE,
    MNER_CUES,
    MRE_CUES,
    MRE_LABELS,
    PRESETS,
    SETTINGS,
    SynthMix,
    deciding_setting,
    generate_dataset,
    plan_posts,
    read_settings,
    render_image,
    resolve_mix,
)
from mmie.data.synth.images import IMAGE_SIZE
from mmie.data.synth.vocab import MRE_AMBIGUOUS_GROUPS as MRE_GROUPS
from mmie.errors import ConfigError, DataError

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

    from mmie.data.synth import grounding_boxes

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


# --- the mechanism settings (docs/synthetic.md, "Settings that tell the mechanisms apart") ----------


MECHANISMS = PRESETS["mechanisms"]


def _posts_of(task: str, setting: str, posts: int = 600, seed: int = 3) -> list:
    planned = [p for p in plan_posts(task, posts, seed, MECHANISMS) if p.meta["setting"] == setting]
    assert len(planned) >= posts // 10, (setting, len(planned))
    return planned


def _text(post) -> list[str]:
    return post.record.tokens if isinstance(post.record, Post) else post.record.post.tokens


@pytest.mark.parametrize("task", ["mner", "mre"])
def test_mechanisms_preset_mixes_the_five_settings_in_equal_shares(task):
    planned = plan_posts(task, 3000, seed=9, mix=MECHANISMS)
    counts = Counter(p.meta["setting"] for p in planned)
    assert set(counts) == set(SETTINGS)
    for setting in SETTINGS:
        assert 0.17 <= counts[setting] / len(planned) <= 0.23, (setting, counts)
    for post in planned:
        assert post.meta["ambiguous"] == (post.meta["setting"] != "text")
        assert deciding_setting(post.meta) == post.meta["setting"]
    # the same seed and mix plan the same posts
    again = plan_posts(task, 3000, seed=9, mix=MECHANISMS)
    assert [p.meta for p in again] == [p.meta for p in planned]


def test_mix_shares_are_checked_and_presets_resolve():
    assert SynthMix().cue == 0.6 and SynthMix().is_default
    assert resolve_mix("default") == SynthMix()
    assert resolve_mix("mechanisms", order=0.3) == SynthMix(text=0.2, small_cue=0.2, distractor=0.2, order=0.3)
    with pytest.raises(ConfigError, match="add up to 1.2"):
        SynthMix(small_cue=0.5, distractor=0.3)
    with pytest.raises(ConfigError, match="order"):
        SynthMix(order=-0.1)
    with pytest.raises(ConfigError, match="preset"):
        resolve_mix("hardest")
    # a mix with a single setting gives only posts of that setting
    only_order = plan_posts("mner", 50, seed=1, mix=SynthMix(text=0.0, order=1.0))
    assert {p.meta["setting"] for p in only_order} == {"order"}


@pytest.mark.parametrize("task", ["mner", "mre"])
def test_small_cues_cover_5_to_15_percent_of_the_frame_anywhere(task):
    small = _posts_of(task, "small_cue")
    areas, centres = [], []
    for post in small:
        cue_plans = [plan for plan in post.images if plan.cue is not None]
        if post.meta["label"] in ("None",):
            assert not cue_plans  # MRE None: no image relates the pair, as on cue posts
            continue
        assert len(cue_plans) == 1 and cue_plans[0].scale == "small"
        assert post.images.index(cue_plans[0]) == post.meta["cue_image"] == post.meta["deciding_image"]
        box = render_image(cue_plans[0], IMAGE_SIZE).cue_box
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= IMAGE_SIZE and 0 <= y0 < y1 <= IMAGE_SIZE
        areas.append((x1 - x0) * (y1 - y0) / IMAGE_SIZE**2)
        centres.append(((x0 + x1) / 2 / IMAGE_SIZE, (y0 + y1) / 2 / IMAGE_SIZE))
    assert len(areas) >= 20
    assert 0.045 <= min(areas) and max(areas) <= 0.16  # 5-15 %, up to rounding to whole pixels
    assert min(areas) < 0.07 and max(areas) > 0.13  # the whole range is used
    # placed anywhere: the centres reach every quarter of the frame
    quarters = {(cx >= 0.5, cy >= 0.5) for cx, cy in centres}
    assert len(quarters) == 4
    assert min(c for xy in centres for c in xy) < 0.2 and max(c for xy in centres for c in xy) > 0.8
    # the cues of the other image settings stay large (55-85 % of the side, 30-72 % of the area)
    for setting in ("cue", "distractor", "order"):
        for post in _posts_of(task, setting)[:15]:
            for plan in post.images:
                if plan.cue is not None:
                    x0, y0, x1, y1 = render_image(plan, IMAGE_SIZE).cue_box
                    assert plan.scale == "large" and (x1 - x0) * (y1 - y0) / IMAGE_SIZE**2 > 0.25


def _colour_words(tokens: list[str]) -> list[str]:
    return [token for token in tokens if token in BACKGROUND_COLOURS]


def _background_colour(plan) -> str:
    """The named colour nearest to the mean of the pixels outside the cue and the small shapes."""
    rendered = render_image(plan, IMAGE_SIZE)
    pixels = np.asarray(rendered.image, dtype=np.float64)
    keep = np.ones(pixels.shape[:2], dtype=bool)
    for x0, y0, x1, y1 in (
        [rendered.cue_box, *rendered.distractor_boxes] if rendered.cue_box else rendered.distractor_boxes
    ):
        keep[y0:y1, x0:x1] = False
    mean = pixels[keep].mean(axis=0)
    return min(BACKGROUND_COLOURS, key=lambda name: np.abs(np.asarray(BACKGROUND_COLOURS[name]) - mean).sum())


@pytest.mark.parametrize("task", ["mner", "mre"])
def test_distractor_images_carry_other_labels_cues_and_the_text_names_the_deciding_one(task):
    cues_of = MNER_CUES if task == "mner" else MRE_CUES
    none_with_competitor = 0
    for post in _posts_of(task, "distractor"):
        meta, plans = post.meta, post.images
        label, deciding = meta["label"], meta["deciding_image"]
        assert 2 <= len(plans) <= 4 and 0 <= deciding < len(plans)
        colours = [plan.background for plan in plans]
        assert None not in colours and len(set(colours)) == len(colours)
        assert meta["image_colours"] == colours
        # the text names the deciding image's colour and no other
        assert _colour_words(_text(post)) == [colours[deciding]]
        # the deciding image shows the label's cue (MRE None: no cue); every other image a cue of another label
        assert plans[deciding].cue == cues_of.get(label)
        others = [plan.cue for k, plan in enumerate(plans) if k != deciding]
        assert None not in others and len(set(others)) == len(others)
        assert cues_of.get(label) not in others
        if task == "mre" and label == "None":
            pair_cues = {cues_of[r] for r in MRE_GROUPS[tuple(meta["types"])] if r in cues_of}
            none_with_competitor += bool(pair_cues & set(others))
            assert pair_cues & set(others), meta  # a cue the text's entity types allow, in the wrong image
        assert meta["image_cues"] == [plan.cue for plan in plans]
    if task == "mre":
        assert none_with_competitor >= 5
    # the named colour is what the pixels show (two posts are enough to render)
    for post in _posts_of(task, "distractor")[:2]:
        assert [_background_colour(plan) for plan in post.images] == post.meta["image_colours"]


@pytest.mark.parametrize("task", ["mner", "mre"])
def test_order_posts_are_decided_by_the_later_of_two_cues(task):
    cue_sets: dict[frozenset, set] = defaultdict(set)
    for post in _posts_of(task, "order"):
        meta, plans = post.meta, post.images
        positions = [k for k, plan in enumerate(plans) if plan.cue is not None]
        assert len(positions) == 2 and 2 <= len(plans) <= 4
        earlier, later = (plans[k].cue for k in positions)
        assert earlier != later
        assert meta["deciding_image"] == meta["cue_image"] == positions[1] and meta["cue"] == later
        if task == "mner":
            assert later == MNER_CUES[meta["label"]] and earlier != later
        else:
            group = MRE_GROUPS[tuple(meta["types"])]
            own = {MRE_CUES[r]: r for r in group if r in MRE_CUES}
            assert meta["label"] == own.get(later, "None")
            assert earlier in own or later in own  # one cue at least is one the pair can have
        cue_sets[frozenset((earlier, later))].add(meta["label"])
    # the same two cues in the other order give the other label: the set of cues does not decide
    assert sum(len(labels) == 2 for labels in cue_sets.values()) >= 3


@pytest.mark.parametrize("task", ["mner", "mre"])
def test_meta_lines_match_the_written_posts(task, tmp_path):
    out = tmp_path / "mech"
    summary = generate_dataset(task, out, 60, seed=5, mix=MECHANISMS)
    meta = _meta(out)
    assert summary.settings == dict(Counter(m["setting"] for m in meta.values()))
    seen = set()
    for split in ("train", "val", "test"):
        for record in read_dataset(out / f"{split}.txt").records:
            line = meta[record.id]
            seen.add(record.id)
            post = record if task == "mner" else record.post
            assert line["split"] == split and line["setting"] in SETTINGS
            assert line["n_images"] == len(post.images) == len(line["image_cues"]) == len(line["image_colours"])
            if task == "mner":
                if line["entity_span"] is not None:
                    start, _ = line["entity_span"]
                    assert post.tags[start] == f"B-{line['label']}"
            else:
                assert record.label == line["label"]
            assert read_settings(out / META_FILE)[record.id] == line["setting"]
    assert seen == set(meta)


def test_read_settings_names_file_line_and_field(tmp_path):
    path = tmp_path / "groups.jsonl"
    path.write_text('{"id": 1, "setting": "order"}\n{"id": "2", "ambiguous": true}\n{"id": "3", "ambiguous": false}\n')
    assert read_settings(path) == {"1": "order", "2": "cue", "3": "text"}
    path.write_text('{"id": 1, "setting": "order"}\n{"setting": "cue"}\n')
    with pytest.raises(DataError, match=r"groups\.jsonl:2: id: missing"):
        read_settings(path)
    path.write_text('{"id": 1, "setting": "order"}\n{"id": 1, "setting": "cue"}\n')
    with pytest.raises(DataError, match="twice"):
        read_settings(path)


def test_cli_preset_and_share_options(tmp_path, capsys):
    out = tmp_path / "mech"
    main(
        [
            "data",
            "synth",
            "--task",
            "mre",
            "--out",
            str(out),
            "--posts",
            "20",
            "--preset",
            "mechanisms",
            "--order",
            "0.4",
        ]
    )
    printed = capsys.readouterr().out
    assert "posts by deciding setting" in printed and "order" in printed
    assert {m["setting"] for m in _meta(out).values()} <= set(SETTINGS)
    with pytest.raises(SystemExit) as done:
        main(
            [
                "data",
                "synth",
                "--task",
                "mner",
                "--out",
                str(tmp_path / "x"),
                "--small-cues",
                "0.5",
                "--distractors",
                "0.3",
            ]
        )
    assert done.value.code == 2
    assert "add up to 1.2" in capsys.readouterr().err
