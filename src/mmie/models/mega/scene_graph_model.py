"""What MEGA and BERT+SG+Att share: the output with the object attention, and the entity pair and
the projected objects both start from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn
from transformers.utils import ModelOutput

from mmie.models.base import RelationClassificationOutput
from mmie.models.text.relation import MarkedRelationModel

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.models.mega.configuration import SceneGraphRelationConfig


@dataclass
class SceneGraphRelationOutput(RelationClassificationOutput):
    """RE output of the scene-graph models. ``object_attention``: MEGA's A ``[B, N, T]`` (each object's
    weights over the text), BERT+SG+Att's ``[B, N]`` (the entity pair's weights over the objects)."""

    object_attention: torch.Tensor | None = None


class SceneGraphRelationModel(MarkedRelationModel):
    """Base of the scene-graph RE models: r_e = [h_<s>; h_<o>] (width 2d, 1536 for BERT-base, as in the
    authors' ``BERTEntityEncoder``) and the objects' features projected to that width."""

    output_class: ClassVar[type[ModelOutput]] = SceneGraphRelationOutput

    def __init__(self, config: SceneGraphRelationConfig, labels: list[str], text_encoder: PreTrainedModel) -> None:
        super().__init__(config, labels, text_encoder)
        self.width = 2 * self.hidden_size
        self.objects = nn.Linear(config.object_feature_size, self.width)  # W_o
        self.dropout = nn.Dropout(config.dropout)

    def entity_pair(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        token_type_ids: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(H [B, T, d], r_e [B, 2d])``: the text's vectors and the two start-marker vectors side by side."""
        hidden = self.encode_text(input_ids, attention_mask, token_type_ids)
        return hidden, self.marker_vectors(hidden, head_start, tail_start).flatten(1)  # [B, 2, d] -> [B, 2d]
