"""BERT+SG+Att, the scene-graph baseline of the MNRE paper (Zheng et al., ICME 2021; row of FocalMRE's Table 1).

The MNRE paper describes it in one sentence: BERT's entity representation, and an attention that
weighs the visual objects of the image's scene graph by their semantic similarity to the text. No
code was released; this is that sentence in MEGA's own terms (the same authors, the same encoder
and scene-graph features), with d the text encoder's width and N object slots of D-d features:

    H = BERT(x)                                         marked text, [B, T, d]
    r_e = [h_<s> ; h_<o>]                               entity representation, [B, 2d]            (1)
    O = W_o F                                           objects, [B, N, 2d]                       (2)
    alpha = softmax_n((W_q r_e) . (W_k O_n) / sqrt(2d)) over the post's objects, [B, N]         (3)
    v = sum_n alpha_n W_v O_n                           [B, 2d]                                   (4)
    p(y | x, I) = softmax(W_c dropout([r_e ; v]))                                                (5)

Empty object slots get no weight; a post without objects (no image) gets v = 0. The numbers are
this file's. Deviations and choices: docs/models/mega.md.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import scene_graph_relation_processor
from mmie.models.mega.configuration import BertSgAttConfig
from mmie.models.mega.scene_graph_model import SceneGraphRelationModel, SceneGraphRelationOutput
from mmie.models.registry import register_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@register_model("bert_sg_att", config=BertSgAttConfig, processor=scene_graph_relation_processor)
class BertSgAttClassifier(SceneGraphRelationModel):
    """BERT+SG+Att: the entity pair attends over the scene graph's objects; [r_e; v] is classified."""

    def __init__(self, config: BertSgAttConfig, labels: list[str], text_encoder: PreTrainedModel) -> None:
        super().__init__(config, labels, text_encoder)  # W_o (2), width 2d
        width = self.width
        self.query = nn.Linear(width, width)  # W_q (3)
        self.key = nn.Linear(width, width)  # W_k (3)
        self.value = nn.Linear(width, width)  # W_v (4)
        self.classifier = nn.Linear(2 * width, len(labels))  # W_c (5)

    def object_attention(
        self, entities: torch.Tensor, objects: torch.Tensor, object_mask: torch.Tensor
    ) -> torch.Tensor:
        """(3): alpha ``[B, N]``, summing to 1 over each post's objects (all 0 for a post without any)."""
        scores = (self.key(objects) @ self.query(entities)[..., None]).squeeze(-1) / math.sqrt(objects.size(-1))
        mask = object_mask.bool()
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        return scores.softmax(dim=-1) * mask.any(dim=-1, keepdim=True).to(scores.dtype)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        object_features: torch.Tensor,
        object_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SceneGraphRelationOutput:
        _, entities = self.entity_pair(input_ids, attention_mask, head_start, tail_start, token_type_ids)  # (1)
        objects = self.objects(object_features)  # (2) [B, N, 2d]
        alpha = self.object_attention(entities, objects, object_mask)  # (3)
        visual = (alpha[..., None] * self.value(objects)).sum(dim=1)  # (4) [B, 2d]
        logits = self.classifier(self.dropout(torch.cat([entities, visual], dim=-1)))  # (5)
        return SceneGraphRelationOutput(loss=self.loss(logits, labels), logits=logits, object_attention=alpha)
