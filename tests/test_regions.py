"""Region providers (precomputed, detector, grid) and `mmie regions build` writing the MRE-MI layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image, ImageDraw

from mmie.data import read_crop_dict, read_dataset, write_dataset
from mmie.data.schema import Post, RelationInstance, Span
from mmie.encoders.vision import load_vision_encoder
from mmie.errors import ConfigError, DataError
from mmie.regions import ImageSource, PrecomputedRegions, build_regions, image_jobs, record_queries
from mmie.regions.base import Region, box_iou
from mmie.regions.grid import GridSaliencyRegions, cell_saliency, grow_boxes
from test_glra import read_records, synthetic_mre, tiny_vit  # noqa: F401  (fixtures)
from test_score_cli import run  # runs `mmie ...` in-process: (exit code, stdout, stderr)


def assert_mre_mi_layout(out: Path, records: list, k: int) -> dict[str, list[str]]:
    """images_vg.pth (plain str lists, weights_only) names <stem>_<j>.png crops that open as images."""
    raw = torch.load(out / "images_vg.pth", weights_only=True)
    assert isinstance(raw, dict) and all(
        isinstance(v, list) and all(isinstance(n, str) for n in v) for v in raw.values()
    )
    crops = read_crop_dict(out / "images_vg.pth")
    refs = {ref for record in records for ref in record.post.images}
    assert set(crops) == refs
    for ref, names in crops.items():
        assert 0 < len(names) <= k
        stem = ref.rsplit(".", 1)[0]
        assert names == [f"{stem}_{j}.png" for j in range(len(names))]
        for name in names:
            with Image.open(out / "images_vg" / name) as crop:
                crop.verify()  # a complete, valid PNG
            with Image.open(out / "images_vg" / name) as crop:
                assert crop.format == "PNG" and crop.width > 0 and crop.height > 0
    return crops


# ------------------------------------------------------------------------------ queries


def test_queries_are_the_entity_names_then_content_words():
    post = Post(id="1", tokens=["RT", "Jason", "Isaacs", "and", "Emma", "Hewitt", "married", "in", "Paris", "!"])
    instance = RelationInstance(post, Span(1, 3, "Jason Isaacs"), Span(4, 6), "/per/per/couple")
    assert record_queries(instance) == ["Jason Isaacs", "Emma Hewitt"]
    assert record_queries(instance, words=True) == [
        "Jason Isaacs",
        "Emma Hewitt",
        "Jason",
        "Isaacs",
        "Emma",
        "Hewitt",
        "married",
        "Paris",
    ]
    tagged = Post(
        id="2", tokens=["alice", "in", "new", "york"], tags=["B-PER", "O", "B-LOC", "I-LOC"], images=["a.jpg"]
    )
    assert record_queries(tagged) == ["alice", "new york"]
    other = RelationInstance(
        Post(id="3", tokens=["bob", "and", "alice"], images=["a.jpg", "b.jpg"]), Span(0, 1), Span(2, 3)
    )
    jobs = image_jobs([tagged, other])
    assert [(job.ref, job.record_id, job.queries) for job in jobs] == [
        ("a.jpg", "2", ["alice", "new york", "bob"]),
        ("b.jpg", "3", ["bob", "alice"]),
    ]


# --------------------------------------------------------------------------- precomputed


def test_precomputed_regions_serve_the_dataset_crops(synthetic_mre):
    provider = PrecomputedRegions(synthetic_mre / "images_vg.pth")
    crops = read_crop_dict(synthetic_mre / "images_vg.pth")
    ref, names = next(iter(crops.items()))
    source = ImageSource(ref, synthetic_mre / "images" / ref)
    regions = provider.find(source, ["ignored"], k=5)
    assert [region.path for region in regions] == [synthetic_mre / "images_vg" / name for name in names]
    assert all(region.box is None for region in regions)
    assert len(provider.find(source, [], k=1)) == 1
    assert provider.find(ImageSource("not-there.jpg"), [], k=2) == []
    picture = regions[0].image(source)
    assert picture.size == Image.open(synthetic_mre / "images_vg" / names[0]).size


def test_precomputed_by_record_id_and_bad_dictionaries(tmp_path):
    (tmp_path / "crops").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "crops" / "0_pred_crop_1.png")
    torch.save({0: ["0_pred_crop_1.png"], 1: ["../escape.png"]}, tmp_path / "mnre_vg.pth")  # MNRE: keyed by line index
    provider = PrecomputedRegions(tmp_path / "mnre_vg.pth", tmp_path / "crops", key="record")
    regions = provider.find(ImageSource("twitter_1.jpg", record_id="0"), [], k=3)
    assert [region.path.name for region in regions] == ["0_pred_crop_1.png"]
    with pytest.raises(DataError, match="leaves the image folder"):
        provider.find(ImageSource("twitter_2.jpg", record_id="1"), [], k=3)
    with pytest.raises(ConfigError, match="no crop dictionary"):
        PrecomputedRegions(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="junk.pth"):
        PrecomputedRegions(tmp_path / "junk.pth", tmp_path / "crops")


# ------------------------------------------------------------------------------------ grid


def test_saliency_boxes_grow_over_salient_neighbours_and_never_overlap():
    saliency = torch.zeros(7, 7)
    saliency[1:3, 1:4] = 5.0  # a 2 x 3 object
    saliency[5, 5] = 3.0
    saliency[0, 6] = 1.0
    assert grow_boxes(saliency, 3, merge=0.75) == [((1, 1, 3, 4), 5.0), ((5, 5, 6, 6), 3.0), ((0, 6, 1, 7), 1.0)]
    flat = grow_boxes(torch.ones(4, 4), 3, merge=0.75)  # no structure: boxes capped at half the grid
    assert [box for box, _ in flat] == [(0, 0, 2, 4), (2, 0, 4, 4)]
    features = torch.zeros(4, 3)
    features[2] = 1.0
    assert cell_saliency(features, (2, 2)).argmax() == 2


def test_grid_provider_finds_the_object_on_a_plain_background_with_efficientnet():
    """EfficientNet-Lite0's 7 x 7 grid (offline weights): the cells that differ from the mean are the object's."""
    picture = Image.new("RGB", (224, 224), (200, 200, 200))
    ImageDraw.Draw(picture).ellipse((140, 20, 210, 90), fill=(200, 30, 30), outline=(0, 0, 0), width=4)
    provider = GridSaliencyRegions(load_vision_encoder("efficientnet-lite0"))
    regions = provider.find(ImageSource("x.jpg", image=picture), ["ignored entity"], k=2)
    assert len(regions) == 2 and regions[0].score > regions[1].score and regions[0].query is None
    best = regions[0].box
    assert box_iou(best, (140, 20, 210, 90)) > 0.2, best  # it is on the disc
    assert box_iou(regions[0].box, regions[1].box) == 0.0


def test_grid_provider_maps_cells_to_pixels_of_any_image_size(tiny_vit):
    provider = GridSaliencyRegions(load_vision_encoder(tiny_vit))
    picture = Image.new("RGB", (100, 60), "white")
    ImageDraw.Draw(picture).rectangle((10, 5, 40, 30), fill="blue")
    regions = provider.find(ImageSource("x.png", image=picture), [], k=3)
    assert 1 <= len(regions) <= 3
    for region in regions:
        x0, y0, x1, y1 = region.box
        assert 0 <= x0 < x1 <= 100 and 0 <= y0 < y1 <= 60
        assert region.image(ImageSource("x.png", image=picture)).size == (x1 - x0, y1 - y0)
    assert all(box_iou(a.box, b.box) == 0 for i, a in enumerate(regions) for b in regions[i + 1 :])


# -------------------------------------------------------------------------------- detector


@pytest.fixture(scope="module")
def tiny_owlvit(tmp_path_factory) -> str:
    """A randomly initialised OWL-ViT with a byte-level CLIP tokenizer, saved and reloaded like a checkpoint."""
    import transformers
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer, OwlViTConfig, OwlViTForObjectDetection, OwlViTProcessor

    path = tmp_path_factory.mktemp("tiny-owlvit")
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocabulary = alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    tokenizer = CLIPTokenizer(vocab={t: i for i, t in enumerate(vocabulary)}, merges=[], model_max_length=16)
    torch.manual_seed(0)
    layers = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = OwlViTConfig(
        text_config={**layers, "vocab_size": len(vocabulary), "max_position_embeddings": 16},
        vision_config={**layers, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    OwlViTForObjectDetection(config).save_pretrained(path)
    image_processor = getattr(transformers, "OwlViTImageProcessorPil", transformers.OwlViTImageProcessor)
    processor = OwlViTProcessor(image_processor=image_processor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    processor.save_pretrained(path)
    return str(path)


def test_detector_provider_gives_top_k_boxes_inside_the_image_for_the_queries(tiny_owlvit):
    from mmie.regions.detector import DetectorRegions

    provider = DetectorRegions(tiny_owlvit, device="cpu", iou=0.9)
    picture = Image.new("RGB", (90, 60), (10, 120, 200))
    source = ImageSource("p.jpg", image=picture)
    regions = provider.find(source, ["Emma Hewitt", "Jason Isaacs", "Emma Hewitt"], k=3)
    assert 1 <= len(regions) <= 3  # a random model: the interface, not the accuracy
    scores = [region.score for region in regions]
    assert scores == sorted(scores, reverse=True)
    for region in regions:
        assert region.query in ("Emma Hewitt", "Jason Isaacs")
        x0, y0, x1, y1 = region.box
        assert 0 <= x0 < x1 <= 90 and 0 <= y0 < y1 <= 60
        assert region.image(source).size == (x1 - x0, y1 - y0)
    assert all(box_iou(a.box, b.box) <= 0.9 for i, a in enumerate(regions) for b in regions[i + 1 :])
    assert provider.find(source, [], k=3) == [] and provider.find(source, ["x"], k=0) == []
    with pytest.raises(ConfigError, match="zero-shot detection model"):
        DetectorRegions(str(Path(tiny_owlvit) / "absent"))


def test_regions_build_with_the_detector_writes_the_layout(tiny_owlvit, synthetic_mre, tmp_path, capsys):
    records = read_records(synthetic_mre)[:3]
    data = tmp_path / "some.txt"
    write_dataset(records, data, "mremi")
    code, out, err = run(
        [
            "regions",
            "build",
            "--data",
            str(data),
            "--images",
            str(synthetic_mre / "images"),
            "--provider",
            "detector",
            "--detector",
            tiny_owlvit,
            "--device",
            "cpu",
            "--top-k",
            "2",
            "--out",
            str(tmp_path / "vg"),
        ],
        capsys,
    )
    assert code == 0, err
    assert_mre_mi_layout(tmp_path / "vg", records, k=2)
    meta = json.loads((tmp_path / "vg" / "regions.json").read_text())
    assert meta["provider"] == "detector" and meta["top_k"] == 2


def test_regions_build_with_fixed_queries_writes_one_crop_per_query_in_order(tiny_owlvit, synthetic_mre, tmp_path):
    """UMGF's per-type crops made once: crop j of every image is the detector's best box for query j,
    the box UMGF's featurizer asks for on the fly; the queries are recorded so a resumed build cannot mix."""
    from mmie.regions.detector import DetectorRegions

    records = read_records(synthetic_mre)[:2]
    images = synthetic_mre / "images"
    queries = ["person", "location", "organization"]
    detector = DetectorRegions(tiny_owlvit, device="cpu")
    summary = build_regions(records, images, detector, tmp_path / "vg", k=3, queries=queries, progress=False)
    assert summary.built == len({ref for record in records for ref in record.post.images})
    crops = assert_mre_mi_layout(tmp_path / "vg", records, k=3)
    assert json.loads((tmp_path / "vg" / "regions.json").read_text())["queries"] == queries
    ref = records[0].post.images[0]
    source = ImageSource(ref, images / ref, records[0].post.id)
    expected = detector.find_per_query(source, queries)
    assert [region.query for region in expected] == queries  # one box per query, in order
    assert len(crops[ref]) == len(expected)
    for name, region in zip(crops[ref], expected):
        with Image.open(tmp_path / "vg" / "images_vg" / name) as crop:
            assert crop.size == region.image(source).size  # crop j is query j's box
    with pytest.raises(ConfigError, match="3 fixed queries"):
        build_regions(records, images, detector, tmp_path / "other", k=2, queries=queries, progress=False)
    with pytest.raises(ConfigError, match="another|mix|settings"):  # other queries into the same folder
        build_regions(records, images, detector, tmp_path / "vg", k=1, queries=["dog"], progress=False)


