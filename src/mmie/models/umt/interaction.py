"""UMT's multimodal interaction module (Yu et al., ACL 2020, sec. 3.2), shared by its tagger and its
relation classifier. Numbers (U2), (U5)-(U8) are those of :mod:`mmie.models.umt.umt`:

    V = W_u U,  V' = W_u' U                two projections of the regions U to d           (U2)
    T_m = SelfAttn_m(T)                                                                    (U5)
    A = CMT(T_m, V)                         word-aware visual representation [B, n, d]     (U6)
    Q = CMT(V', T_m);  H = CMT(T_m, Q)      image-aware word representation [B, n, d]     (U7)
    g = sigmoid(W_g [H; A]);  B = g * A     visual gate                                    (U8)

CMT is the cross-modal Transformer layer of :mod:`mmie.models.layers.cross_attention`. The layers
are attributes of the model itself (a mixin, as HVPNeT's prefix): their state-dict names are UMT's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.models.layers.cross_attention import CrossModalLayer

if TYPE_CHECKING:
    from transformers import PretrainedConfig


class MultimodalInteractionMixin:
    """Builds (U2), (U5)-(U8) on the model (:meth:`build_interaction`) and runs them (:meth:`interact`)."""

    image_projection: nn.Linear
    image_projection_text: nn.Linear
    text_attention: CrossModalLayer
    text_to_image: CrossModalLayer
    image_to_text: CrossModalLayer
    text_to_text: CrossModalLayer
    gate: nn.Linear

    def build_interaction(self, text_config: PretrainedConfig, image_dim: int) -> None:
        """The layers, each as wide as the text encoder (``text_config``); regions are ``image_dim`` wide."""
        d = text_config.hidden_size
        self.image_projection = nn.Linear(image_dim, d)  # W_u, U2
        self.image_projection_text = nn.Linear(image_dim, d)  # W_u', U2
        self.text_attention = CrossModalLayer.like_encoder(text_config)  # U5
        self.text_to_image = CrossModalLayer.like_encoder(text_config)  # U6
        self.image_to_text = CrossModalLayer.like_encoder(text_config)  # U7, Q
        self.text_to_text = CrossModalLayer.like_encoder(text_config)  # U7, H
        self.gate = nn.Linear(2 * d, d)  # W_g, U8

    def interact(
        self,
        text: torch.Tensor,  # T [B, n, d], U1
        text_mask: torch.Tensor,  # [B, n] bool
        grid: torch.Tensor,  # U [B, R, D]
        present: torch.Tensor,  # [B] bool: the post has an image
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(H, B)``, both ``[B, n, d]``: the image-aware words and the gated visual part (zero without an image)."""
        hidden = self.text_attention(text, text, text_mask)  # T_m, U5
        word_aware = self.text_to_image(hidden, self.image_projection(grid))  # A, U6
        regions = self.image_to_text(self.image_projection_text(grid), hidden, text_mask)  # Q [B, R, d], U7
        image_aware = self.text_to_text(hidden, regions)  # H, U7
        gate = torch.sigmoid(self.gate(torch.cat([image_aware, word_aware], dim=-1)))  # g, U8
        visual = gate * word_aware * present[:, None, None].to(gate.dtype)  # B (none without an image)
        return image_aware, visual
