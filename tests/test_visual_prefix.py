"""The visual prefix goes through the encoder's real attention: masked slots are invisible, positions unshifted."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel, DynamicCache, RobertaConfig, RobertaModel

from mmie.errors import ConfigError
from mmie.models.layers.visual_prefix import (
    AttentionShape,
    Prefix,
    PrefixKeyValues,
    VisualPrefix,
    cache_keyword,
    encode_with_prefix,
)

TINY = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


@pytest.fixture(scope="module")
def saved_tiny_bert(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(BertConfig(**TINY)).save_pretrained(path)
    return str(path)


def load(path: str, attn: str) -> BertModel:
    return BertModel.from_pretrained(path, attn_implementation=attn).eval()


def text_batch(vocab_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(3, vocab_size, (3, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 6:] = 0
    attention_mask[2, 4:] = 0
    return input_ids, attention_mask


def random_prefix(config, batch: int, length: int, seed: int = 2) -> Prefix:
    shape = AttentionShape.from_config(config)
    generator = torch.Generator().manual_seed(seed)
    size = (batch, shape.num_heads, length, shape.head_dim)
    key_values = tuple(
        (torch.randn(size, generator=generator), torch.randn(size, generator=generator))
        for _ in range(shape.num_layers)
    )
    return Prefix(key_values, torch.ones(batch, length, dtype=torch.bool))


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_empty_or_all_masked_prefix_equals_plain_encoder_and_positions_are_not_shifted(saved_tiny_bert, attn):
    encoder = load(saved_tiny_bert, attn)
    input_ids, attention_mask = text_batch()
    plain = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    assert torch.equal(encode_with_prefix(encoder, input_ids, attention_mask, None).last_hidden_state, plain)
    empty = random_prefix(encoder.config, 3, 0)
    # Not bit-equal: through the cache the keys are a concatenated copy, whose matmul may round
    # differently (transformers 5.24, eager: 6e-8).
    out = encode_with_prefix(encoder, input_ids, attention_mask, empty).last_hidden_state
    torch.testing.assert_close(out, plain, rtol=0, atol=1e-6)
    prefix = random_prefix(encoder.config, 3, 4)
    prefix.mask[:] = False
    out = encode_with_prefix(encoder, input_ids, attention_mask, prefix).last_hidden_state
    torch.testing.assert_close(out, plain, rtol=0, atol=1e-6)
    # The same call without explicit position ids counts text positions from the prefix length:
    # this is the bug encode_with_prefix prevents, and it is visible.
    naive = encoder(
        input_ids=input_ids,
        attention_mask=torch.cat([prefix.mask.long(), attention_mask], dim=1),
        **{cache_keyword(encoder): DynamicCache(ddp_cache_data=prefix.key_values)},
    ).last_hidden_state
    assert (naive - plain).abs().max() > 1e-3


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_masked_prefix_slot_content_has_no_effect(saved_tiny_bert, attn):
    encoder = load(saved_tiny_bert, attn)
    input_ids, attention_mask = text_batch()
    prefix = random_prefix(encoder.config, 3, 4)
    prefix.mask[0, 2:] = False  # post 0: 2 images; post 1: 4; post 2: 1
    prefix.mask[2, 1:] = False
    before = encode_with_prefix(encoder, input_ids, attention_mask, prefix).last_hidden_state
    changed = Prefix(tuple((k.clone(), v.clone()) for k, v in prefix.key_values), prefix.mask)
    for keys, values in changed.key_values:
        keys[0, :, 2:] = 1e4
        values[0, :, 2:] = -7.0
        keys[2, :, 1:] *= -50
    after = encode_with_prefix(encoder, input_ids, attention_mask, changed).last_hidden_state
    assert torch.equal(after, before)
    # ...while a real (unmasked) slot does change the output of its post only
    for keys, _ in changed.key_values:
        keys[1, :, 0] += 1.0
    moved = encode_with_prefix(encoder, input_ids, attention_mask, changed).last_hidden_state
    assert torch.equal(moved[[0, 2]], before[[0, 2]])
    assert not torch.allclose(moved[1], before[1])


def test_roberta_positions_start_after_padding_idx(tmp_path):
    torch.manual_seed(0)
    RobertaModel(RobertaConfig(**TINY, max_position_embeddings=40, pad_token_id=1)).save_pretrained(tmp_path)
    encoder = RobertaModel.from_pretrained(tmp_path).eval()
    input_ids, attention_mask = text_batch()
    input_ids = input_ids.masked_fill(attention_mask == 0, 1)
    plain = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    prefix = random_prefix(encoder.config, 3, 4)
    prefix.mask[:] = False
    out = encode_with_prefix(encoder, input_ids, attention_mask, prefix).last_hidden_state
    torch.testing.assert_close(out, plain, rtol=0, atol=1e-6)


def test_visual_prefix_shapes_and_gradients(saved_tiny_bert):
    encoder = load(saved_tiny_bert, "sdpa").train()
    config = encoder.config
    visual = VisualPrefix(visual_dim=12, text_config=config, dropout=0.1)
    tokens = torch.randn(3, 4, 12)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    prompts = visual.prompts(tokens)
    assert prompts.shape == (config.num_hidden_layers, 3, 4, config.hidden_size)
    prefix = visual(tokens, mask)
    head_dim = config.hidden_size // config.num_attention_heads
    assert len(prefix.key_values) == config.num_hidden_layers and prefix.length == 4
    assert prefix.key_values[0][0].shape == (3, config.num_attention_heads, 4, head_dim)
    input_ids, attention_mask = text_batch()
    encode_with_prefix(encoder, input_ids, attention_mask, prefix).last_hidden_state.sum().backward()
    assert visual.prompt_projection.weight.grad.abs().sum() > 0
    assert all(phi.weight.grad.abs().sum() > 0 for phi in visual.key_values.phi)
    assert encoder.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


def test_layer_count_mismatch_and_gradient_checkpointing_are_refused(saved_tiny_bert):
    encoder = load(saved_tiny_bert, "eager")
    input_ids, attention_mask = text_batch()
    deeper = BertConfig(**{**TINY, "num_hidden_layers": 3})
    with pytest.raises(ValueError, match="layers"):
        encode_with_prefix(encoder, input_ids, attention_mask, random_prefix(deeper, 3, 2))
    with pytest.raises(ValueError, match="layers"):
        PrefixKeyValues(deeper)(torch.zeros(2, 3, 4, TINY["hidden_size"]), torch.ones(3, 4))
    enable = getattr(encoder, "activation_checkpointing_enable", None) or encoder.gradient_checkpointing_enable
    enable()
    encoder.train()
    with pytest.raises(ConfigError, match="gradient checkpointing"):
        encode_with_prefix(encoder, input_ids, attention_mask, random_prefix(encoder.config, 3, 2))
