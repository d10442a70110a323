"""FocalMRE: focal frames, crop location, the featurizer on real synthetic files through the feature cache,
masking, and tiny-model training of the model and of every Table 3 / Table 5 variant (tiny BERT + tiny ViT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmie.data import read_crop_dict, read_dataset
from mmie.data.synth import MRE_LABELS, generate_dataset
from mmie.encoders.cache import FeatureCache
from mmie.encoders.vision import load_vision_encoder, pool_regions
from mmie.errors import ConfigError
from mmie.features.collate import Collator
from mmie.models.registry import create_model, create_processor, get_model_entry
from mmie.regions.base import ImageSource, Region
from mmie.regions.focal import draw_focal_frame, focal_images, locate_crop
from test_glra import make_tiny_vit

LABELS = list(MRE_LABELS)
VARIANTS = {
    "full": {},
    "wo_focal_attention": {"focal_attention": False},
    "wo_gating": {"gating": False},
    "wo_either": {"focal_attention": False, "gating": False},
    "original": {"image_input": "original"},
    "cropped": {"image_input": "cropped"},
}


# ------------------------------------------------------------------------------ the frame


def test_the_frame_changes_the_pixels_on_the_box_border_and_nothing_else():
    image = Image.new("RGB", (100, 80), (90, 120, 150))
    box, width = (10, 20, 50, 60), 3
    framed = draw_focal_frame(image, box, width=width)
    assert np.array_equal(np.asarray(image), np.full((80, 100, 3), (90, 120, 150)))  # the original is untouched
    changed = np.any(np.asarray(framed) != np.asarray(image), axis=2)
    expected = np.zeros((80, 100), dtype=bool)
    x0, y0, x1, y1 = box
    expected[y0:y1, x0:x1] = True
    expected[y0 + width : y1 - width, x0 + width : x1 - width] = False  # the inside of the frame stays
    assert np.array_equal(changed, expected)
    assert tuple(np.asarray(framed)[y0, x0]) == (255, 0, 0)
    # a box on the picture's edge keeps its whole frame inside the picture
    edge = np.asarray(draw_focal_frame(image, (0, 0, 100, 80), width=2))
    assert (
        (edge[:2] == (255, 0, 0)).all()
        and (edge[:, -2:] == (255, 0, 0)).all()
        and (edge[2:-2, 2:-2] != (255, 0, 0)).any()
    )


def test_a_crop_is_located_in_its_picture_even_after_jpeg(tmp_path):
    rng = np.random.default_rng(0)
    picture = Image.fromarray((rng.random((50, 75, 3)) * 255).astype(np.uint8)).resize((300, 200))
    box = (37, 52, 137, 122)
    picture.crop(box).save(tmp_path / "crop.jpg", quality=85)
    located = locate_crop(picture, Image.open(tmp_path / "crop.jpg"))
    assert located is not None and all(abs(a - b) <= 2 for a, b in zip(located, box)), located
    assert locate_crop(picture, Image.new("RGB", (400, 10))) is None  # wider than the picture
    source = ImageSource("p.jpg", image=picture)
    copies = focal_images(source, [Region(box=box), Region(box=None, path=tmp_path / "crop.jpg")], width=2)
    assert len(copies) == 2 and all(copy.size == picture.size for copy in copies)


# ------------------------------------------------------------------ eq. 4, the gate


def test_the_gate_is_equation_4_written_out_by_hand():
    """lambda = sigmoid(U h_text + V h^_image); h_out = (1 - lambda) h_text + lambda h^_image (paper, sec. 3.4)."""
    from mmie.models.layers.gate import TextImageGate

    torch.manual_seed(0)
    gate = TextImageGate(6)
    text, image = torch.randn(4, 3, 6), torch.randn(4, 3, 6)
    out, lam = gate(text, image)
    u, v, bias = gate.text.weight, gate.image.weight, gate.image.bias
    expected_lambda = torch.sigmoid(text @ u.T + image @ v.T + bias)
    torch.testing.assert_close(lam, expected_lambda)
    torch.testing.assert_close(out, (1 - expected_lambda) * text + expected_lambda * image)
    assert lam.std() > 0.05  # a gate that varies with its inputs, not a constant 1/2
    # the two ends the paper names: lambda near 0 keeps the text, near 1 takes the image
    with torch.no_grad():
        gate.image.bias.fill_(-40.0)
    torch.testing.assert_close(gate(text, image)[0], text)
    with torch.no_grad():
        gate.image.bias.fill_(40.0)
    torch.testing.assert_close(gate(text, image)[0], image)


# ------------------------------------------------------------------------- real files


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "mre"
    generate_dataset("mre", out, posts=16, seed=4, image_size=64)
    return out


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> str:
    return make_tiny_vit(tmp_path_factory.mktemp("vit"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def records_of(sample: Path) -> list:
    return [r for split in ("train", "val") for r in read_dataset(sample / f"{split}.txt").records]


def build(tiny_bert: str, tiny_vit: str, cache_dir: Path, **settings):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    entry = get_model_entry("focalmre")
    config = entry.config_class(
        name="focalmre",
        encoder=tiny_bert,
        vision_encoder=tiny_vit,
        max_length=48,
        feature_cache=str(cache_dir),
        dropout=0.0,
        attention_dropout=0.0,
        **settings,
    )
    config = create_processor(config, tokenizer, LABELS).config
    torch.manual_seed(0)
    return create_model(config, LABELS, tokenizer=tokenizer), tokenizer


def featurize(model, tokenizer, sample: Path, records: list) -> dict:
    featurizer = create_processor(model.model_config, tokenizer, LABELS, images=sample / "images").featurizer
    return Collator(tokenizer.pad_token_id)(featurizer.featurize(records)), featurizer


def test_featurizer_frames_each_located_crop_and_reads_the_copies_through_the_cache(
    tiny_bert, tiny_vit, cache_dir, sample
):
    records = records_of(sample)
    model, tokenizer = build(tiny_bert, tiny_vit, cache_dir)
    batch, featurizer = featurize(model, tokenizer, sample, records)
    n_vg, n_od = 4, 3
    most = max(r.post.n_images for r in records)
    assert batch["focal_features"].shape == (len(records), most, n_vg + n_od, 16, 24)  # 4 x 4 grid of the tiny ViT
    assert batch["focal_features"].dtype == torch.float16
    crops = read_crop_dict(sample / "images_vg.pth")
    for row, record in enumerate(records):
        for slot, ref in enumerate(record.post.images):
            n_crops = len(crops.get(ref, []))
            assert batch["focal_mask"][row, slot, :n_vg].sum() == min(n_crops, n_vg)
            od = batch["focal_mask"][row, slot, n_vg:]
            assert 1 <= od.sum() <= n_od and od[: int(od.sum())].all()  # grid boxes, best first, then padding
        assert not batch["focal_mask"][row, record.post.n_images :].any()
    # the first VG copy of the first image is the image framed around its first crop, hashed by content
    ref = records[0].post.images[0]
    picture = Image.open(sample / "images" / ref).convert("RGB")
    box = locate_crop(picture, Image.open(sample / "images_vg" / crops[ref][0]))
    cache = FeatureCache(cache_dir, load_vision_encoder(tiny_vit, frozen=True))
    _, patches = cache.get_many([draw_focal_frame(picture, box)])
    assert cache.stats.misses == 0  # the featurizer already encoded this very copy
    expected = pool_regions(patches, (4, 4), 4).half()[0]
    assert torch.equal(batch["focal_features"][0, 0, 0], expected)
    before = featurizer.cache.stats.misses
    featurizer.featurize(records[:3])
    assert featurizer.cache.stats.misses == before  # warm: nothing is encoded twice


def test_padded_copies_and_images_change_nothing(tiny_bert, tiny_vit, cache_dir, sample):
    records = records_of(sample)[:6]
    model, tokenizer = build(tiny_bert, tiny_vit, cache_dir)
    model.eval()
    batch, _ = featurize(model, tokenizer, sample, records)
    with torch.no_grad():
        clean = model(**batch)
        noisy = dict(batch)
        absent = ~(
            batch["focal_mask"][:, : batch["focal_features"].shape[1]]
            & batch["image_mask"][:, : batch["focal_features"].shape[1], None]
        )
        noisy["focal_features"] = batch["focal_features"].masked_fill(absent[..., None, None], 7.0)
        assert torch.allclose(model(**noisy).logits, clean.logits, atol=1e-5)
        alone = model(**{k: v[:1] for k, v in batch.items()})  # a batch of one: less slot padding
        assert torch.allclose(alone.logits, clean.logits[:1], atol=1e-5)
    weights = clean.focal_weights
    assert weights.shape == (*batch["image_mask"].shape, 7)
    assert torch.allclose(weights[..., :4].sum(dim=(1, 2)), torch.ones(len(records)))  # eq. 5: an average per set
    assert (clean.relevance[~batch["image_mask"]] == 0).all()


def hand_written_z(model, batch: dict) -> torch.Tensor:
    """Eq. 3-6 of the paper written out by hand with the model's weights: z ``[B, 4d]``."""
    hidden = model.encode_text(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))  # eq. 1
    rows = torch.arange(len(hidden))
    markers = torch.stack([hidden[rows, batch["head_start"]], hidden[rows, batch["tail_start"]]], dim=1)  # [B, 2, d]
    patches = batch["focal_features"].float()  # [B, m, S, P, D]
    slots = patches.shape[1]
    present = batch["focal_mask"][:, :slots].bool() & batch["image_mask"][:, :slots, None].bool()
    attention, gate = model.attention, model.gate
    d = markers.shape[-1]
    out = []
    for b in range(len(hidden)):
        h_text = markers[b]  # [2, d]
        parts = []
        for first, scores in ((0, model.vg_weights), (model.n_vg, model.od_weights)):
            n = len(scores)
            h_outs, logits = [], []
            for m in range(slots):
                for j in range(n):
                    if not present[b, m, first + j]:
                        continue
                    image = patches[b, m, first + j]  # [P, D]
                    q = h_text @ attention.query.weight.T + attention.query.bias
                    k = image @ attention.key.weight.T + attention.key.bias
                    v = image @ attention.value.weight.T + attention.value.bias
                    h_image = torch.softmax(q @ k.T / d**0.5, dim=-1) @ v  # eq. 3
                    lam = torch.sigmoid(h_text @ gate.text.weight.T + h_image @ gate.image.weight.T + gate.image.bias)
                    h_outs.append((1 - lam) * h_text + lam * h_image)  # eq. 4
                    logits.append(scores[j])
            if h_outs:  # eq. 5: a weighted average with softmax weights over the copies that exist
                weights = torch.softmax(torch.stack(logits), dim=0)
                parts.append(torch.einsum("k,kqd->qd", weights, torch.stack(h_outs)))
            else:
                parts.append(h_text)
        out.append(torch.cat(parts).flatten())  # eq. 6: [VG head; VG tail; OD head; OD tail]
    return torch.stack(out)


