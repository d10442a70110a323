"""GLRA and its relevance-modulated attention on a tiny real BERT and a tiny real ViT.

Also home of the helpers the other image-RE tests import (tiny ViT, batches, image/region inputs).
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch
import transformers
from transformers import AutoTokenizer, ViTConfig, ViTModel

from conftest import make_re_instances
from mmie.data.schema import Post, RelationInstance, Span
from mmie.errors import ConfigError
from mmie.features.collate import Collator
from mmie.models.layers.relevance_attention import RelevanceModulatedAttention
from mmie.models.registry import create_model, create_processor, get_model_entry

LABELS = ["None", "/per/loc/place_of_residence", "/per/org/member_of"]
IMAGE_DIM = 24  # the tiny ViT's hidden size: differs from the text's 32 on purpose
K = 2  # regions per image
ViTProcessor = getattr(transformers, "ViTImageProcessorPil", transformers.ViTImageProcessor)


def make_tiny_vit(path: Path) -> str:
    torch.manual_seed(0)
    config = ViTConfig(
        hidden_size=IMAGE_DIM,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=32,
        patch_size=8,
    )
    ViTModel(config).save_pretrained(path)
    ViTProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> str:
    return make_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return AutoTokenizer.from_pretrained(tiny_bert)


def build(name: str, tiny_bert: str, tiny_vit: str, tokenizer=None, seed: int = 0, **settings):
    """Model ``name`` (markers added to ``tokenizer`` when given, embeddings resized to it)."""
    entry = get_model_entry(name)
    config = entry.config_class(name=name, encoder=tiny_bert, vision_encoder=tiny_vit, max_length=32, **settings)
    if tokenizer is not None:
        config = create_processor(config, tokenizer, LABELS).config
    torch.manual_seed(seed)
    return create_model(config, LABELS, tokenizer=tokenizer)


def text_batch(tokenizer, model, instances: list[RelationInstance]) -> dict[str, torch.Tensor]:
    from mmie.features.text import RelationFeaturizer

    featurizer = RelationFeaturizer(tokenizer, LABELS, 32, model.model_config.markers)
    return Collator(tokenizer.pad_token_id)(featurizer.featurize(instances))


def image_inputs(image_counts: list[int], region_counts: list[list[int]] | None = None, slots: int = 4, seed: int = 3):
    """Random image and region features with masks: ``region_counts[b][m]`` regions under image m of post b."""
    generator = torch.Generator().manual_seed(seed)
    batch = len(image_counts)
    image_mask = torch.arange(slots)[None, :] < torch.tensor(image_counts)[:, None]
    region_mask = torch.zeros(batch, slots, K, dtype=torch.bool)
    for row, count in enumerate(image_counts):
        for slot in range(count):
            regions = K if region_counts is None else region_counts[row][slot]
            region_mask[row, slot, :regions] = True
    return {
        "image_features": torch.randn(batch, slots, IMAGE_DIM, generator=generator),
        "image_mask": image_mask,
        "region_features": torch.randn(batch, slots, K, IMAGE_DIM, generator=generator),
        "region_mask": region_mask,
    }


def with_garbage_in_padding(inputs: dict) -> dict:
    """The same inputs with huge values in every padded image and padded region slot."""
    image_mask, region_mask = inputs["image_mask"], inputs["region_mask"] & inputs["image_mask"][..., None]
    return {
        **inputs,
        "image_features": torch.where(image_mask[..., None], inputs["image_features"], torch.tensor(1e4)),
        "region_features": torch.where(region_mask[..., None], inputs["region_features"], torch.tensor(-3e3)),
    }


@pytest.fixture(scope="module")
def instances() -> list[RelationInstance]:
    return make_re_instances(4, seed=5)


# -------------------------------------------------------------------------- the attention layer


def test_relevance_modulated_attention_is_equations_2_to_6():
    torch.manual_seed(0)
    layer = RelevanceModulatedAttention(text_dim=8, image_dim=6)
    text, images = torch.randn(3, 2, 8), torch.randn(3, 5, 6)
    mask = torch.ones(3, 5, dtype=torch.bool)
    out = layer(text, images, mask)
    # written out by hand from the paper, with the layer's weights
    h_hat = text @ layer.text_projection.weight.T + layer.text_projection.bias  # eq. 2
    v_hat = images @ layer.image_projection.weight.T + layer.image_projection.bias  # eq. 3
    pair = h_hat[:, :, None] * v_hat[:, None]  # H^ ⊙ V^, [3, 2, 5, 8]
    hidden = torch.relu(pair @ layer.relevance_hidden.weight.T + layer.relevance_hidden.bias)
    relevance = torch.sigmoid(hidden @ layer.relevance_score.weight.T + layer.relevance_score.bias)[..., 0]  # eq. 4
    q = text @ layer.query.weight.T + layer.query.bias
    k = images @ layer.key.weight.T + layer.key.bias
    v = images @ layer.value.weight.T + layer.value.bias
    alpha = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(8), dim=-1)  # eq. 5
    context = (relevance * alpha) @ v  # eq. 6
    torch.testing.assert_close(out.relevance, relevance)
    torch.testing.assert_close(out.attention[:, 0], alpha)
    torch.testing.assert_close(out.context, context)
    assert out.relevance.shape == (3, 2, 5) and ((out.relevance > 0) & (out.relevance < 1)).all()


def test_without_relevance_modulation_it_is_plain_attention_and_has_no_relevance_weights():
    torch.manual_seed(0)
    layer = RelevanceModulatedAttention(8, 6, heads=2, relevance_modulation=False)
    assert not hasattr(layer, "text_projection") and not hasattr(layer, "relevance_score")
    text, images, mask = torch.randn(2, 1, 8), torch.randn(2, 3, 6), torch.ones(2, 3, dtype=torch.bool)
    out = layer(text, images, mask)
    assert out.relevance is None
    expected = torch.nn.functional.scaled_dot_product_attention(
        layer._split_heads(layer.query(text)),
        layer._split_heads(layer.key(images)),
        layer._split_heads(layer.value(images)),
    )
    torch.testing.assert_close(out.context, expected.transpose(1, 2).reshape(2, 1, 8))


def test_relevance_can_silence_irrelevant_images_where_softmax_cannot():
    """The paper's motivation: plain attention gives a single image all the weight; R can give it none."""
    torch.manual_seed(0)
    modulated = RelevanceModulatedAttention(8, 6)
    with torch.no_grad():
        modulated.relevance_score.bias.fill_(-30.0)  # R ~ 0 for every pair
    text, image, mask = torch.randn(1, 1, 8), torch.randn(1, 1, 6), torch.ones(1, 1, dtype=torch.bool)
    out = modulated(text, image, mask)
    assert torch.equal(out.attention, torch.ones(1, 1, 1, 1))  # softmax over one image
    assert out.context.abs().max() < 1e-6  # ... but R switches its contribution off
    plain = modulated.value(image)  # what the unmodulated attention returns for that image
    assert plain.abs().max() > 1e-2


