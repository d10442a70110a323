"""VisualPT-MoE and VisualPT-MoE-MI: the per-layer gate over exactly the enabled experts, the balance
loss, one prefix block per layer, the tag and caption experts reading the provider's text, on a tiny
real BERT, a tiny real ViT, real image files and a real image-text file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from mmie.data import read_dataset
from mmie.data.synth import generate_dataset
from mmie.errors import ConfigError
from mmie.features.collate import IGNORE_INDEX
from mmie.imagetext import ImageText, write_image_text
from mmie.models.layers.prefix_experts import PrefixExperts
from mmie.models.registry import create_model, create_processor, get_model_entry, model_config
from mmie.models.visualpt_moe.configuration import EXPERTS
from test_hvpnet import NER_LABELS, text_config, tiny_vit  # noqa: F401 - the fixture is used by name

ALL = ("image", "crops", "tags", "caption", "random")
OFFLINE = ("image", "crops", "random")
LABELS = [*NER_LABELS, "B-MISC", "I-MISC"]  # the synthetic posts' types


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[list, Path]:
    out = tmp_path_factory.mktemp("synth")
    generate_dataset("mner", out, posts=6, seed=3, image_size=64)
    return read_dataset(out / "train.txt").records[:4], out / "images"


def write_text(path: Path, posts: list, caption: str = "alice visited paris", changed: str | None = None) -> Path:
    """An image-text file for every image of ``posts``; ``changed``: the caption of the first post's first image."""
    entries = []
    for post in posts:
        for ref in post.images:
            text = changed if changed is not None and ref == posts[0].images[0] else caption
            entries.append(ImageText(ref, caption=text, tags=["star", "walk", "of", "fame"]))
    write_image_text(entries, path)
    return path


def build(name, tiny_bert, tiny_vit, images, experts=OFFLINE, seed=0, **settings):
    config = get_model_entry(name).config_class(
        name=name, encoder=tiny_bert, vision_encoder=tiny_vit, max_length=32, regions_per_image=2,
        prompt_length=8, experts=experts, **settings,
    )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    processor = create_processor(config, tokenizer, LABELS, images=images)
    torch.manual_seed(seed)
    return create_model(processor.config, LABELS, tokenizer=tokenizer), processor


# ------------------------------------------------------------------ the gate (eq. 3-5)


@pytest.mark.parametrize("experts", [ALL, OFFLINE, ("crops", "caption")])
def test_the_gate_mixes_exactly_the_enabled_experts(experts, tiny_bert, tiny_vit, synthetic, tmp_path):
    posts, images = synthetic
    model, processor = build(
        "visualpt_moe", tiny_bert, tiny_vit, images, experts, image_text=write_text(tmp_path / "t.jsonl", posts)
    )
    batch = processor(posts)
    model.train()
    output = model(**batch)
    weights = output.expert_weights  # [B, L, 5]
    assert weights.shape == (len(posts), model.text_encoder.config.num_hidden_layers, len(EXPERTS))
    enabled = torch.tensor([name in experts for name in EXPERTS])
    torch.testing.assert_close(weights[..., enabled].sum(-1), torch.ones(weights.shape[:2]))
    assert (weights[..., enabled] > 0).all() and (weights[..., ~enabled] == 0).all()
    # a disabled expert has no parameters; every enabled expert's get a gradient
    output.loss.backward()
    maps = {name.split(".")[2] for name, _ in model.named_parameters() if name.startswith("prefix_experts.maps.")}
    assert maps == set(experts)
    for name, parameter in model.prefix_experts.maps.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert ("random_prompts.weight" in dict(model.named_parameters())) == ("random" in experts)


def test_a_disabled_experts_input_changes_nothing(tiny_bert, tiny_vit, synthetic, tmp_path):
    posts, images = synthetic
    text = write_text(tmp_path / "t.jsonl", posts)
    model, processor = build("visualpt_moe", tiny_bert, tiny_vit, images, OFFLINE, image_text=text)
    batch = processor(posts)
    assert "caption_ids" not in batch and "tag_ids" not in batch  # the offline experts' processor reads no text
    full = build("visualpt_moe", tiny_bert, tiny_vit, images, ALL, image_text=text)[1](posts)
    model.eval()
    with torch.no_grad():
        plain = model(**batch).logits
        other = model(**{**batch, "caption_ids": torch.zeros_like(full["caption_ids"]), "tag_ids": full["tag_ids"]})
    assert torch.equal(plain, other.logits)


