"""A pre-LN Transformer layer over visual tokens (the CLIP ViT layer), with an optional prefix.

    V' = V + Attn(LN_1(V) W_q, [K_p; LN_1(V) W_k], [V_p; LN_1(V) W_v]) W_o
    V'' = V' + MLP(LN_2(V'))

The prefix ``(K_p, V_p)`` is what MKGformer's prefix-guided interaction puts there: the keys and
values of a text layer (``[B, heads, P, head_dim]`` each), so the visual tokens attend to the text
as well as to each other. Without a prefix it is the plain ViT layer (HVFormer's vision layers).
Masked tokens (padding) are never attended to, in the prefix or in the sequence; a token without
any real key to attend to gets a zero attention output.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class VisionLayer(nn.Module):
    def __init__(self, hidden_size: int, heads: int, intermediate_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden_size // heads
        self.norm1 = nn.LayerNorm(hidden_size)
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, intermediate_size), nn.GELU(), nn.Linear(intermediate_size, hidden_size)
        )
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:2], self.heads, self.head_dim).transpose(1, 2)  # [B, L, d] -> [B, H, L, hd]

    def forward(
        self,
        tokens: torch.Tensor,
        mask: torch.Tensor,
        prefix: tuple[torch.Tensor, torch.Tensor] | None = None,
        prefix_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``tokens [B, L, d]``, ``mask [B, L]``; ``prefix``: keys and values ``[B, H, P, hd]``, ``prefix_mask [B, P]``."""
        queries, keys, values = (self._heads(x) for x in self.qkv(self.norm1(tokens)).chunk(3, dim=-1))
        key_mask = mask.bool()
        if prefix is not None:
            assert prefix_mask is not None
            keys = torch.cat([prefix[0], keys], dim=2)  # [K_p; K], prefix first
            values = torch.cat([prefix[1], values], dim=2)
            key_mask = torch.cat([prefix_mask.bool(), key_mask], dim=1)
        scores = queries @ keys.transpose(-1, -2) / math.sqrt(self.head_dim)  # [B, H, L, P + L]
        scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=-1) * key_mask[:, None, None, :].to(scores.dtype)  # exact zeros where masked
        attended = (self.dropout(weights) @ values).transpose(1, 2).reshape(tokens.shape)
        tokens = tokens + self.out(attended)
        tokens = tokens + self.dropout(self.mlp(self.norm2(tokens)))
        return tokens * mask.unsqueeze(-1).to(tokens.dtype)  # padding stays zero