def test_masked_keys_get_zero_attention_and_relevance_and_no_key_gives_zero_context():
    torch.manual_seed(0)
    layer = RelevanceModulatedAttention(8, 6, heads=2)
    text, images = torch.randn(2, 2, 8), torch.randn(2, 3, 6)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    out = layer(text, images, mask)
    assert (out.attention[0, :, :, 1] == 0).all() and (out.relevance[0, :, 1] == 0).all()
    torch.testing.assert_close(out.attention[0].sum(-1), torch.ones(2, 2))
    assert torch.equal(out.context[1], torch.zeros(2, 8)) and torch.equal(out.relevance[1], torch.zeros(2, 3))
    garbage = images.clone()
    garbage[~mask] = float("inf")  # even inf in a padded slot reaches nothing
    again = layer(text, garbage, mask)
    assert torch.equal(again.context, out.context) and torch.equal(again.relevance, out.relevance)


# ---------------------------------------------------------------------------------- GLRA


def test_shapes_with_one_to_four_images_and_zero_to_k_regions(tiny_bert, tiny_vit, tokenizer, instances):
    model = build("glra", tiny_bert, tiny_vit, tokenizer).eval()
    batch = text_batch(tokenizer, model, instances)
    inputs = image_inputs([1, 2, 3, 4], [[0], [2, 1], [0, 0, 2], [1, 2, 0, 2]])
    out = model(**batch, **inputs)
    assert out.logits.shape == (4, len(LABELS))
    assert out.loss is not None and out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert model.classifier.in_features == 6 * model.hidden_size  # eq. 7: [H_cls; H_s; H_o; C; U]
    assert out.relevance.shape == (4, 4)
    assert torch.equal(out.relevance == 0, ~inputs["image_mask"])  # in (0, 1) for real images, 0 for padding
    assert out.region_relevance.shape == (4, 2, 4, K)
    assert torch.equal(out.region_relevance[:, 0] == 0, ~inputs["region_mask"])
    without_labels = {k: v for k, v in batch.items() if k != "labels"}
    assert model(**without_labels, **inputs).loss is None


