"""The image RE baselines of Table 2 (mtb_first_image, mtb_all_images) on a tiny real BERT and ViT."""

from __future__ import annotations

import pytest
import torch

from mmie.features.collate import Collator
from mmie.models import create_processor
from test_glra import (  # noqa: F401  (fixtures: tiny_vit, tokenizer, instances, synthetic_mre)
    IMAGE_DIM,
    LABELS,
    K,
    build,
    image_inputs,
    instances,
    read_records,
    synthetic_mre,
    text_batch,
    tiny_vit,
    tokenizer,
    with_garbage_in_padding,
)

BASELINES = ["mtb_first_image", "mtb_all_images"]


def slots_of(name: str) -> int:
    return 1 if name == "mtb_first_image" else 4


@pytest.mark.parametrize("name", BASELINES)
def test_shapes_and_the_four_d_representation(tiny_bert, tiny_vit, tokenizer, instances, name):
    model = build(name, tiny_bert, tiny_vit, tokenizer).eval()
    assert model.model_config.image_slots == slots_of(name)
    assert model.classifier.in_features == 4 * model.hidden_size  # [H_s; H_o; A_s; A_o]
    batch = text_batch(tokenizer, model, instances)
    counts = [1, 1, 0, 1] if name == "mtb_first_image" else [1, 2, 3, 4]
    inputs = image_inputs(counts, slots=slots_of(name))
    out = model(**batch, **inputs)
    assert out.logits.shape == (4, len(LABELS)) and torch.isfinite(out.loss)
    assert out.relevance is None  # plain attention: nothing to write in the predictions
    with torch.no_grad():  # both the global vectors and the regions are attended to
        for key in ("image_features", "region_features"):
            moved = model(**batch, **{**inputs, key: inputs[key] + 1.0}).logits
            assert (moved - out.logits).abs().max() > 1e-4, key


@pytest.mark.parametrize("name", BASELINES)
def test_padded_images_and_regions_change_nothing(tiny_bert, tiny_vit, tokenizer, instances, name):
    model = build(name, tiny_bert, tiny_vit, tokenizer).eval()
    batch = text_batch(tokenizer, model, instances)
    if name == "mtb_first_image":
        inputs = image_inputs([1, 0, 1, 1], [[2], [], [0], [1]], slots=1)
    else:
        inputs = image_inputs([1, 0, 3, 2], [[1], [], [2, 0, 1], [2, 2]])
    before = model(**batch, **inputs)
    after = model(**batch, **with_garbage_in_padding(inputs))
    assert torch.equal(before.logits, after.logits) and torch.equal(before.loss, after.loss)


def test_all_images_attention_has_no_image_order(tiny_bert, tiny_vit, tokenizer, instances):
    """Plain attention is a weighted sum: swapping two images (with their regions) changes nothing."""
    model = build("mtb_all_images", tiny_bert, tiny_vit, tokenizer).eval()
    batch = text_batch(tokenizer, model, instances)
    inputs = image_inputs([3, 3, 3, 3])
    order = [2, 0, 1, 3]
    swapped = {key: value[:, order] for key, value in inputs.items()}
    with torch.no_grad():
        torch.testing.assert_close(model(**batch, **inputs).logits, model(**batch, **swapped).logits)


def test_global_only_variant_reads_no_regions(tiny_bert, tiny_vit, tokenizer, instances):
    model = build("mtb_all_images", tiny_bert, tiny_vit, tokenizer, use_regions=False).eval()
    assert model.model_config.region_count == 0
    batch = text_batch(tokenizer, model, instances)
    inputs = image_inputs([1, 2, 3, 4])
    no_regions = {
        **inputs,
        "region_features": inputs["region_features"][:, :, :0],
        "region_mask": inputs["region_mask"][:, :, :0],
    }
    assert model(**batch, **no_regions).logits.shape == (4, len(LABELS))


@pytest.mark.parametrize("name", BASELINES)
def test_featurizer_gives_the_first_image_or_all_of_them(tiny_bert, tiny_vit, tokenizer, synthetic_mre, tmp_path, name):
    records = [r for r in read_records(synthetic_mre) if r.post.n_images > 1][:4]
    model = build(name, tiny_bert, tiny_vit, tokenizer, feature_cache=str(tmp_path / "cache"))
    featurizer = create_processor(model.model_config, tokenizer, LABELS, images=synthetic_mre / "images").featurizer
    batch = Collator(tokenizer.pad_token_id)(featurizer.featurize(records, with_labels=False))
    slots = slots_of(name)
    assert batch["image_features"].shape == (4, slots, IMAGE_DIM)
    assert batch["region_features"].shape == (4, slots, K, IMAGE_DIM)
    assert batch["image_mask"].sum(1).tolist() == [min(r.post.n_images, slots) for r in records]
    model.train()
    model(**batch).logits.sum().backward()
    assert model.attention.key.weight.grad.abs().sum() > 0
