"""The post's images and their crops as one token sequence per image, for the hybrid-Transformer models.

MKGformer and HVFormer feed a ViT the whole image's patches followed by the patches of its grounding
crops, each crop with its own position embeddings (their ``CLIPVisionEmbeddings``: ``aux`` and
``rcnn`` positions). mmie's vision encoders give one vector per image and per crop (frozen, from
the feature cache), so a token here is one such vector:

    x_{m,0} = LN(W_v g_m) + e_0            the whole image m           [d_t]
    x_{m,j} = LN(W_v o_{m,j}) + e_j        its crop j = 1..k           [d_t]

``e_j``: a learned embedding of the token's place (image, crop 1, crop 2, ...), the counterpart of
the crops' own position embeddings. Padded images and missing crops are masked, never attended to.
"""

from __future__ import annotations

import torch
from torch import nn


class ImageTokens(nn.Module):
    def __init__(self, image_dim: int, hidden_size: int, regions: int) -> None:
        super().__init__()
        self.projection = nn.Linear(image_dim, hidden_size)  # W_v
        self.norm = nn.LayerNorm(hidden_size)
        self.place = nn.Embedding(1 + regions, hidden_size)  # e_0 (image), e_1..e_k (crops)

    def forward(
        self, images: torch.Tensor, image_mask: torch.Tensor, regions: torch.Tensor, region_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``images [B, M, D]``, ``regions [B, M, k, D]`` and their masks -> tokens ``[B, M, 1 + k, d_t]``
        (zero where masked) and their mask ``[B, M, 1 + k]``."""
        vectors = torch.cat([images.unsqueeze(2), regions], dim=2)  # [B, M, 1 + k, D]
        mask = torch.cat([image_mask.unsqueeze(2), region_mask], dim=2).bool()
        tokens = self.norm(self.projection(vectors)) + self.place.weight[: vectors.shape[2]]
        return tokens * mask.unsqueeze(-1).to(tokens.dtype), mask
