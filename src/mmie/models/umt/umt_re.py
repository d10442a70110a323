"""UMT with a relation head: the "UMT" rows of the MRE tables (FocalMRE paper, Table 1, on MNRE; MRE-MI
paper, Table 2, "Text + One Image"), UMT (Yu et al., ACL 2020) run as a relation classifier.

Neither paper says how UMT was adapted; this is the reading that keeps UMT's multimodal interaction
whole and puts MTB's entity-start head (the one every RE row of those tables shares) on its output:

    x = "... <s> head </s> ... <o> tail </o> ..."   entity markers (mmie.features.text)
    T = BERT(x)                                     sub-word vectors [B, n, d]                  (U1)
    V = W_u U,  V' = W_u' U                         the FIRST image's region grid U, projected  (U2)
    T_m, A, Q, H, g, B                              UMT's multimodal interaction (interaction.py) (U5-U8)
    F = [H; B]                                      the fused states UMT tags from              (U9's input)
    r = [F_<s>; F_<o>]                              the start markers of the fused states [B, 4d] (R1)
    p(r | x) = softmax(W r + b),  loss = cross-entropy                                        (R2)

Deviations: UMT's auxiliary entity-span detection (U3, U4) and its conversion matrix (U9) are left
out: they tag the words of a post, and a relation instance comes with its entities given, so RE has
no counterpart of that task. A post without an image reads a zero grid and its gated visual part B
is zeroed (UMT's code substitutes a stock picture), as the tagger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import post_image_relation_processor
from mmie.models.base import RelationClassificationOutput
from mmie.models.image_model import ImageGridMixin
from mmie.models.registry import register_model
from mmie.models.text.relation import MarkedRelationModel
from mmie.models.umt.configuration import UmtRelationConfig
from mmie.models.umt.interaction import MultimodalInteractionMixin

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder


@register_model("umt_re", config=UmtRelationConfig, processor=post_image_relation_processor)
class UmtRelationClassifier(MultimodalInteractionMixin, ImageGridMixin, MarkedRelationModel):
    """UMT RE: UMT's cross-modal interaction and visual gate, classifier over the fused <s>, <o> states."""

    model_config: UmtRelationConfig

    def __init__(
        self,
        config: UmtRelationConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder,
    ) -> None:
        super().__init__(config, labels, text_encoder)
        self.vision_encoder = vision_encoder
        self.dropout = nn.Dropout(config.dropout)
        self.build_interaction(text_encoder.config, self.image_dim)  # U2, U5-U8
        self.classifier = nn.Linear(4 * self.hidden_size, len(labels))  # W, R2

    # Takes the batch of its own processor: the marked text's plus the image grid of the NER models.
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        image_mask: torch.Tensor,
        image_features: torch.Tensor | None = None,  # the global vectors: unused, UMT reads the grid
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> RelationClassificationOutput:
        text = self.dropout(self.encode_text(input_ids, attention_mask, token_type_ids))  # T, U1 (dropout as UMT)
        grid, present = self.image_grid(image_mask, region_features, pixel_values)  # U [B, R, D]
        image_aware, visual = self.interact(text, attention_mask.bool(), grid, present)  # H, B: U5-U8
        fused = torch.cat([image_aware, visual], dim=-1)  # F = [H; B] [B, n, 2d]
        relation = self.marker_vectors(fused, head_start, tail_start).flatten(1)  # [B, 2, 2d] -> r [B, 4d], R1
        logits = self.classifier(relation)  # R2
        return RelationClassificationOutput(loss=self.loss(logits, labels), logits=logits)
