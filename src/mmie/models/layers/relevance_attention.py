"""Relevance-modulated cross-modal attention (MRE-MI paper, sec. 4.5, eq. 2-6).

Text vectors H (queries) attend over image vectors V (keys and values); before the attention
weights are used, each (text, image) pair gets a relevance in [0, 1] computed independently of the
other images, and the weights are multiplied by it:

    H^ = H W1                                   (eq. 2)   W1: d_t x d_t
    V^ = V W2                                   (eq. 3)   W2: d_v x d_t
    R  = sigmoid(relu((H^ ⊙ V^) W3) W4)         (eq. 4)   per pair; W3: d_t x d_t, W4: d_t x 1
    a  = softmax([H Wq][V Wk]^T / sqrt(d))      (eq. 5)
    C  = (R ⊙ a) [V Wv]                         (eq. 6)

Softmax weights always sum to one, so a plain attention hands all its weight to the images even
when none of them is relevant (and to the only image of a single-image post); R can turn the
weights of irrelevant images down, towards a zero contribution. With ``relevance_modulation=False``
(Table 3, "w/o Relevance Modulation") eq. 2-4 are dropped and C = a [V Wv]: the plain cross-modal
attention the baselines use.

GLRA applies ONE module to both the global pair ([CLS] over the image vectors) and the local pair
(<s>, <o> over the region vectors), as the reference code does. ``heads > 1`` splits eq. 5-6 into
heads like the reference code (12 heads, one R shared by all heads); the paper writes one head.

Masking (not in the reference code, which attends to zero-padded images): keys with ``mask`` False
are zeroed before any projection, get exactly zero attention weight and zero relevance, and a query
without any real key gets C = 0. Their content therefore never changes any output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mmie.errors import ConfigError


@dataclass
class RelevanceAttentionOutput:
    """``context`` C ``[B, Q, d_t]``; ``attention`` a (after masking) ``[B, heads, Q, K]``;
    ``relevance`` R ``[B, Q, K]`` (0 at masked keys), None without relevance modulation."""

    context: torch.Tensor
    attention: torch.Tensor
    relevance: torch.Tensor | None


class RelevanceModulatedAttention(nn.Module):
    def __init__(self, text_dim: int, image_dim: int, heads: int = 1, relevance_modulation: bool = True) -> None:
        super().__init__()
        if heads < 1 or text_dim % heads:
            raise ConfigError(f"model.attention_heads: {heads} does not divide the text dimension {text_dim}")
        self.heads = heads
        self.head_dim = text_dim // heads
        self.relevance_modulation = relevance_modulation
        if relevance_modulation:  # without it these would be parameters that never get a gradient
            self.text_projection = nn.Linear(text_dim, text_dim)  # W1, eq. 2
            self.image_projection = nn.Linear(image_dim, text_dim)  # W2, eq. 3
            self.relevance_hidden = nn.Linear(text_dim, text_dim)  # W3, eq. 4
            self.relevance_score = nn.Linear(text_dim, 1)  # W4, eq. 4
        self.query = nn.Linear(text_dim, text_dim)  # Wq, eq. 5
        self.key = nn.Linear(image_dim, text_dim)  # Wk, eq. 5
        self.value = nn.Linear(image_dim, text_dim)  # Wv, eq. 6

    def relevance(self, text: torch.Tensor, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Eq. 2-4: R ``[B, Q, K]`` for every (query, key) pair, 0 where ``mask`` is False."""
        features = self.text_projection(text).unsqueeze(2) * self.image_projection(images).unsqueeze(1)  # [B,Q,K,d]
        scores = torch.sigmoid(self.relevance_score(torch.relu(self.relevance_hidden(features)))).squeeze(-1)
        return scores * mask.unsqueeze(1).to(scores.dtype)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:2], self.heads, self.head_dim).transpose(1, 2)  # [B, heads, L, d_head]

    def forward(self, text: torch.Tensor, images: torch.Tensor, mask: torch.Tensor) -> RelevanceAttentionOutput:
        """``text`` H ``[B, Q, d_t]``, ``images`` V ``[B, K, d_v]``, ``mask`` ``[B, K]`` (False = padding)."""
        mask = mask.bool()
        images = images.masked_fill(~mask.unsqueeze(-1), 0.0)  # padded content never reaches any product
        queries, keys, values = (self._split_heads(x) for x in (self.query(text), self.key(images), self.value(images)))
        scores = queries @ keys.transpose(-1, -2) / math.sqrt(self.head_dim)  # eq. 5, [B, heads, Q, K]
        key_mask = mask[:, None, None, :]
        scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
        # exp(min - max) is exactly 0 for masked keys; a query with no real key at all gets all zeros.
        attention = scores.softmax(dim=-1) * key_mask.to(scores.dtype)
        relevance = None
        weights = attention
        if self.relevance_modulation:
            relevance = self.relevance(text, images, mask)
            weights = attention * relevance.unsqueeze(1)  # R ⊙ a, one R for every head
        context = (weights @ values).transpose(1, 2).reshape(*text.shape[:2], -1)  # eq. 6
        return RelevanceAttentionOutput(context, attention, relevance)
