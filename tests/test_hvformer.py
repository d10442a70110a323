"""HVFormer and HVFormer-MI on a tiny real BERT: the router's weights, one vision sequence per real
image, the exact two-marker shortcut, and padding never changing an output."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from conftest import make_re_instances
from test_glra import K, build, image_inputs, make_tiny_vit, text_batch, with_garbage_in_padding


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> str:
    return make_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return AutoTokenizer.from_pretrained(tiny_bert)


def test_router_weights_sum_to_one_over_the_experts(tiny_bert, tiny_vit, tokenizer):
    model = build("hvformer_mi", tiny_bert, tiny_vit, tokenizer)
    model.eval()
    batch = text_batch(tokenizer, model, make_re_instances(3, seed=1))
    with torch.no_grad():
        output = model(**batch, **image_inputs([1, 4, 0]))
    weights = output.expert_weights  # [B, 2 markers, text + 3 levels]
    assert weights.shape == (3, 2, 4) and (weights > 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(3, 2))
    assert model.levels == (0, 1, 2)  # first, middle and last of the 2 vision layers' levels


def test_one_vision_sequence_per_real_image_and_none_for_padded_slots(tiny_bert, tiny_vit, tokenizer):
    model = build("hvformer_mi", tiny_bert, tiny_vit, tokenizer)
    assert model.model_config.image_slots == 4 and build("hvformer", tiny_bert, tiny_vit).model_config.image_slots == 1
    inputs = image_inputs([1, 3, 0], [[2, 0, 0, 0], [1, 2, 0, 0], [0, 0, 0, 0]])
    posts = model.post_regions(**inputs)
    sequences, mask = model.vision_sequences(posts)
    assert sequences.shape == (4, 1 + K, model.hidden_size)  # 1 + 3 real images, one sequence each
    assert mask.tolist() == [[True, True, True], [True, True, False], [True, True, True], [True, False, False]]
    # an image's sequence runs through the vision layers apart from the others': changing the second
    # image of post 1 leaves the vision levels of its first image untouched
    model.eval()
    changed = {**inputs, "image_features": inputs["image_features"].clone()}
    changed["image_features"][1, 1] += 5.0
    with torch.no_grad():
        levels, _ = model.vision_levels(posts)
        levels_changed, _ = model.vision_levels(model.post_regions(**changed))
    first, second = slice(0, 1 + K), slice(1 + K, 2 * (1 + K))
    assert torch.equal(levels[-1][1, first], levels_changed[-1][1, first])
    assert not torch.allclose(levels[-1][1, second], levels_changed[-1][1, second])


def test_padding_never_changes_an_output_and_images_do(tiny_bert, tiny_vit, tokenizer):
    model = build("hvformer_mi", tiny_bert, tiny_vit, tokenizer)
    model.eval()
    batch = text_batch(tokenizer, model, make_re_instances(3, seed=4))
    inputs = image_inputs([2, 1, 0], [[1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    with torch.no_grad():
        clean = model(**batch, **inputs).logits
        noisy = model(**batch, **with_garbage_in_padding(inputs)).logits
        other = model(**batch, **image_inputs([2, 1, 0], seed=9)).logits
    assert torch.allclose(clean, noisy, atol=1e-5)
    assert not torch.allclose(clean[:2], other[:2])  # posts with images read them
    assert torch.allclose(clean[2], other[2], atol=1e-6)  # the post without images reads none


def test_the_two_marker_shortcut_is_the_mixture_at_every_position(tiny_bert, tiny_vit, tokenizer):
    model = build("hvformer", tiny_bert, tiny_vit, tokenizer)
    model.eval()
    batch = text_batch(tokenizer, model, make_re_instances(2, seed=3))
    inputs = {key: value[:, :1] for key, value in image_inputs([1, 1]).items()}
    with torch.no_grad():
        hidden = model.encode_text(batch["input_ids"], batch["attention_mask"])
        levels, mask = model.vision_levels(model.post_regions(**inputs))
        contexts = [attend(hidden, levels[i], mask) for attend, i in zip(model.cross_attention, model.levels)]
        full, _ = model.mixture(hidden, contexts)  # H^ at every text position
        markers = model.marker_vectors(full, batch["head_start"], batch["tail_start"])
        expected = model.classifier(markers.flatten(1))
        assert torch.allclose(model(**batch, **inputs).logits, expected, atol=1e-5)
