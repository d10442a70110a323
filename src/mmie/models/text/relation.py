"""What the relation models share: the relation loss and the start-marker vectors."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from transformers.utils import ModelOutput

from mmie.models.base import ExtractionModel, RelationClassificationOutput, gather_positions


class MarkedRelationModel(ExtractionModel):
    """Base of the relation models: they read text with entity markers and classify the pair."""

    task: ClassVar[str] = "re"
    output_class: ClassVar[type[ModelOutput]] = RelationClassificationOutput

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        return None if labels is None else nn.functional.cross_entropy(logits, labels)

    @staticmethod
    def marker_vectors(hidden: torch.Tensor, head_start: torch.Tensor, tail_start: torch.Tensor) -> torch.Tensor:
        """``[B, 2, d_t]``: the <s> and <o> start-marker vectors (MTB's entity-start representation)."""
        return gather_positions(hidden, torch.stack([head_start, tail_start], dim=1))