def test_the_mixture_is_the_gate_weighted_sum_of_the_experts_keys_and_values():
    torch.manual_seed(0)
    config = text_config(layers=3, hidden=8, heads=2)
    layer = PrefixExperts({"a": 5, "b": 8}, prompt_length=4, text_config=config, bottleneck=6).eval()
    tokens = {"a": torch.randn(2, 4, 5), "b": torch.randn(2, 4, 8)}
    mixed = layer(tokens)
    experts = layer.expert_key_values(tokens)  # [E, L, 2, B, P, d]
    assert len(mixed.prefix.key_values) == config.num_hidden_layers  # one key/value block per layer
    for index, (keys, values) in enumerate(mixed.prefix.key_values):
        assert keys.shape == values.shape == (2, 2, 4, 4)  # [B, heads, P, head_dim]
        # eq. 3-4 by hand: the gate reads the sum of every expert's keys and values of this layer
        z = experts[:, index].sum(dim=(0, 1)).flatten(1)
        gate = layer.gates[index](z).softmax(-1)
        torch.testing.assert_close(mixed.weights[:, index], gate)
        expected = torch.einsum("be,ekbpd->kbpd", gate, experts[:, index])  # eq. 5
        torch.testing.assert_close(keys.transpose(1, 2).flatten(2), expected[0])
        torch.testing.assert_close(values.transpose(1, 2).flatten(2), expected[1])
    # each layer has its own gate: the layers' mixes differ
    assert not torch.allclose(mixed.weights[:, 0], mixed.weights[:, 1])
    assert mixed.prefix.mask.all()  # every prompt position is attended to, as in the reference


# ------------------------------------------------------------------ the balance loss (eq. 6)


def test_the_balance_loss_is_least_for_a_uniform_gate():
    torch.manual_seed(0)
    config = text_config(layers=3, hidden=8, heads=2)
    layer = PrefixExperts({"a": 5, "b": 5, "c": 5}, prompt_length=4, text_config=config, bottleneck=6).eval()
    tokens = {name: torch.randn(2, 4, 5) for name in "abc"}
    skewed = layer(tokens).balance
    with torch.no_grad():
        for gate in layer.gates:
            gate.weight.zero_(), gate.bias.zero_()
    uniform = layer(tokens).balance
    torch.testing.assert_close(uniform, torch.tensor(3 * 2 / 3))  # L x B / E
    assert skewed > uniform + 1e-3


def test_the_balance_loss_is_added_only_with_labels(tiny_bert, tiny_vit, synthetic):
    posts, images = synthetic
    model, processor = build("visualpt_moe", tiny_bert, tiny_vit, images, OFFLINE, alpha=0.25)
    batch = processor(posts)
    model.eval()
    with torch.no_grad():
        output = model(**batch)
        unlabelled = model(**{key: value for key, value in batch.items() if key != "labels"})
    assert unlabelled.loss is None and unlabelled.balance_loss is not None
    mask = batch["word_mask"]
    cross_entropy = torch.nn.functional.cross_entropy(
        output.logits[mask], batch["labels"][mask], ignore_index=IGNORE_INDEX, reduction="sum"
    )
    torch.testing.assert_close(output.loss, 0.75 * cross_entropy + 0.25 * output.balance_loss)
    assert output.balance_loss >= len(posts) * model.text_encoder.config.num_hidden_layers / len(OFFLINE) - 1e-6


# ------------------------------------------------------------------ the experts' tokens (eq. 1)


def test_the_tag_and_caption_experts_read_the_providers_text(tiny_bert, tiny_vit, synthetic, tmp_path):
    posts, images = synthetic
    first = write_text(tmp_path / "a.jsonl", posts)
    second = write_text(tmp_path / "b.jsonl", posts, changed="bob met carol in rome")
    model, processor = build("visualpt_moe", tiny_bert, tiny_vit, images, ALL, image_text=first)
    changed = create_processor(model.model_config.model_copy(update={"image_text": second}), processor.tokenizer,
                               LABELS, images=images)  # fmt: skip
    batch, other = processor(posts), changed(posts)
    tokenizer = processor.tokenizer
    caption = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("alice visited paris"))
    assert batch["caption_ids"][0].tolist() == caption + [tokenizer.pad_token_id] * (8 - len(caption))
    tags = tokenizer.convert_tokens_to_ids(["star", "walk", "of", "fame"])
    assert batch["tag_ids"][0, :4].tolist() == tags
    assert not torch.equal(batch["caption_ids"][0], other["caption_ids"][0])
    assert torch.equal(batch["caption_ids"][1:], other["caption_ids"][1:])
    model.eval()
    with torch.no_grad():
        before, after = model(**batch), model(**other)
    # changing the caption changes the prefix (the caption expert's share of the gate) and the output
    assert not torch.allclose(before.expert_weights[0], after.expert_weights[0])
    assert not torch.allclose(before.logits[0], after.logits[0])
    torch.testing.assert_close(before.logits[1:], after.logits[1:])