def test_regions_build_takes_a_umgf_configs_type_queries(tiny_owlvit, synthetic_mre, tmp_path, capsys):
    records = read_records(synthetic_mre)[:2]
    data = tmp_path / "posts.txt"
    write_dataset(records, data, "mremi")
    config = tmp_path / "umgf.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "re",
                "model": {"name": "umgf_re", "encoder": "minilm", "vision_encoder": "efficientnet-lite0"},
                "data": {"format": "mremi", "train": str(data), "images": str(synthetic_mre / "images")},
            }
        )
    )
    arguments = ["regions", "build", str(config), "--provider", "detector", "--detector", tiny_owlvit]
    code, out, err = run([*arguments, "--device", "cpu", "--out", str(tmp_path / "vg")], capsys)
    assert code == 0, err
    assert "one per query (person, location, organization, miscellaneous)" in out
    meta = json.loads((tmp_path / "vg" / "regions.json").read_text())
    assert meta["queries"] == ["person", "location", "organization", "miscellaneous"] and meta["top_k"] == 4
    code, _, err = run([*arguments, "--queries", "dog,car", "--top-k", "3", "--out", str(tmp_path / "x")], capsys)
    assert code != 0 and "--top-k: 3, but 2 fixed queries" in err


# ------------------------------------------------------------------------ build and resume


