"""UMGF for relation extraction: the FocalMRE paper's Table 1 row "UMGF" on MNRE (and MRE-MI's Table 2).

    x     = "... <s> head </s> ... <o> tail </o> ..."             entity markers, as every mmie RE model
    V     = CNN(crop_q(I)) for the four entity-type queries q     UMGF's targeted visual guidance
    H     = BERT(x);  X^L = GraphFusion(H, V)                     (G1)-(G8), layers/graph_fusion.py
    r     = [H; X^L] at <s> and at <o>                            [B, 2 (d_t + d)]
    p(r|x) = softmax(W drop(r) + b)                               as MTB / HVPNeT's head

Neither the UMGF paper (NER only) nor the papers that run it on MNRE say how its output was turned
into a relation: the relation head is the start-marker head of mmie's other marker models, over the
same [H; X^L] the tagger reads (docs/models/umgf.md). It reads the post's first image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn
from transformers.utils import ModelOutput

from mmie.features.processor import query_region_relation_processor
from mmie.models.base import RelationClassificationOutput
from mmie.models.registry import register_model
from mmie.models.text.relation import MarkedRelationModel
from mmie.models.umgf.configuration import UmgfRelationConfig
from mmie.models.umgf.graph_model import GraphFusionMixin

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder


@dataclass
class UmgfRelationOutput(RelationClassificationOutput):
    """RE output plus ``gates [B, L, n, o]``: each layer's mean gate of each sub-word-object edge (0: no edge)."""

    gates: torch.Tensor | None = None


@register_model("umgf_re", config=UmgfRelationConfig, processor=query_region_relation_processor)
class UmgfRelationClassifier(GraphFusionMixin, MarkedRelationModel):
    """UMGF RE: marked text fused with one crop per entity type, classifier over [H; X^L] at <s> and <o>."""

    output_class: ClassVar[type[ModelOutput]] = UmgfRelationOutput
    model_config: UmgfRelationConfig

    def __init__(
        self,
        config: UmgfRelationConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder,
    ) -> None:
        super().__init__(config, labels, text_encoder)
        self.build_graph_fusion(config, vision_encoder, self.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(2 * (self.hidden_size + config.fusion_dim), len(labels))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        image_mask: torch.Tensor,
        region_mask: torch.Tensor,
        image_features: torch.Tensor | None = None,  # the whole picture: not a node (the crops are)
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        region_pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> UmgfRelationOutput:
        text = self.encode_text(input_ids, attention_mask, token_type_ids)  # H [B, n, d_t]
        fused = self.fuse(text, attention_mask, image_mask, region_mask, region_features, region_pixel_values)
        markers = self.marker_vectors(torch.cat([text, fused.words], dim=-1), head_start, tail_start)  # [B, 2, d_t + d]
        logits = self.classifier(self.dropout(markers.flatten(1)))  # r: [B, 2 (d_t + d)]
        return UmgfRelationOutput(loss=self.loss(logits, labels), logits=logits, gates=fused.gates)
