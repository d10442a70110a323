"""Additive (tanh) attention of the stacked-attention family (Yang et al., CVPR 2016, "SAN"), the
attention of GVATT's visual attention and of AdaCAN's two co-attentions.

    z_qi  = tanh(W_k k_i  (+)  (W_q q + b_q))     (+): the query's vector added to every key's column
    a_q   = softmax_i(w_a^T z_qi)                 over the real keys only (key_mask)

The papers write (+) for adding a vector to each column of a matrix (SAN, sec. 3.3). Read as a
concatenation instead, w_a^T splits into a key part and a query part, and the query part adds the
same score to every key: the softmax, and so the attention, would not depend on the query at all.
The score's bias b_a is left out for the same reason (it cancels in the softmax).
"""

from __future__ import annotations

import torch
from torch import nn


class AdditiveAttention(nn.Module):
    """Weights ``[B, Q, K]`` of ``Q`` queries over ``K`` keys: ``a_q = softmax_i(w_a^T tanh(W_k k_i + W_q q + b_q))``."""

    def __init__(self, query_dim: int, key_dim: int, dim: int) -> None:
        super().__init__()
        self.key = nn.Linear(key_dim, dim, bias=False)  # W_k
        self.query = nn.Linear(query_dim, dim)  # W_q, b_q
        self.score = nn.Linear(dim, 1, bias=False)  # w_a

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``queries [B, Q, dq]``, ``keys [B, K, dk]``, ``key_mask [B, K]`` (False: padding) -> the
        weights ``[B, Q, K]``, summing to 1 over the real keys; a row without a real key is all 0."""
        z = torch.tanh(self.key(keys)[:, None, :, :] + self.query(queries)[:, :, None, :])  # [B, Q, K, dim]
        scores = self.score(z).squeeze(-1)  # [B, Q, K]
        if key_mask is None:
            return scores.softmax(dim=-1)
        real = key_mask.bool()[:, None, :]  # [B, 1, K]
        weights = scores.masked_fill(~real, torch.finfo(scores.dtype).min).softmax(dim=-1)
        return weights * real.to(weights.dtype)  # no real key (no image, no word): zeros, never NaN
