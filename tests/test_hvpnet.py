"""HVPNeT and HVPNeT-MI (NER and RE): the multi-scale features, the per-layer gate, the prefix reaching
the attention, one block per real image, on a tiny real BERT, a tiny real ViT and real image files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers
from PIL import Image
from transformers import AutoTokenizer, ViTConfig, ViTModel

from conftest import make_ner_posts, make_re_instances
from mmie.encoders.cache import FeatureCache
from mmie.encoders.multiscale import MultiScaleEncoder, select_stages
from mmie.encoders.vision import load_vision_encoder
from mmie.features.collate import Collator
from mmie.models.layers.hierarchical_prefix import HierarchicalVisualPrefix
from mmie.models.layers.visual_prefix import encode_with_prefix
from mmie.models.registry import create_model, create_processor, get_model_entry

RE_LABELS = ["None", "/per/loc/place_of_residence", "/per/org/member_of"]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
WIDTH = 16  # the tiny ViT's hidden size
VIT_LAYERS = 4
K = 2  # crops per image in these tests
ViTProcessor = getattr(transformers, "ViTImageProcessorPil", transformers.ViTImageProcessor)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> str:
    """A 4-layer ViT on 32 x 32 pictures (a 4 x 4 patch grid): its 4 layers are HVPNeT's 4 scales."""
    path = tmp_path_factory.mktemp("tiny-vit-4")
    torch.manual_seed(0)
    config = ViTConfig(
        hidden_size=WIDTH,
        num_hidden_layers=VIT_LAYERS,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=32,
        patch_size=8,
    )
    ViTModel(config).save_pretrained(path)
    ViTProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return str(path)


def build(name: str, tiny_bert: str, tiny_vit: str, seed: int = 0, **settings):
    """The model and a processor of its own (markers added for RE), as the engine builds them."""
    entry = get_model_entry(name)
    labels = NER_LABELS if entry.task == "ner" else RE_LABELS
    config = entry.config_class(
        name=name, encoder=tiny_bert, vision_encoder=tiny_vit, max_length=32, regions_per_image=K, **settings
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    processor = create_processor(config, tokenizer, labels)
    torch.manual_seed(seed)
    return create_model(processor.config, labels, tokenizer=tokenizer), processor


def visual_inputs(image_counts: list[int], slots: int, tokens: int = 4, dim: int = 4 * WIDTH, seed: int = 1):
    """Random cached-style inputs: every real image has K crops; padded slots hold zeros."""
    generator = torch.Generator().manual_seed(seed)
    image_mask = torch.arange(slots)[None, :] < torch.tensor(image_counts)[:, None]
    return {
        "image_mask": image_mask,
        "crop_mask": image_mask.unsqueeze(-1).expand(-1, -1, K).clone(),
        "region_features": torch.randn(len(image_counts), slots, tokens, dim, generator=generator),
        "crop_features": torch.randn(len(image_counts), slots, K, tokens, dim, generator=generator),
    }


# ------------------------------------------------------------------ multi-scale features (sec. 3.1)


def test_multiscale_tokens_are_the_pooled_stage_maps_side_by_side(tiny_vit):
    encoder = load_vision_encoder(tiny_vit, multiscale=(4, 2))
    assert isinstance(encoder, MultiScaleEncoder)
    assert encoder.stage_dims == (WIDTH,) * 4 and encoder.hidden_size == 4 * WIDTH
    assert encoder.num_regions == 4 and encoder.grid_size == (2, 2)
    pixels = torch.randn(3, 3, 32, 32)
    out = encoder.encode_pixels(pixels)
    # by hand: the ViT's patch grid after layers 1..4, each averaged over 2 x 2 patches per cell
    states = encoder.base.model(pixel_values=pixels, output_hidden_states=True).hidden_states
    for stage, state in enumerate(states[1:]):
        grid = state[:, 1:].reshape(3, 4, 4, WIDTH)  # [N, rows, columns, C] (one [CLS] token first)
        cell = grid[:, 2:4, 0:2].mean(dim=(1, 2))  # the cell of row 1, column 0 -> token 2
        torch.testing.assert_close(out.region_features[:, 2, stage * WIDTH : (stage + 1) * WIDTH], cell)
    torch.testing.assert_close(out.global_features, out.region_features.mean(dim=1))


def test_stage_selection_takes_the_deepest_cnn_stages_and_spaced_transformer_layers():
    cnn = [torch.zeros(1, c, s, s) for c, s in ((16, 112), (24, 56), (40, 28), (112, 14), (1280, 7))]
    assert [m.shape[1] for m in select_stages(cnn, 4)] == [24, 40, 112, 1280]
    vit = [torch.full((1, 2, 4, 4), float(layer)) for layer in range(1, 13)]
    assert [int(m[0, 0, 0, 0]) for m in select_stages(vit, 4)] == [3, 6, 9, 12]


def test_efficientnet_stages_and_a_cache_key_of_their_own(tmp_path):
    plain = load_vision_encoder("efficientnet-lite0")
    multi = load_vision_encoder("efficientnet-lite0", multiscale=(4, 2))
    assert multi.stage_dims == (24, 40, 112, 1280)  # strides 4, 8, 16, 32 (the last: the head's map)
    pixels = plain.preprocess([Image.new("RGB", (50, 40), (200, 30, 90))])
    with torch.no_grad():
        final = plain.encode_pixels(pixels).region_features  # [1, 49, 1280]
        tokens = multi.encode_pixels(pixels).region_features  # [1, 4, 1456]
    # the deepest scale is the plain encoder's own 7 x 7 map, pooled to 2 x 2
    pooled = torch.nn.functional.adaptive_avg_pool2d(final.transpose(1, 2).reshape(1, 1280, 7, 7), 2)
    torch.testing.assert_close(tokens[0, :, -1280:], pooled.flatten(2).transpose(1, 2)[0])
    # the plain encoder's cache key is the one it always had; the multi-scale features get another
    assert FeatureCache(tmp_path, plain).key == "5435f3918f68ab21dad91a65"
    assert FeatureCache(tmp_path, multi).key != FeatureCache(tmp_path, plain).key


# ------------------------------------------------------------- the per-layer gate (sec. 3.3)


def text_config(layers: int = 3, hidden: int = 8, heads: int = 2) -> transformers.BertConfig:
    return transformers.BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads)