class CountingGrid(GridSaliencyRegions):
    """The grid provider, counting its calls and stopping (like Ctrl-C) after ``stop_after`` images."""

    def __init__(self, *args, stop_after: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.stop_after = stop_after

    def find(self, source: ImageSource, queries, k: int) -> list[Region]:
        if self.stop_after is not None and self.calls == self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        return super().find(source, queries, k)


def test_build_writes_the_mre_mi_layout_and_resumes(tiny_vit, synthetic_mre, tmp_path):
    records = read_records(synthetic_mre)
    images = synthetic_mre / "images"
    encoder = load_vision_encoder(tiny_vit)
    out = tmp_path / "vg"
    n_images = len({ref for r in records for ref in r.post.images})

    interrupted = CountingGrid(encoder, stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        build_regions(records, images, interrupted, out, k=2, progress=False, save_every=100)
    saved = read_crop_dict(out / "images_vg.pth")  # written on the way out, naming only finished images
    assert len(saved) == 3 and all((out / "images_vg" / name).is_file() for names in saved.values() for name in names)
    first_crop = out / "images_vg" / saved[next(iter(saved))][0]
    stamp = first_crop.stat().st_mtime_ns

    resumed = CountingGrid(encoder)
    summary = build_regions(records, images, resumed, out, k=2, progress=False, save_every=2)
    assert (summary.skipped, summary.built, resumed.calls) == (3, n_images - 3, n_images - 3)
    assert first_crop.stat().st_mtime_ns == stamp  # done images are not redone
    crops = assert_mre_mi_layout(out, records, k=2)
    assert sum(len(v) for v in crops.values()) == summary.crops + sum(len(v) for v in saved.values())

    again = CountingGrid(encoder)
    assert build_regions(records, images, again, out, k=2, progress=False).built == 0 and again.calls == 0
    with pytest.raises(ConfigError, match="other settings"):
        build_regions(records, images, CountingGrid(encoder), out, k=3, progress=False)
    with pytest.raises(ConfigError, match="did not build"):  # never writes into a release's crops
        build_regions(records, images, CountingGrid(encoder), synthetic_mre, k=2, progress=False)


def test_broken_images_error_or_get_no_regions(tiny_vit, tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (40, 40), "green").save(tmp_path / "images" / "ok.jpg")
    (tmp_path / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    post = Post(id="1", tokens=["alice", "and", "bob"], images=["ok.jpg", "broken.jpg"])
    records = [RelationInstance(post, Span(0, 1), Span(2, 3), "None")]
    provider = GridSaliencyRegions(load_vision_encoder(tiny_vit))
    with pytest.raises(DataError, match="broken.jpg"):
        build_regions(records, tmp_path / "images", provider, tmp_path / "strict", k=2, progress=False)
    summary = build_regions(
        records, tmp_path / "images", provider, tmp_path / "lenient", k=2, policy="blank", progress=False
    )
    assert summary.unusable == ["broken.jpg"]
    crops = read_crop_dict(tmp_path / "lenient" / "images_vg.pth")
    assert crops["broken.jpg"] == [] and len(crops["ok.jpg"]) == 2


# ------------------------------------------------------------------------------------- CLI


def test_cli_builds_from_a_config_into_the_folder_the_model_reads(tiny_bert, tiny_vit, synthetic_mre, tmp_path, capsys):
    out = tmp_path / "regions"
    config = {
        "task": "re",
        "model": {
            "name": "glra",
            "encoder": tiny_bert,
            "vision_encoder": tiny_vit,
            "region_dict": str(out / "images_vg.pth"),
            "feature_cache": str(tmp_path / "cache"),
            "regions_per_image": 1,
        },
        "data": {
            "train": str(synthetic_mre / "train.txt"),
            "dev": str(synthetic_mre / "val.txt"),
            "images": str(synthetic_mre / "images"),
        },
    }
    path = tmp_path / "glra.yaml"
    path.write_text(yaml.safe_dump(config))
    code, stdout, err = run(["regions", "build", str(path), "--provider", "grid"], capsys)
    assert code == 0, err
    assert "grid regions, top 1 per image" in stdout and "processed" in stdout
    used = [r for split in ("train", "val") for r in read_dataset(synthetic_mre / f"{split}.txt").records]  # no test
    assert_mre_mi_layout(out, used, k=1)
    code, stdout, err = run(["regions", "build", str(path), "--provider", "grid"], capsys)
    assert code == 0 and "0 processed" in stdout and "already done" in stdout

    # the model reads these crops through the precomputed provider
    from mmie.encoders.text import load_tokenizer
    from mmie.models import create_processor
    from mmie.training.config import load_config

    settings = load_config(path).model
    tokenizer = load_tokenizer(tiny_bert)
    processor = create_processor(settings, tokenizer, ["None"], images=synthetic_mre / "images")
    features = processor.featurize(used[:2], with_labels=False)
    assert features[0]["region_mask"].shape == (4, 1)
    assert features[0]["region_mask"][: used[0].post.n_images].all()


def test_cli_errors_are_one_line(tmp_path, capsys, synthetic_mre):
    code, _, err = run(
        ["regions", "build", "--data", str(synthetic_mre / "train.txt"), "--images", str(synthetic_mre / "images")],
        capsys,
    )
    assert code == 2 and "--out" in err and "Traceback" not in err
    code, _, err = run(
        [
            "regions",
            "build",
            "--data",
            str(synthetic_mre / "train.txt"),
            "--images",
            str(synthetic_mre / "images"),
            "--out",
            str(tmp_path / "o"),
            "--provider",
            "magic",
        ],
        capsys,
    )
    assert code == 2 and "unknown region provider 'magic'" in err
    code, _, err = run(["regions", "build"], capsys)
    assert code == 2 and "CONFIG or --data" in err
