"""The text-image gate (FocalMRE paper, sec. 3.4, eq. 4), a shared piece of the gated fusion models.

    lambda = sigmoid(U h_text + V h_image)                          U, V: d x d (one gate per dimension)
    h_out  = (1 - lambda) * h_text + lambda * h_image

lambda near 0 keeps the text, near 1 takes the image: the model learns how much visual information
each position keeps, so an irrelevant image (or a wrong focal region) can be shut out. HVPNeT's
dynamic gate and MKGformer's fusion gates are of this family.
"""

from __future__ import annotations

import torch
from torch import nn


class TextImageGate(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.text = nn.Linear(dim, dim, bias=False)  # U
        self.image = nn.Linear(dim, dim)  # V (with the gate's bias)

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``text``, ``image``: ``[..., d]`` (broadcastable) -> ``(h_out, lambda)``, both ``[..., d]``."""
        gate = torch.sigmoid(self.text(text) + self.image(image))  # eq. 4, lambda
        return (1 - gate) * text + gate * image, gate
