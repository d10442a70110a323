"""MKGformer on a tiny real BERT: the layer-by-layer text encoder is the encoder itself, the image
reaches only the M-Encoder layers (PGI and CAF), and padding never changes an output."""

from __future__ import annotations

import pytest
import torch

from conftest import make_re_instances
from mmie.errors import ConfigError
from mmie.models.glra.image_relation import PostRegions
from mmie.models.layers import text_layers
from test_glra import build, image_inputs, make_tiny_vit, text_batch, with_garbage_in_padding

LAYERS = 2  # the tiny BERT's


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> str:
    return make_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))


def posts(model, inputs: dict) -> PostRegions:
    return model.post_regions(
        inputs["image_mask"], inputs["region_mask"], inputs["image_features"], inputs["region_features"]
    )


def first_image(inputs: dict) -> dict:
    """MKGformer reads one image slot: the first."""
    return {key: value[:, :1] for key, value in inputs.items()}


def test_text_layers_run_one_by_one_are_the_encoder(tiny_bert, tiny_vit):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model = build("mkgformer", tiny_bert, tiny_vit, tokenizer)
    model.eval()
    batch = text_batch(tokenizer, model, make_re_instances(3, seed=2))
    encoder = model.text_encoder
    with torch.no_grad():
        expected = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        hidden = text_layers.embed(encoder, batch["input_ids"], None)
        mask = text_layers.additive_mask(batch["attention_mask"], hidden.dtype)
        for layer in text_layers.encoder_layers(encoder):
            attended = text_layers.self_attention(layer, hidden, mask)
            assert torch.allclose(text_layers.run_layer(layer, hidden, mask), text_layers.feed_forward(layer, attended))
            hidden = text_layers.run_layer(layer, hidden, mask)
    real = batch["attention_mask"].bool()
    assert torch.allclose(hidden[real], expected[real], atol=1e-5)


def test_the_image_reaches_only_the_m_encoder_layers(tiny_bert, tiny_vit):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model = build("mkgformer", tiny_bert, tiny_vit, tokenizer, fusion_layers=1)
    model.eval()
    assert model.first_fused == LAYERS - 1 and len(model.vision_layers) == len(model.fusion) == 1
    batch = text_batch(tokenizer, model, make_re_instances(3, seed=2))
    args = (batch["input_ids"], batch["attention_mask"], None)
    one, other = first_image(image_inputs([1, 1, 1], seed=1)), first_image(image_inputs([1, 1, 1], seed=2))
    with torch.no_grad():
        states_one = model.encode(*args, posts(model, one))
        states_other = model.encode(*args, posts(model, other))
        plain = model.text_encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        ).hidden_states
    real = batch["attention_mask"].bool()
    # below the M-Encoder: the encoder's own states, whatever the image
    for index in range(model.first_fused + 1):
        assert torch.allclose(states_one[index][real], plain[index][real], atol=1e-5)
        assert torch.equal(states_one[index], states_other[index])
    # the M-Encoder layer's output depends on the image (CAF), through the image tokens PGI updated
    assert not torch.allclose(states_one[-1][real], states_other[-1][real])
    # the M-Encoder layer by hand, eq. 5-9: PGI with the previous text layer's keys and values, then CAF
    f = model.first_fused
    layers = text_layers.encoder_layers(model.text_encoder)
    with torch.no_grad():
        regions = posts(model, one)
        tokens, token_mask = model.image_tokens(
            regions.images, regions.image_mask, regions.regions, regions.region_mask
        )
        tokens, token_mask = tokens.flatten(1, 2), token_mask.flatten(1)
        prefix = text_layers.keys_values(layers[f - 1], states_one[f - 1])
        mask = text_layers.additive_mask(batch["attention_mask"], tokens.dtype)
        attended = text_layers.self_attention(layers[f], states_one[f], mask)

        def caf(visual: torch.Tensor) -> torch.Tensor:
            weights = (attended @ visual.transpose(1, 2)).softmax(-1)  # every post has its image: nothing masked
            return text_layers.feed_forward(layers[f], attended, model.fusion[0](weights @ visual))

        with_prefix = model.vision_layers[0](tokens, token_mask, prefix, batch["attention_mask"])
        assert torch.allclose(caf(with_prefix), states_one[f + 1], atol=1e-5)
        without_prefix = model.vision_layers[0](tokens, token_mask)
        assert not torch.allclose(caf(without_prefix), states_one[f + 1], atol=1e-4)  # the prefix matters


def test_padding_and_missing_crops_never_change_an_output(tiny_bert, tiny_vit):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model = build("mkgformer", tiny_bert, tiny_vit, tokenizer)
    model.eval()
    batch = text_batch(tokenizer, model, make_re_instances(3, seed=4))
    inputs = first_image(image_inputs([1, 0, 1], [[1, 0, 0, 0], [0, 0, 0, 0], [2, 0, 0, 0]]))
    with torch.no_grad():
        clean = model(**batch, **inputs).logits
        noisy = model(**batch, **with_garbage_in_padding(inputs)).logits
    assert torch.allclose(clean, noisy, atol=1e-5)


def test_more_m_encoder_layers_than_text_layers_is_a_config_error(tiny_bert, tiny_vit):
    with pytest.raises(ConfigError, match="fusion_layers"):
        build("mkgformer", tiny_bert, tiny_vit, fusion_layers=LAYERS + 1)