def test_each_layer_gate_sums_to_one_and_mixes_the_scales_as_equations_3_to_5_say():
    torch.manual_seed(0)
    layer = HierarchicalVisualPrefix([3, 5, 7, 9], tokens_per_block=4, text_config=text_config(), bottleneck=6)
    tokens, mask = torch.randn(2, 3, 4, 24), torch.ones(2, 3, dtype=torch.bool)
    out = layer(tokens, mask)
    assert out.gates.shape == (3, 2, 3, 4)  # [L, B, P, S]
    torch.testing.assert_close(out.gates.sum(-1), torch.ones(3, 2, 3))
    scales = layer.scale_features(tokens)  # G_s, eq. 2: [S, B, P, T, 2d]
    z = scales.mean(0).flatten(-2)  # eq. 3
    for number, (keys, values) in enumerate(out.prefix.key_values):
        gate = layer.gates[number]
        alpha = torch.softmax(torch.nn.functional.leaky_relu(z @ gate.weight.T + gate.bias), dim=-1)  # eq. 4
        torch.testing.assert_close(out.gates[number], alpha)
        mixed = (alpha.permute(2, 0, 1)[..., None, None] * scales).sum(0).reshape(2, 12, 16)  # eq. 5
        expected_keys = mixed[..., :8].reshape(2, 12, 2, 4).transpose(1, 2)  # split by heads
        torch.testing.assert_close(keys, expected_keys)
        torch.testing.assert_close(values, mixed[..., 8:].reshape(2, 12, 2, 4).transpose(1, 2))


def test_each_layer_has_its_own_mix_of_scales():
    layer = HierarchicalVisualPrefix([4, 4, 4, 4], tokens_per_block=1, text_config=text_config(), bottleneck=6)
    with torch.no_grad():  # layer l's gate picks scale l (the others: 30 logits lower)
        for number, gate in enumerate(layer.gates):
            gate.weight.zero_()
            gate.bias.copy_(torch.nn.functional.one_hot(torch.tensor(number), 4) * 30.0)
    tokens = torch.randn(1, 2, 1, 16)
    out = layer(tokens, torch.ones(1, 2, dtype=torch.bool))
    scales = layer.scale_features(tokens)
    for number, (keys, _) in enumerate(out.prefix.key_values):
        assert out.gates[number, 0, 0].argmax() == number
        torch.testing.assert_close(keys, scales[number, ..., :8].reshape(1, 2, 2, 4).transpose(1, 2))
    assert not torch.allclose(out.prefix.key_values[0][0], out.prefix.key_values[1][0])


