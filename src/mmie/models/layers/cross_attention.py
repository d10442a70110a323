"""The cross-modal Transformer layer (CMT) of UMT (Yu et al., ACL 2020, sec. 3.2), shared by UMT and MAF.

One BERT-style layer whose queries come from one sequence and whose keys and values come from another:

    CA_i(X, Y) = softmax([W_q X][W_k Y]^T / sqrt(d / m)) [W_v Y]     head i of m            (C1)
    MH-CA(X, Y) = W' [CA_1(X, Y); ...; CA_m(X, Y)]                                           (C2)
    P = LN(X + MH-CA(X, Y))                                                                  (C3)
    C = LN(P + FFN(P))                                                                       (C4)

(C1)-(C4) are this file's numbers for the formulas of UMT's sec. 3.2 (the paper is not in
shared/papers, so its own equation numbers are not quoted here).

With Y = X it is a self-attention layer (UMT's extra text layers, ``BertSelfEncoder`` in its code).
The attention itself is PyTorch's ``nn.MultiheadAttention``; the width, heads, feed-forward size,
dropout and layer-norm epsilon are the text encoder's (:meth:`CrossModalLayer.like_encoder`), as the
authors' code builds the layer from the BERT config.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class CrossModalLayer(nn.Module):
    def __init__(
        self,
        dim: int,
        heads: int,
        feedforward: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=attention_dropout, batch_first=True)  # C1-C2
        self.attention_norm = nn.LayerNorm(dim, eps=eps)
        self.feedforward = nn.Sequential(nn.Linear(dim, feedforward), nn.GELU(), nn.Linear(feedforward, dim))
        self.output_norm = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout)

    @classmethod
    def like_encoder(cls, config: Any) -> CrossModalLayer:
        """A layer of the text encoder's size (its Hugging Face config: BERT, RoBERTa, MiniLM ...)."""
        dim = config.hidden_size
        return cls(
            dim,
            config.num_attention_heads,
            getattr(config, "intermediate_size", 4 * dim),
            getattr(config, "hidden_dropout_prob", 0.1),
            getattr(config, "attention_probs_dropout_prob", 0.1),
            getattr(config, "layer_norm_eps", 1e-12),
        )

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``queries`` X ``[B, Q, d]`` attend over ``keys`` Y ``[B, K, d]`` (``key_mask`` ``[B, K]``, False =
        padding; every row needs one real key) -> C ``[B, Q, d]``."""
        return self.attend(queries, keys, key_mask, need_weights=False)[0]

    def attend(
        self, queries: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor | None = None, need_weights: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`forward`, and the attention weights ``[B, heads, Q, K]`` when ``need_weights``."""
        padding = None if key_mask is None else ~key_mask.bool()
        attended, weights = self.attention(
            queries, keys, keys, key_padding_mask=padding, need_weights=need_weights, average_attn_weights=False
        )
        hidden = self.attention_norm(queries + self.dropout(attended))  # C3
        return self.output_norm(hidden + self.dropout(self.feedforward(hidden))), weights  # C4
