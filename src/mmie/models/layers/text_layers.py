"""A BERT-family text encoder run layer by layer, for the models that act between its layers.

MKGformer's M-Encoder changes the upper text layers from the inside (a fusion term in their
feed-forward block) and hands each layer's keys and values to the vision side; that needs the
layers one at a time. These helpers call the Hugging Face modules themselves (embeddings, each
``BertLayer`` or its attention / intermediate / output parts), never a copy of their code, so a
text-only pass through :func:`run_layer` gives exactly the encoder's own hidden states (tested).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from mmie.errors import ConfigError


def encoder_layers(text_encoder: PreTrainedModel) -> nn.ModuleList:
    """The encoder's Transformer layers (BERT, MiniLM, RoBERTa, ... keep them at ``encoder.layer``)."""
    layers = getattr(getattr(text_encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or not hasattr(getattr(layers[0], "attention", None), "self"):
        # MPNet keeps encoder.layer too, but its layers hold another attention module (and a relative
        # position bias passed from outside): the parts called below are BERT's.
        raise ConfigError(
            f"model.encoder: {type(text_encoder).__name__} is not a BERT-family encoder (this model runs its "
            "layers one by one through BERT's layer parts: attention.self, intermediate, output). "
            "Pick a BERT-family encoder (BERT, MiniLM, RoBERTa, ...)"
        )
    return layers


def embed(text_encoder: PreTrainedModel, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
    """The encoder's input embeddings ``[B, T, d]`` (words + positions + types, LayerNorm, dropout)."""
    embeddings: Any = text_encoder.embeddings
    return embeddings(input_ids=input_ids, token_type_ids=token_type_ids)


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[B, T]`` 1/0 -> ``[B, 1, 1, T]``: 0 where attended, the dtype's minimum at padding."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def run_layer(layer: nn.Module, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One unchanged layer: ``hidden [B, T, d]`` -> ``[B, T, d]``."""
    return layer(hidden, mask)


def self_attention(layer: Any, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The layer's attention block (self-attention, output projection, residual, LayerNorm)."""
    return layer.attention(hidden, mask)[0]


def feed_forward(layer: Any, attention_output: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
    """The layer's feed-forward block, ``extra`` added to its first projection before the activation:
    ``LN(x + W_2 act(W_1 x + b_1 + extra) + b_2)`` (``extra`` None: the layer's own block)."""
    intermediate = layer.intermediate.dense(attention_output)
    if extra is not None:
        intermediate = intermediate + extra
    return layer.output(layer.intermediate.intermediate_act_fn(intermediate), attention_output)


def keys_values(layer: Any, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's self-attention keys and values of ``hidden``, ``[B, heads, T, head_dim]`` each."""
    attention = layer.attention.self
    shape = (*hidden.shape[:2], -1, attention.attention_head_size)
    return (
        attention.key(hidden).view(shape).transpose(1, 2),
        attention.value(hidden).view(shape).transpose(1, 2),
    )