def test_the_fused_vectors_of_the_model_are_equations_3_to_6_by_hand(tiny_bert, tiny_vit, cache_dir, sample):
    """What the classifier reads is eq. 3-6 by hand: fails with a fixed lambda = 1/2, with lambda and
    1 - lambda swapped, or with the image context zeroed (a FocalMRE blind to its images)."""
    records = records_of(sample)[:6]
    model, tokenizer = build(tiny_bert, tiny_vit, cache_dir)
    batch, _ = featurize(model, tokenizer, sample, records)
    with torch.no_grad():  # unequal eq. 5 weights, and a gate far from 1/2
        model.vg_weights.copy_(torch.tensor([0.5, -1.0, 0.2, 1.5]))
        model.od_weights.copy_(torch.tensor([1.0, -0.5, 0.0]))
        model.gate.image.bias.normal_(0.0, 2.0)
    model.eval()
    seen = []
    hook = model.classifier.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            out = model(**batch)
            expected = hand_written_z(model, batch)
    finally:
        hook.remove()
    assert batch["focal_mask"].sum() > len(records)  # several copies per post: eq. 5 is exercised
    torch.testing.assert_close(seen[0], expected, rtol=1e-4, atol=1e-5)
    # the image context moves z: the same text with other patches gives other vectors
    with torch.no_grad():
        other = model(**{**batch, "focal_features": batch["focal_features"].flip(0)})
    assert (other.logits - out.logits).abs().max() > 1e-3


