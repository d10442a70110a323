"""HVPNeT's hierarchical visual prefix with dynamic gated aggregation (Chen et al., NAACL Findings 2022, sec. 3).

Each visual block (the whole image, or one of its crops) comes as S scales of pooled tokens: the
backbone's S stages, each average-pooled to the same T = cells^2 positions (:mod:`mmie.encoders.multiscale`).
The steps, numbered in order (the paper's own text is not in the shared papers; the reference code,
zjunlp/HVPNeT ``models/bert_model.py``, was read to check each one):

    V_s   = pooled stage s of the block                        [T, C_s]         (1)  sec. 3.1
    G_s   = M_s(V_s) = W_2 tanh(W_1 V_s)                       [T, 2 d]         (2)  sec. 3.1 (one map per scale)
    z     = flatten(1/S sum_s G_s)                             [T * 2 d]        (3)  sec. 3.3
    a^l   = softmax(LeakyReLU(W_g^l z))                        [S], sum_s = 1   (4)  sec. 3.3, one gate per layer l
    P^l   = sum_s a^l_s G_s = [K_p^l | V_p^l]                  [T, 2 d]         (5)  sec. 3.3
    H^l   = softmax(Q^l [K_p^l; K^l]^T / sqrt d_h) [V_p^l; V^l]                 (6)  sec. 3.2, the encoder's own attention

d = heads x head size of the text encoder, so P^l splits into the keys and the values of layer l,
by heads. Every block of a post (image, crops; every image for HVPNeT-MI) gets its own gate values
and contributes its T tokens to the prefix; blocks that are padding (no image, fewer crops) are
masked: their tokens get exactly zero attention (eq. 6 through :func:`encode_with_prefix`).

Deviations from the reference code, on purpose:

* The reference concatenates the four stages, maps the 3840 values with ONE MLP to 4 x 2 x 768 and
  splits that into the 4 parts the gate mixes, so its gate mixes four learned views of all stages
  (and its ``view(bsz, 4, 3840)`` of the ``[bsz, 3840, 2, 2]`` maps mixes channels into positions).
  Here each scale has its own map M_s (eq. 2), so a^l weighs the stages themselves, as the paper
  describes the aggregation; the bottleneck (800) and tanh are the reference's.
* The reference reshapes ``[bsz, 16, 768]`` keys straight to ``[bsz, 12, 16, 64]`` (positions and heads
  interleaved); here the 2d values of a token are split by heads as the encoder's own keys are.
* The reference attends to absent crops (zero images); here they are masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PretrainedConfig

from mmie.models.layers.visual_prefix import AttentionShape, Prefix


@dataclass
class GatedPrefix:
    """The prefix of every layer and the gates that made it: ``gates [L, B, P, S]`` (layer, post, block, scale)."""

    prefix: Prefix
    gates: torch.Tensor


class HierarchicalVisualPrefix(nn.Module):
    """Eq. 1-5: multi-scale tokens of P blocks per post -> per-layer prefix keys and values (eq. 6's K_p, V_p)."""

    def __init__(
        self, stage_dims: Sequence[int], tokens_per_block: int, text_config: PretrainedConfig, bottleneck: int
    ) -> None:
        super().__init__()
        self.shape = AttentionShape.from_config(text_config)
        self.stage_dims = tuple(int(dim) for dim in stage_dims)
        self.tokens_per_block = tokens_per_block
        width = 2 * self.shape.num_heads * self.shape.head_dim  # [keys | values] of one layer
        # M_s of eq. 2, one per scale (the reference's Linear(3840, 800) -> Tanh -> Linear(800, 4 x 2 x 768))
        self.scale_maps = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, bottleneck), nn.Tanh(), nn.Linear(bottleneck, width))
            for dim in self.stage_dims
        )
        # W_g^l of eq. 4, one per text-encoder layer (the reference's Linear(4 x 768 x 2, 4) x 12)
        self.gates = nn.ModuleList(
            nn.Linear(tokens_per_block * width, len(self.stage_dims)) for _ in range(self.shape.num_layers)
        )

    def scale_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Eq. 1-2: ``tokens [B, P, T, sum C_s]`` -> G ``[S, B, P, T, 2d]``."""
        if tokens.shape[-1] != sum(self.stage_dims):
            raise ValueError(f"visual tokens have {tokens.shape[-1]} values, the scales {sum(self.stage_dims)}")
        scales = tokens.split(self.stage_dims, dim=-1)  # V_1 .. V_S, eq. 1
        return torch.stack([scale_map(scale) for scale_map, scale in zip(self.scale_maps, scales)])

    def layer_gates(self, scale_features: torch.Tensor) -> torch.Tensor:
        """Eq. 3-4: G ``[S, B, P, T, 2d]`` -> a ``[L, B, P, S]``, each row summing to 1."""
        summary = scale_features.mean(dim=0).flatten(-2)  # z: [B, P, T * 2d]
        return torch.stack([nn.functional.leaky_relu(gate(summary)).softmax(dim=-1) for gate in self.gates])

    def forward(self, tokens: torch.Tensor, block_mask: torch.Tensor) -> GatedPrefix:
        """``tokens [B, P, T, sum C_s]`` (T = ``tokens_per_block``), ``block_mask [B, P]`` (False: padding)."""
        batch, blocks, length, _ = tokens.shape
        if length != self.tokens_per_block:
            raise ValueError(f"blocks have {length} tokens, the gates were built for {self.tokens_per_block}")
        scale_features = self.scale_features(tokens)
        gates = self.layer_gates(scale_features)
        heads = (batch, blocks * length, self.shape.num_heads, self.shape.head_dim)
        key_values = []
        for alpha in gates:  # one layer l at a time
            mixed = torch.einsum("bps,sbptw->bptw", alpha, scale_features)  # P^l, eq. 5
            keys, values = mixed.reshape(batch, blocks * length, -1).chunk(2, dim=-1)  # [B, P*T, d] each
            # [B, P*T, d] -> [B, heads, P*T, head_dim], the layout of the encoder's own keys and values
            key_values.append((keys.reshape(heads).transpose(1, 2), values.reshape(heads).transpose(1, 2)))
        token_mask = block_mask.bool().unsqueeze(-1).expand(-1, -1, length).reshape(batch, blocks * length)
        return GatedPrefix(Prefix(tuple(key_values), token_mask), gates)
