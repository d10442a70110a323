"""Dense co-attention between words and objects: self-attention on each side, then words guided by the
objects (the self-attention and guided-attention units of MCAN, Yu et al. CVPR 2019, that OCSGA's
dense co-attention stacks).

    Y^l = SA(Y^{l-1})                 objects attend over the post's objects          (D1)
    X^l = SA(X^{l-1})                 words attend over the post's words              (D2)
    X^l, A^l = GA(X^l, Y^l)           words attend over the objects; A^l its weights  (D3)

Each unit is a :class:`~mmie.models.layers.cross_attention.CrossModalLayer` (attention, residual,
layer norm, feed-forward) of the text encoder's size. (D1)-(D3) are this file's numbers.
A row without any real key (a post without objects or words) attends over its padding instead of
producing NaN: the caller drops what such rows give (:func:`any_key`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mmie.models.layers.cross_attention import CrossModalLayer


def any_key(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` ``[B, K]`` with every key switched on in rows that have none (no NaN from a softmax over nothing)."""
    mask = mask.bool()
    return mask | ~mask.any(dim=1, keepdim=True)


class DenseCoAttention(nn.Module):
    """``layers`` stacked co-attention layers (D1)-(D3) between words X and objects Y."""

    def __init__(self, encoder_config: Any, layers: int) -> None:
        super().__init__()
        self.object_attention = nn.ModuleList(CrossModalLayer.like_encoder(encoder_config) for _ in range(layers))
        self.word_attention = nn.ModuleList(CrossModalLayer.like_encoder(encoder_config) for _ in range(layers))
        self.guided_attention = nn.ModuleList(CrossModalLayer.like_encoder(encoder_config) for _ in range(layers))

    def forward(
        self, words: torch.Tensor, word_mask: torch.Tensor, objects: torch.Tensor, object_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``words`` ``[B, n, d]``, ``objects`` ``[B, K, d]`` -> the guided words ``[B, n, d]`` and the
        last layer's word-to-object attention ``[B, heads, n, K]`` (0 on padded objects)."""
        word_keys, object_keys = any_key(word_mask), any_key(object_mask)
        weights = words.new_zeros(0)
        for attend_objects, attend_words, guided in zip(
            self.object_attention, self.word_attention, self.guided_attention
        ):
            objects = attend_objects(objects, objects, object_keys)  # D1
            words = attend_words(words, words, word_keys)  # D2
            assert isinstance(guided, CrossModalLayer)
            words, attention = guided.attend(words, objects, object_keys)  # D3
            assert attention is not None
            weights = attention
        return words, weights