def train_variant(variant: str, tiny_bert, tiny_vit, cache_dir, sample) -> tuple[list[float], torch.Tensor, set]:
    """8 full-batch AdamW steps on 10 records: the losses, the logits after training, the parameter names."""
    records = records_of(sample)[:10]
    model, tokenizer = build(tiny_bert, tiny_vit, cache_dir, **VARIANTS[variant])
    batch, _ = featurize(model, tokenizer, sample, records)
    if variant == "original":
        assert batch["focal_features"].shape[2] == 2  # the image itself, once per set
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits
    return losses, logits, {name for name, _ in model.named_parameters()}


@pytest.fixture(scope="module")
def full_logits(tiny_bert, tiny_vit, cache_dir, sample) -> torch.Tensor:
    return train_variant("full", tiny_bert, tiny_vit, cache_dir, sample)[1]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_focalmre_and_each_ablation_train(variant, tiny_bert, tiny_vit, cache_dir, sample, full_logits):
    """Each Table 3 / Table 5 variant learns, and differs from FocalMRE in what it computes: the same seed,
    records and steps give other outputs (a switch that changed nothing would give the same)."""
    losses, logits, names = train_variant(variant, tiny_bert, tiny_vit, cache_dir, sample)
    assert losses[-1] < 0.7 * losses[0], losses
    assert any(name.startswith("attention.") for name in names) is VARIANTS[variant].get("focal_attention", True)
    assert any(name.startswith("gate.") for name in names) is VARIANTS[variant].get("gating", True)
    difference = (logits - full_logits).abs().max().item()
    if variant == "full":
        assert difference == 0.0  # deterministic: the comparison below means something
    else:
        assert difference > 1e-3, difference


