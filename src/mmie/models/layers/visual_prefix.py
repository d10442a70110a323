"""Visual prefix: image-derived keys and values prepended in every self-attention layer of a text encoder.

The visual prompt of HVPNeT (Chen et al., 2022) and TPM-MI (MNER-MI paper, sec. 4.4-4.5):

    P^l   = W_p^l U                                   (eq. 1)   visual tokens -> per-layer prompts
    K_p^l = phi_k^l P^l ;  V_p^l = phi_v^l P^l        (eq. 3)   prompts -> extra keys / values
    H^l   = softmax(Q^l [K_p^l; K^l]^T) [V_p^l; V^l]  (eq. 4)   the encoder's own attention, prefix first

Equation 4 is not re-implemented here. The prefix keys and values go into the Hugging Face encoder
as a ``DynamicCache`` passed as the encoder's cache argument (``cache``; ``past_key_values`` before
transformers 5.2x): each ``BertSelfAttention`` concatenates the cache ahead of its own keys and
values (``cache.update``) and then runs its usual attention kernel (eager, sdpa, ...). Two details
make this exact rather than approximate:

* the 2D attention mask is ``[prefix_mask; attention_mask]``, so padded (missing) images get exactly
  zero attention weight. The reference code attends to its zero-padded images; this code does not.
* position ids are passed explicitly. BERT-family embeddings otherwise start counting positions at
  the cache length, which would shift every text position by the number of prefix tokens.

Any BERT-family encoder works (BERT, MiniLM, RoBERTa, ...). Layer count, heads and head size come
from its config. An encoder whose self-attention takes no cache (MPNet: its relative position bias
covers the text only) cannot carry a prefix; :func:`require_prefix_support` says so when the model is built.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndCrossAttentions

from mmie.errors import ConfigError


@dataclass(frozen=True)
class AttentionShape:
    """Self-attention geometry of a text encoder, read from its config."""

    num_layers: int
    num_heads: int
    head_dim: int
    hidden_size: int

    @classmethod
    def from_config(cls, config: PretrainedConfig) -> AttentionShape:
        num_heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // num_heads
        return cls(config.num_hidden_layers, num_heads, head_dim, config.hidden_size)


@dataclass
class Prefix:
    """Per-layer prefix keys and values, ``[B, heads, M, head_dim]`` each, and which of the M slots are real."""

    key_values: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    mask: torch.Tensor  # [B, M] bool, False = padded slot (never attended to)

    @property
    def length(self) -> int:
        return self.mask.shape[1]


class PrefixKeyValues(nn.Module):
    """Eq. 3: turn the per-layer prompts P^l [B, M, d_t] into extra keys K_p^l and values V_p^l."""

    def __init__(self, text_config: PretrainedConfig) -> None:
        super().__init__()
        self.shape = AttentionShape.from_config(text_config)
        inner = self.shape.num_heads * self.shape.head_dim
        # phi_k^l and phi_v^l of one layer side by side: hidden -> [keys | values]
        self.phi = nn.ModuleList(
            nn.Linear(self.shape.hidden_size, 2 * inner, bias=False) for _ in range(self.shape.num_layers)
        )

    def forward(self, prompts: torch.Tensor, mask: torch.Tensor) -> Prefix:
        """``prompts`` [L, B, M, d_t], ``mask`` [B, M] (1 = real visual token)."""
        num_layers, batch, length, _ = prompts.shape
        if num_layers != self.shape.num_layers:
            raise ValueError(f"got prompts for {num_layers} layers, the text encoder has {self.shape.num_layers}")
        key_values = []
        for phi_l, prompt_l in zip(self.phi, prompts):
            keys, values = phi_l(prompt_l).chunk(2, dim=-1)  # [B, M, H*hd] each
            # [B, M, H*hd] -> [B, H, M, hd], the layout of the encoder's own keys and values
            heads = (batch, length, self.shape.num_heads, self.shape.head_dim)
            key_values.append((keys.view(heads).transpose(1, 2), values.view(heads).transpose(1, 2)))
        return Prefix(tuple(key_values), mask.bool())


class VisualPrefix(nn.Module):
    """Eq. 1 + eq. 3: visual tokens U [B, M, d_v] -> a :class:`Prefix` for every layer of the text encoder."""

    def __init__(self, visual_dim: int, text_config: PretrainedConfig, dropout: float = 0.0) -> None:
        super().__init__()
        shape = AttentionShape.from_config(text_config)
        self.num_layers, self.hidden_size = shape.num_layers, shape.hidden_size
        # W_p^1 .. W_p^L stacked: one matrix d_v -> L * d_t
        self.prompt_projection = nn.Linear(visual_dim, self.num_layers * self.hidden_size, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.key_values = PrefixKeyValues(text_config)

    def prompts(self, visual_tokens: torch.Tensor) -> torch.Tensor:
        """Eq. 1: P^l = W_p^l U for every layer l, returned as [L, B, M, d_t]."""
        batch, length, _ = visual_tokens.shape
        stacked = self.prompt_projection(visual_tokens)  # [B, M, L * d_t]
        # [B, M, L * d_t] -> [B, M, L, d_t] -> [L, B, M, d_t]
        return self.dropout(stacked.view(batch, length, self.num_layers, self.hidden_size).permute(2, 0, 1, 3))

    def forward(self, visual_tokens: torch.Tensor, visual_mask: torch.Tensor) -> Prefix:
        return self.key_values(self.prompts(visual_tokens), visual_mask)


def text_position_ids(text_encoder: PreTrainedModel, input_ids: torch.Tensor) -> torch.Tensor:
    """The position ids the encoder computes for ``input_ids`` when no cache is given.

    Needed because the embeddings of the BERT family offset positions by the cache length.
    """
    # The family's own embeddings module: what it holds differs by architecture, hence Any.
    embeddings: Any = text_encoder.embeddings
    if hasattr(embeddings, "create_position_ids_from_input_ids"):
        # RoBERTa family: positions start after padding_idx and pads keep padding_idx
        return embeddings.create_position_ids_from_input_ids(input_ids, embeddings.padding_idx)
    batch, length = input_ids.shape
    return torch.arange(length, device=input_ids.device).expand(batch, length)


def encode_with_prefix(
    text_encoder: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    prefix: Prefix | None,
    token_type_ids: torch.Tensor | None = None,
    **kwargs,
) -> BaseModelOutputWithPoolingAndCrossAttentions:
    """Run ``text_encoder`` on the text with ``prefix`` prepended in every self-attention layer (eq. 4).

    With ``prefix=None`` this is the plain encoder call. The prefix never changes the text's position ids.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if prefix is None:
        return text_encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, **kwargs)
    if text_encoder.training and any(getattr(m, "gradient_checkpointing", False) for m in text_encoder.modules()):
        # checkpointed layers drop `past_key_values` (transformers' GradientCheckpointingLayer): the images would vanish
        raise ConfigError("gradient checkpointing of the text encoder is not supported with a visual prefix")
    if len(prefix.key_values) != text_encoder.config.num_hidden_layers:
        raise ValueError(
            f"prefix has {len(prefix.key_values)} layers, the text encoder {text_encoder.config.num_hidden_layers}"
        )
    # A fresh cache per call: self-attention appends the text keys to it as it runs.
    cache = DynamicCache(ddp_cache_data=prefix.key_values)
    prefixed_mask = torch.cat([prefix.mask.to(attention_mask.dtype), attention_mask], dim=1)  # [B, M + T]
    return text_encoder(
        input_ids=input_ids,
        attention_mask=prefixed_mask,
        token_type_ids=token_type_ids,
        position_ids=text_position_ids(text_encoder, input_ids),
        **{cache_keyword(text_encoder): cache},
        **kwargs,
    )


def require_prefix_support(text_encoder: PreTrainedModel) -> None:
    """ConfigError when ``text_encoder`` takes no key/value cache: the prefix would be silently dropped."""
    parameters = inspect.signature(text_encoder.forward).parameters
    if "cache" not in parameters and "past_key_values" not in parameters:
        model_type = getattr(text_encoder.config, "model_type", type(text_encoder).__name__)
        raise ConfigError(
            f"model.encoder: a visual prefix needs a text encoder whose self-attention takes prefix keys and "
            f"values (a key/value cache: BERT, RoBERTa, MiniLM, ...); {model_type!r} takes none. "
            "Pick such an encoder, or a model without a visual prefix"
        )


def cache_keyword(text_encoder: PreTrainedModel) -> str:
    """The encoder's name for its key/value cache argument: ``cache`` from transformers 5.2x on
    (``past_key_values`` is deprecated there and goes in 5.40), ``past_key_values`` before."""
    parameters = inspect.signature(text_encoder.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"