# ------------------------------------------------------------ the prefix in the attention (eq. 6)


@pytest.mark.parametrize("name", ["hvpnet", "hvpnet_mi", "hvpnet_re", "hvpnet_mi_re"])
def test_the_whole_prefix_reaches_every_layers_attention(name, tiny_bert, tiny_vit):
    model, processor = build(name, tiny_bert, tiny_vit)
    model.eval()
    slots = processor.config.image_slots
    length = processor.config.prefix_length
    assert length == slots * (1 + K) * 4  # (1 + k) blocks per image slot, 2 x 2 tokens each
    records = make_ner_posts(2) if model.task == "ner" else make_re_instances(2)
    for record in records:
        getattr(record, "post", record).images = []
    batch = {**processor(records, with_labels=False), **visual_inputs([1, slots], slots)}
    gated = model.gated_prefix(
        batch["image_mask"], batch["crop_mask"], batch["region_features"], batch["crop_features"]
    )
    assert len(gated.prefix.key_values) == model.text_encoder.config.num_hidden_layers  # one block of K/V a layer
    assert gated.prefix.key_values[0][0].shape[2] == length
    model.text_encoder.set_attn_implementation("eager")  # attention weights are returned by eager attention
    with torch.no_grad():
        out = encode_with_prefix(
            model.text_encoder, batch["input_ids"], batch["attention_mask"], gated.prefix, output_attentions=True
        )
    text_length = batch["input_ids"].shape[1]
    for attention in out.attentions:
        assert attention.shape[-1] == length + text_length
        visual = attention[..., :length].sum(-1)  # the weight the text gives the visual prefix
        assert (visual[1] > 0).all()  # a post with images attends to them
    # the post with one image of `slots` attends to that image's blocks only
    blocks = torch.zeros(slots, 1 + K, 4, dtype=torch.bool)
    blocks[0] = True
    assert torch.equal(gated.prefix.mask[0], blocks.flatten())


# ---------------------------------------------------- HVPNeT-MI: one block per real image


@pytest.mark.parametrize("name", ["hvpnet_mi", "hvpnet_mi_re"])
def test_one_prefix_block_per_real_image_and_none_for_padded_slots(name, tiny_bert, tiny_vit):
    model, processor = build(name, tiny_bert, tiny_vit)
    model.eval()
    records = make_ner_posts(4) if model.task == "ner" else make_re_instances(4)
    for record in records:
        getattr(record, "post", record).images = []
    counts = [1, 2, 3, 4]
    inputs = visual_inputs(counts, 4)
    gated = model.gated_prefix(**inputs)
    per_image = (1 + K) * 4  # the image and its K crops, 2 x 2 tokens each
    assert gated.prefix.mask.sum(1).tolist() == [n * per_image for n in counts]
    batch = {**processor(records, with_labels=False), **inputs}
    garbage = dict(batch)
    padded = ~inputs["image_mask"]
    garbage["region_features"] = torch.where(padded[..., None, None], torch.tensor(5e3), inputs["region_features"])
    garbage["crop_features"] = torch.where(padded[..., None, None, None], torch.tensor(-7e3), inputs["crop_features"])
    with torch.no_grad():
        reference, changed = model(**batch), model(**garbage)
        torch.testing.assert_close(reference.logits, changed.logits)
        # ... while a real image's content does change the output
        real = dict(batch, region_features=batch["region_features"].clone())
        real["region_features"][3, 3] += 3.0
        assert not torch.allclose(model(**real).logits[3], reference.logits[3])
    assert reference.gates.shape == (4, model.text_encoder.config.num_hidden_layers, 4 * (1 + K), 4)