def test_an_image_the_file_does_not_list_is_an_error_naming_it(tiny_bert, tiny_vit, synthetic, tmp_path):
    from mmie.imagetext import ImageTextUnavailable

    posts, images = synthetic
    text = write_text(tmp_path / "t.jsonl", posts[1:])
    _, processor = build("visualpt_moe", tiny_bert, tiny_vit, images, ALL, image_text=text)
    with pytest.raises(ImageTextUnavailable, match=posts[0].images[0]):
        processor(posts[:1])


def test_the_mi_row_stitches_the_images_and_shares_the_text_tokens(tiny_bert, tiny_vit, synthetic, tmp_path):
    posts, images = synthetic
    text = write_text(tmp_path / "t.jsonl", posts)
    model, processor = build("visualpt_moe_mi", tiny_bert, tiny_vit, images, ALL, image_text=text)
    assert model.model_config.image_layout == "stitched" and processor.image_slots == 1
    batch = processor(posts)
    assert batch["region_features"].shape[1] == 1  # one picture
    tokenizer = processor.tokenizer
    caption = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("alice visited paris"))
    for row, post in enumerate(posts):  # each image's caption gets P // n of the P = 8 tokens
        share = 8 // len(post.images)
        ids = [i for i in batch["caption_ids"][row].tolist() if i != tokenizer.pad_token_id]
        assert ids == (caption[:share]) * len(post.images)
    assert model(**batch).loss.isfinite()


def test_the_mi_rows_crops_are_found_on_the_stitched_picture(tiny_bert, tiny_vit, synthetic):
    """The grid finds VisualPT-MoE-MI's crops on the picture the model reads (all images stitched), not
    on the first image; with a crop dictionary (no entry for a stitched picture) the first image's stand in."""
    from PIL import Image

    from mmie.data.stitch import stitch_images

    posts, images = synthetic
    post = next(p for p in posts if len(p.images) > 1)
    _, processor = build("visualpt_moe_mi", tiny_bert, tiny_vit, images, regions="grid")
    featurizer = processor.featurizer
    [ref] = featurizer._slot_refs(post)
    assert ref == "+".join(post.images)
    found = featurizer._find_regions(post, ref)
    assert found and all(source.ref == ref for source, _ in found)
    stitched = stitch_images([Image.open(images / name) for name in post.images])
    assert found[0][0].load().tobytes() == stitched.tobytes()
    _, single = build("visualpt_moe", tiny_bert, tiny_vit, images, regions="grid")
    assert single.featurizer._slot_refs(post) == [post.images[0]]
    _, precomputed = build("visualpt_moe_mi", tiny_bert, tiny_vit, images, regions="precomputed")
    assert precomputed.featurizer._slot_refs(post) == [post.images[0]]


# ------------------------------------------------------------------ configs


def test_an_enabled_text_expert_without_a_provider_is_a_config_error_naming_the_field(tiny_bert):
    with pytest.raises(ConfigError, match=r"model\.experts: .*caption.*model\.image_text"):
        model_config({"name": "visualpt_moe", "encoder": tiny_bert, "experts": ["image", "caption"]})
    with pytest.raises(ConfigError, match=r"model\.prompt_length"):
        model_config({"name": "visualpt_moe", "regions_per_image": 3, "prompt_length": 8})
    with pytest.raises(ConfigError, match=r"model\.experts"):
        model_config({"name": "visualpt_moe", "experts": ["image", "pixels"]})
    config = model_config({"name": "visualpt_moe", "experts": ["random", "image"]})
    assert config.experts == ("image", "random")  # the paper's order, whatever the file's


def test_fine_tuned_pixels_give_the_frozen_features_outputs(tiny_bert, tiny_vit, synthetic, tmp_path):
    """The image and crop experts read the same tokens from the model's own backbone (pixels) as from the
    feature cache, when the backbone is not trained."""
    posts, images = synthetic
    frozen, processor = build("visualpt_moe", tiny_bert, tiny_vit, images, OFFLINE, feature_cache=str(tmp_path))
    tuned = create_model(frozen.model_config.model_copy(update={"freeze_vision": False}), LABELS)
    tuned.load_state_dict(frozen.state_dict())
    tuned_processor = create_processor(tuned.model_config, processor.tokenizer, LABELS, images=images)
    batches = {"frozen": processor(posts, with_labels=False), "tuned": tuned_processor(posts, with_labels=False)}
    assert "pixel_values" in batches["tuned"] and "crop_features" in batches["frozen"]
    frozen.eval(), tuned.eval()
    with torch.no_grad():
        expected = frozen(**batches["frozen"])
        torch.testing.assert_close(tuned(**batches["tuned"]).logits, expected.logits, atol=1e-4, rtol=1e-4)
        # the image really is read: another post's image changes the prefix
        swapped = {**batches["frozen"], "region_features": batches["frozen"]["region_features"].roll(1, dims=0)}
        assert not torch.allclose(frozen(**swapped).logits, expected.logits)
