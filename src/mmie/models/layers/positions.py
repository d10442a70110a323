"""A text encoder read at explicit position ids: tokens placed in a row away from the position they stand for.

Levitated markers sit after the text but share the position of the sub-word they mark, and packed
posts restart their positions in the middle of a row. Hugging Face encoders take ``position_ids``,
but two families read positions in more than their absolute embeddings' lookup:

* RoBERTa and MPNet count positions from ``padding_idx + 1`` (their embeddings keep ``padding_idx``),
  not from 0 as BERT does: a position ``p`` counted from 0 is looked up at ``p + padding_idx + 1``,
  so a plain text gets the positions the encoder gives it by itself.
* MPNet adds a relative position bias to every layer's attention, which its encoder computes from
  the row's indices and not from ``position_ids``; here the bias is looked up from the position ids
  (the encoder's own buckets and bias table) and its layers are called with it.

Either way a token reads its neighbours at the distances its position ids give, so a post in a
packed row is encoded as when it is alone (tests/test_mtb_levitated.py, BERT and MPNet).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedModel


def position_offset(text_encoder: PreTrainedModel) -> int:
    """Where the encoder's own position ids start: ``padding_idx + 1`` for RoBERTa and MPNet, else 0."""
    padding_idx = getattr(text_encoder.embeddings, "padding_idx", None)
    return 0 if padding_idx is None else int(padding_idx) + 1


def encode_at_positions(
    text_encoder: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[B, L, d]``: the encoder's last hidden states, every token at its ``position_ids`` ``[B, L]``
    (counted from 0); ``attention_mask`` is the additive ``[B, 1, L, L]`` mask, used as given."""
    positions = position_ids + position_offset(text_encoder)
    encoder: Any = getattr(text_encoder, "encoder", None)
    if getattr(encoder, "relative_attention_bias", None) is None:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": positions}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        return text_encoder(**inputs).last_hidden_state
    # MPNet: the embeddings at the given positions, then each layer with the relative bias of those
    # positions where its encoder would take the row's indices (its compute_position_bias does take
    # position ids, but only unbatched ones): bucket(key position - query position), looked up.
    embeddings: Any = text_encoder.embeddings
    hidden = embeddings(input_ids=input_ids, position_ids=positions)
    relative = position_ids[:, None, :] - position_ids[:, :, None]  # [B, L_q, L_k]
    buckets = encoder.relative_position_bucket(relative, num_buckets=encoder.relative_attention_bias.num_embeddings)
    bias = encoder.relative_attention_bias(buckets).permute(0, 3, 1, 2)  # [B, L_q, L_k, heads] -> [B, heads, L_q, L_k]
    for layer in encoder.layer:
        hidden = layer(hidden, attention_mask, bias)[0]
    return hidden