def test_hvpnet_reads_the_first_image_only(tiny_bert, tiny_vit):
    model, processor = build("hvpnet_re", tiny_bert, tiny_vit)
    assert processor.config.image_slots == 1
    model.eval()
    records = make_re_instances(2)
    for record in records:
        record.post.images = []
    batch = {**processor(records, with_labels=False), **visual_inputs([1, 1], 1)}
    gated = model.gated_prefix(
        batch["image_mask"], batch["crop_mask"], batch["region_features"], batch["crop_features"]
    )
    assert gated.prefix.length == processor.config.prefix_length == (1 + K) * 4  # the image and its K crops
    assert gated.gates.shape[2] == 1 + K  # each block its own gate


# -------------------------------------------------- real files: the featurizer and the pixels


@pytest.fixture(scope="module")
def synthetic_mre(tmp_path_factory) -> Path:
    """A tiny SYNTHETIC MRE-MI folder written by the real generator: images/, images_vg/, images_vg.pth."""
    from mmie.data.synth import generate_dataset

    out = tmp_path_factory.mktemp("synth-mre-hvpnet") / "data"
    generate_dataset("mre", out, posts=8, seed=4, image_size=64)
    return out


def test_featurizer_gives_the_multiscale_tokens_of_images_and_dataset_crops(
    tiny_bert, tiny_vit, synthetic_mre, tmp_path
):
    from mmie.data import read_crop_dict, read_dataset

    records = read_dataset(synthetic_mre / "train.txt").records
    model, _ = build("hvpnet_mi_re", tiny_bert, tiny_vit, regions="precomputed", feature_cache=str(tmp_path))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    processor = create_processor(model.model_config, tokenizer, RE_LABELS, images=synthetic_mre / "images")
    batch = Collator(tokenizer.pad_token_id)(processor.featurize(records, with_labels=False))
    crops = read_crop_dict(synthetic_mre / "images_vg.pth")
    cache = FeatureCache(tmp_path, processor.featurizer.encoder)
    record = records[0]
    ref = record.post.images[0]
    _, image_tokens = cache.get_many([synthetic_mre / "images" / ref])
    torch.testing.assert_close(batch["region_features"][0, 0], image_tokens[0])  # [T, D] of image 1
    files = [synthetic_mre / "images_vg" / name for name in crops[ref][:K]]
    _, crop_tokens = cache.get_many(files)
    torch.testing.assert_close(batch["crop_features"][0, 0, : len(files)], crop_tokens)
    assert batch["crop_features"].shape[2:] == (K, 4, 4 * WIDTH)
    assert batch["crop_mask"][0, 0].sum() == len(files)
    model.train()
    model(**batch).logits.sum().backward()


def test_ner_grid_crops_and_fine_tuned_pixels_give_the_frozen_features_outputs(tiny_bert, tiny_vit, tmp_path):
    """NER posts get crops too (the offline grid regions); pixels through the model's own backbone give
    the outputs of the cached features when the backbone is not trained."""
    from mmie.data import read_dataset
    from mmie.data.synth import generate_dataset

    out = tmp_path / "synth"
    generate_dataset("mner", out, posts=6, seed=2, image_size=64)
    posts = read_dataset(out / "train.txt").records[:4]
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    frozen, _ = build("hvpnet_mi", tiny_bert, tiny_vit, feature_cache=str(tmp_path / "cache"))
    tuned_config = frozen.model_config.model_copy(update={"freeze_vision": False})
    tuned = create_model(tuned_config, NER_LABELS)
    tuned.load_state_dict(frozen.state_dict())
    batches = {}
    for name, model in (("frozen", frozen), ("tuned", tuned)):
        processor = create_processor(model.model_config, tokenizer, NER_LABELS, images=out / "images")
        batches[name] = processor(posts, with_labels=False)
        model.eval()
    assert "pixel_values" in batches["tuned"] and "crop_features" in batches["frozen"]
    assert torch.equal(batches["frozen"]["crop_mask"], batches["tuned"]["crop_mask"])
    real_images = batches["frozen"]["image_mask"]
    assert (batches["frozen"]["crop_mask"].sum(-1)[real_images] >= 1).all()  # grid regions for every image
    assert not batches["frozen"]["crop_mask"][~real_images].any()
    with torch.no_grad():
        torch.testing.assert_close(
            frozen(**batches["frozen"]).logits, tuned(**batches["tuned"]).logits, atol=1e-4, rtol=1e-4
        )