SWITCHES = {
    "full": {},
    "w/o global": {"use_global": False},
    "w/o local": {"use_local": False},
    "w/o relevance modulation": {"relevance_modulation": False},
    "two heads": {"attention_heads": 2},
}


@pytest.mark.parametrize("switches", list(SWITCHES.values()), ids=list(SWITCHES))
def test_padded_images_and_regions_change_nothing(tiny_bert, tiny_vit, tokenizer, instances, switches):
    model = build("glra", tiny_bert, tiny_vit, tokenizer, **switches).eval()
    batch = text_batch(tokenizer, model, instances)
    inputs = image_inputs([1, 0, 3, 2], [[1], [], [2, 0, 1], [2, 2]])
    before = model(**batch, **inputs)
    after = model(**batch, **with_garbage_in_padding(inputs))
    assert torch.equal(after.logits, before.logits) and torch.equal(after.loss, before.loss)
    for name in ("relevance", "region_relevance"):
        first, second = getattr(before, name), getattr(after, name)
        assert (first is None and second is None) or torch.equal(first, second)


def test_batch_padding_does_not_matter(tiny_bert, tiny_vit, tokenizer, instances):
    """A post with two images gives the same output in 2 slots as in 4 (the reference code fails this)."""
    model = build("glra", tiny_bert, tiny_vit, tokenizer).eval()
    batch = text_batch(tokenizer, model, instances[:1])
    inputs = image_inputs([2], [[2, 1]])
    tight = {
        "image_features": inputs["image_features"][:, :2],
        "image_mask": inputs["image_mask"][:, :2],
        "region_features": inputs["region_features"][:, :2],
        "region_mask": inputs["region_mask"][:, :2],
    }
    padded, narrow = model(**batch, **inputs), model(**batch, **tight)
    torch.testing.assert_close(padded.logits, narrow.logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(padded.relevance[:, :2], narrow.relevance, rtol=0, atol=1e-6)


@torch.no_grad()
def _changes(model, batch, inputs, key: str) -> float:
    other = {**inputs, key: inputs[key] + 1.0}
    return float((model(**batch, **inputs).logits - model(**batch, **other).logits).abs().max())


def test_each_ablation_switch_removes_what_table_3_says(tiny_bert, tiny_vit, tokenizer, instances):
    inputs = image_inputs([1, 2, 3, 4])
    full = build("glra", tiny_bert, tiny_vit, tokenizer).eval()
    batch = text_batch(tokenizer, full, instances)
    assert _changes(full, batch, inputs, "image_features") > 1e-4  # global path reads the images
    assert _changes(full, batch, inputs, "region_features") > 1e-4  # local path reads the regions

    no_global = build("glra", tiny_bert, tiny_vit, tokenizer, use_global=False).eval()
    assert no_global.classifier.in_features == 4 * no_global.hidden_size  # [H_s; H_o; U]
    assert _changes(no_global, batch, inputs, "image_features") == 0.0
    assert _changes(no_global, batch, inputs, "region_features") > 1e-4
    out = no_global(**batch, **inputs)  # an image's relevance is then that of its best region
    torch.testing.assert_close(out.relevance, out.region_relevance.amax(dim=(1, 3)))

    no_local = build("glra", tiny_bert, tiny_vit, tokenizer, use_local=False).eval()
    assert no_local.classifier.in_features == 2 * no_local.hidden_size  # [H_cls; C]
    assert _changes(no_local, batch, inputs, "region_features") == 0.0
    assert _changes(no_local, batch, inputs, "image_features") > 1e-4
    assert no_local(**batch, **inputs).region_relevance is None

    no_modulation = build("glra", tiny_bert, tiny_vit, tokenizer, relevance_modulation=False).eval()
    out = no_modulation(**batch, **inputs)
    assert out.relevance is None and out.region_relevance is None
    attention = [name for name, _ in no_modulation.named_parameters() if name.startswith("attention.")]
    assert len(attention) == 6 and all(name.split(".")[1] in ("query", "key", "value") for name in attention)
    assert _changes(no_modulation, batch, inputs, "image_features") > 1e-4  # the attention stays

    with pytest.raises(ConfigError, match="use_global and use_local"):
        build("glra", tiny_bert, tiny_vit, use_global=False, use_local=False)
    with pytest.raises(ConfigError, match="regions_per_image"):
        build("glra", tiny_bert, tiny_vit, regions_per_image=0)


def test_one_attention_module_serves_the_global_and_the_local_path(tiny_bert, tiny_vit, tokenizer, instances):
    model = build("glra", tiny_bert, tiny_vit, tokenizer).train()
    batch = text_batch(tokenizer, model, instances)
    model(**batch, **image_inputs([1, 2, 3, 4])).loss.backward()
    attention = [name for name, _ in model.named_parameters() if name.startswith("attention.")]
    assert len(attention) == 14  # W1..W4, Wq, Wk, Wv (weights and biases), once
    grads = {name: p.grad for name, p in model.named_parameters()}
    for name in attention + ["classifier.weight", "text_encoder.encoder.layer.0.attention.self.query.weight"]:
        assert grads[name] is not None and grads[name].abs().sum() > 0, name
    assert all(grads[name] is None for name in grads if name.startswith("vision_encoder."))  # frozen


def test_fine_tuned_vision_encodes_only_real_images_and_crops(tiny_bert, tiny_vit, tokenizer, instances):
    model = build("glra", tiny_bert, tiny_vit, tokenizer, freeze_vision=False).train()
    batch = text_batch(tokenizer, model, instances)
    inputs = image_inputs([1, 0, 3, 2], [[1], [], [2, 0, 1], [2, 2]])
    pixels = torch.randn(4, 4, 3, 32, 32)
    region_pixels = torch.randn(4, 4, K, 3, 32, 32)
    masks = {"image_mask": inputs["image_mask"], "region_mask": inputs["region_mask"]}
    out = model(**batch, **masks, pixel_values=pixels, region_pixel_values=region_pixels)
    out.loss.backward()
    vision = [p.grad for n, p in model.named_parameters() if n.startswith("vision_encoder.")]
    assert vision and sum(g.abs().sum() for g in vision if g is not None) > 0
    model.eval()
    padded_image = ~inputs["image_mask"]
    padded_region = ~(inputs["region_mask"] & inputs["image_mask"][..., None])
    garbage_pixels, garbage_regions = pixels.clone(), region_pixels.clone()
    garbage_pixels[padded_image] = 50.0
    garbage_regions[padded_region] = -50.0
    first = model(**batch, **masks, pixel_values=pixels, region_pixel_values=region_pixels)
    second = model(**batch, **masks, pixel_values=garbage_pixels, region_pixel_values=garbage_regions)
    assert torch.equal(first.logits, second.logits) and torch.equal(first.relevance, second.relevance)


# ------------------------------------------------------------------ learning from one image


def one_image_task(count: int, seed: int) -> tuple[list[RelationInstance], dict]:
    """``alice and bob today``: the same text for every label; ONE image (never the first) shows it.

    Each post has 2-4 images; the cue image, at a random position from 2 on, holds the prototype
    of the label (and its regions noisy copies of it); every other image and region is noise.
    """
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(len(LABELS), IMAGE_DIM, generator=torch.Generator().manual_seed(99)) * 2
    instances, counts, cues, labels = [], [], [], []
    for index in range(count):
        label = rng.randrange(len(LABELS))
        n_images = rng.randint(2, 4)
        post = Post(
            id=str(index), tokens=["alice", "and", "bob", "today"], images=[f"{index}_{i}.jpg" for i in range(n_images)]
        )
        instances.append(RelationInstance(post, Span(0, 1, "alice"), Span(2, 3, "bob"), LABELS[label]))
        counts.append(n_images)
        cues.append(rng.randrange(1, n_images))
        labels.append(label)
    inputs = image_inputs(counts, seed=seed)
    for row, (cue, label) in enumerate(zip(cues, labels)):
        noise = 0.3 * torch.randn(1 + K, IMAGE_DIM, generator=generator)
        inputs["image_features"][row, cue] = prototypes[label] + noise[0]
        inputs["region_features"][row, cue] = prototypes[label] + noise[1:]
    return instances, inputs


def train_then_evaluate(model, train: dict, test: dict, steps: int = 30) -> tuple[float, float]:
    """Full-batch AdamW for ``steps`` steps; returns (mean loss of the last 5 steps, held-out loss)."""
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(**train).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        return sum(losses[-5:]) / 5, model(**test).loss.item()


def first_slot(inputs: dict) -> dict:
    return {key: value[:, :1] for key, value in inputs.items()}


@pytest.mark.slow
def test_glra_learns_what_only_one_later_image_tells_and_mtb_cannot(tiny_bert, tiny_vit, tokenizer):
    glra = build("glra", tiny_bert, tiny_vit, tokenizer, dropout=0.0)
    first_image = build("mtb_first_image", tiny_bert, tiny_vit, tokenizer, dropout=0.0)
    mtb = create_model(
        {"name": "mtb", "encoder": tiny_bert, "max_length": 32, "dropout": 0.0}, LABELS, tokenizer=tokenizer
    )
    (train, train_images), (test, test_images) = one_image_task(36, seed=1), one_image_task(36, seed=2)
    train_text, test_text = text_batch(tokenizer, glra, train), text_batch(tokenizer, glra, test)

    mtb_train, mtb_test = train_then_evaluate(mtb, train_text, test_text)
    glra_train, glra_test = train_then_evaluate(glra, {**train_text, **train_images}, {**test_text, **test_images})
    first_train, first_test = train_then_evaluate(
        first_image, {**train_text, **first_slot(train_images)}, {**test_text, **first_slot(test_images)}
    )
    # one text for every label: MTB stays near the label entropy (log 3 = 1.1), in training and on new posts
    assert mtb_train > 0.8 and mtb_test > 0.8
    assert glra_train < 0.5 * mtb_train, (glra_train, mtb_train)
    assert glra_test < 0.5 * mtb_test, (glra_test, mtb_test)  # it learned the cue, not the examples
    # the first image never shows the cue: what that model fits does not carry over to new posts
    assert glra_test < 0.5 * first_test, (glra_test, first_test, first_train)


# ------------------------------------------------------ featurizer and predictions, real files


@pytest.fixture(scope="module")
def synthetic_mre(tmp_path_factory) -> Path:
    """A tiny SYNTHETIC MRE-MI folder written by the real generator: images/, images_vg/, images_vg.pth."""
    from mmie.data.synth import generate_dataset

    out = tmp_path_factory.mktemp("synth-mre") / "data"
    generate_dataset("mre", out, posts=12, seed=3, image_size=64)
    return out


def read_records(folder: Path) -> list[RelationInstance]:
    from mmie.data import read_dataset

    return [r for split in ("train", "val", "test") for r in read_dataset(folder / f"{split}.txt").records]


@pytest.mark.parametrize("frozen", [True, False])
def test_featurizer_reads_the_dataset_crops_beside_the_images(
    tiny_bert, tiny_vit, tokenizer, synthetic_mre, tmp_path, frozen
):
    from mmie.data import read_crop_dict
    from mmie.encoders.cache import FeatureCache

    records = read_records(synthetic_mre)
    model = build("glra", tiny_bert, tiny_vit, tokenizer, freeze_vision=frozen, feature_cache=str(tmp_path / "cache"))
    featurizer = create_processor(model.model_config, tokenizer, LABELS, images=synthetic_mre / "images").featurizer
    features = featurizer.featurize(records, with_labels=False)  # the synthetic labels are not LABELS
    batch = Collator(tokenizer.pad_token_id)(features)
    crops = read_crop_dict(synthetic_mre / "images_vg.pth")
    expected = torch.zeros(len(records), 4, K, dtype=torch.bool)
    for row, record in enumerate(records):
        for slot, ref in enumerate(record.post.images):
            expected[row, slot, : len(crops[ref][:K])] = True
    assert torch.equal(batch["region_mask"], expected)
    assert batch["image_mask"].sum(1).tolist() == [r.post.n_images for r in records]
    if frozen:
        assert batch["region_features"].shape == (len(records), 4, K, IMAGE_DIM)
        # each region vector is the encoder's global vector of that crop file
        ref = records[0].post.images[0]
        cache = FeatureCache(tmp_path / "cache", featurizer.encoder)
        crop_vectors, _ = cache.get_many([synthetic_mre / "images_vg" / name for name in crops[ref][:K]])
        torch.testing.assert_close(batch["region_features"][0, 0, : len(crop_vectors)], crop_vectors)
        assert (batch["region_features"][~expected] == 0).all()
    else:
        assert batch["region_pixel_values"].shape == (len(records), 4, K, 3, 32, 32)
    model.train()
    model(**batch).logits.sum().backward()


def test_grid_regions_and_config_errors_of_the_featurizer(tiny_bert, tiny_vit, tokenizer, synthetic_mre, tmp_path):
    records = read_records(synthetic_mre)[:4]
    model = build("glra", tiny_bert, tiny_vit, tokenizer, regions="grid", feature_cache=str(tmp_path / "cache"))
    featurizer = create_processor(model.model_config, tokenizer, LABELS, images=synthetic_mre / "images").featurizer
    batch = Collator(tokenizer.pad_token_id)(featurizer.featurize(records, with_labels=False))
    # the tiny ViT's 4 x 4 patch grid always yields k boxes per real image
    assert torch.equal(batch["region_mask"], batch["image_mask"][..., None].expand(-1, -1, K))
    assert model(**batch).relevance.shape == batch["image_mask"].shape

    no_folder = create_processor(model.model_config, tokenizer, LABELS).featurizer
    with pytest.raises(ConfigError, match="data.images"):
        no_folder.featurize(records, with_labels=False)
    images_only = tmp_path / "elsewhere" / "images"
    images_only.mkdir(parents=True)
    for ref in records[0].post.images:
        (images_only / ref).write_bytes((synthetic_mre / "images" / ref).read_bytes())
    precomputed = build("glra", tiny_bert, tiny_vit, tokenizer, feature_cache=str(tmp_path / "cache"))
    missing = create_processor(precomputed.model_config, tokenizer, LABELS, images=images_only).featurizer
    with pytest.raises(ConfigError, match=r"model.region_dict: .*images_vg.pth.*mmie regions build"):
        missing.featurize(records[:1], with_labels=False)


def test_text_free_regions_are_found_once_per_image_and_equal_each_pair_alone(
    tiny_bert, tiny_vit, tokenizer, synthetic_mre, tmp_path
):
    """Grid regions ignore the text: the pairs of one post share its images' regions, looked up and
    encoded once, with the same features as when each pair is featurized on its own."""
    records = read_records(synthetic_mre)
    post = records[0].post
    pairs = [
        RelationInstance(post, a, b, "None")
        for a, b in [
            (Span(0, 1, post.tokens[0]), Span(1, 2, post.tokens[1])),
            (Span(1, 2, post.tokens[1]), Span(0, 1, post.tokens[0])),
            (Span(0, 2, " ".join(post.tokens[:2])), Span(2, 3, post.tokens[2])),
        ]
    ]
    model = build("glra", tiny_bert, tiny_vit, tokenizer, regions="grid", feature_cache=str(tmp_path / "cache"))
    featurizer = create_processor(model.model_config, tokenizer, LABELS, images=synthetic_mre / "images").featurizer
    provider = featurizer.provider
    calls = []
    real_find = provider.find
    provider.find = lambda source, queries, k: calls.append(source.ref) or real_find(source, queries, k)
    together = featurizer.featurize(pairs, with_labels=False)
    assert sorted(calls) == sorted(post.images)
    for pair, feature in zip(pairs, together):
        alone = featurizer.featurize([pair], with_labels=False)[0]
        assert torch.equal(feature["region_mask"], alone["region_mask"])
        torch.testing.assert_close(feature["region_features"], alone["region_features"])
    assert together[0]["region_mask"].any()


def test_every_glra_prediction_carries_the_relevance_of_each_real_image(
    tiny_bert, tiny_vit, tokenizer, synthetic_mre, tmp_path
):
    from mmie.evaluation.predictions import PredictionWriter, read_predictions
    from mmie.inference.predict import Predictor

    records = read_records(synthetic_mre)
    model = build("glra", tiny_bert, tiny_vit, tokenizer, feature_cache=str(tmp_path / "cache"))
    predictor = Predictor(
        model, create_processor(model.model_config, tokenizer, model.labels, images=synthetic_mre / "images")
    )
    path = tmp_path / "predictions.jsonl"
    with PredictionWriter(path) as writer:
        for prediction in predictor.iter_predictions(records, batch_size=5, progress=False):
            writer.write(prediction)
    predictions = read_predictions(path)
    assert [p["id"] for p in predictions] == [r.id for r in records]
    for prediction, record in zip(predictions, records):
        assert len(prediction["relevance"]) == record.post.n_images
        assert all(0.0 < value < 1.0 for value in prediction["relevance"])
    # models without relevance write none
    mtb = build("mtb_all_images", tiny_bert, tiny_vit, tokenizer, feature_cache=str(tmp_path / "cache"))
    baseline = Predictor(
        mtb, create_processor(mtb.model_config, tokenizer, mtb.labels, images=synthetic_mre / "images")
    )
    assert all("relevance" not in p for p in baseline.predict(records[:3], progress=False))