def test_config_errors(tiny_bert, tiny_vit, cache_dir):
    with pytest.raises(ConfigError, match="freeze_vision"):
        build(tiny_bert, tiny_vit, cache_dir, freeze_vision=False)
    with pytest.raises(ConfigError, match="VG region"):
        build(tiny_bert, tiny_vit, cache_dir, regions_per_image=0)
    model, tokenizer = build(tiny_bert, tiny_vit, cache_dir, od_regions="precomputed")
    featurizer = create_processor(model.model_config, tokenizer, LABELS, images=Path(".")).featurizer
    with pytest.raises(ConfigError, match="od_region_dict"):
        featurizer.od_provider  # noqa: B018 - the property builds the provider


def test_uploaded_pictures_get_focal_copies_from_grid_regions(tiny_bert, tiny_vit, cache_dir, sample):
    """Uploads have no crop dictionary and no folder: the Extractor's processor takes the pictures
    themselves and the offline grid regions, as GLRA's does."""
    from mmie.inference.loading import LoadedModel
    from mmie.pipeline import Extractor

    model, tokenizer = build(tiny_bert, tiny_vit, cache_dir)
    model.eval()
    loaded = LoadedModel(model, tokenizer, Path("focalmre"), images=sample / "images")
    extractor = Extractor(re=loaded)
    assert extractor.describe()["re"]["regions"] == "grid"
    picture = next((sample / "images").iterdir()).read_bytes()
    entities = [{"start": 0, "end": 5, "type": "PER"}, {"start": 15, "end": 20, "type": "LOC"}]
    result = extractor("alice lives in paris", images=[picture], entities=entities, id="u")
    pairs = extractor.pipe([{"text": "alice lives in paris", "entities": entities, "id": "u"}])
    assert len(result["images"]) == 1 and result["images"][0]["relevance"] is not None
    assert result["images"][0]["relevance"] > 0.0  # the gate let some of the picture in
    assert next(iter(pairs))["images"] == []  # the same post without a picture reads text only
