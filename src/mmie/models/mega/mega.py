"""MEGA, "Multimodal Relation Extraction with Efficient Graph Alignment" (Zheng et al., ACM MM 2021).

The relation of two entities is read from the text and from the scene graph of the post's image,
aligned with the text twice: by meaning (semantic alignment) and by graph structure (structural
alignment). Following the authors' code (thecharm/Mega, ``BERTEntityEncoder``), with
d = the text encoder's width and N object slots of D-dimensional scene-graph features:

    H = BERT(x)                                      marked text, [B, T, d]
    r_e = [h_<s> ; h_<o>]                            entity representation, [B, 2d]              (1)
    H' = W_h H                                       text nodes, [B, T, 2d]                      (2)
    O = W_o F                                        objects, [B, N, 2d]                         (3)
    A = softmax((W_q O)(W_k H')^T / sqrt(2d))        semantic alignment: objects attend the text (4)
    S = sigmoid(A (W_v H'))                          [B, N, 2d]                                  (5)
    G = M H'                                         structural alignment, M [B, N, T]           (6)
    Z = W_1 [S ; G]                                  [B, N, 2d]                                  (7)
    z = sum_n Z_n                                    over the post's objects                     (8)
    r = W_2 [r_e ; z]                                [B, 2d]                                     (9)
    p(y | x, I) = softmax(W_c dropout(r))            OpenNRE's SoftmaxNN head                   (10)

M is computed before training from the text's dependency graph and the scene graph
(:mod:`mmie.scenegraph.align`); the processor gives it as ``structural_alignment [B, T, N]``.
The numbers (1)-(10) are this file's: the paper is not in shared/papers, so they follow the
authors' code line by line.

Deviations (docs/models/mega.md): padded text positions are masked out of (4) and empty object
slots out of (8) (the authors' code attends padding and always has 10 objects); M is REGAL's
similarity computed exactly rather than through its low-rank embeddings, on each word's first
sub-word; the text graph is the file's parse or, with ``text_graph: chain``, an approximation.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import scene_graph_relation_processor
from mmie.models.mega.configuration import MegaConfig
from mmie.models.mega.scene_graph_model import SceneGraphRelationModel, SceneGraphRelationOutput
from mmie.models.registry import register_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@register_model("mega", config=MegaConfig, processor=scene_graph_relation_processor)
class MegaClassifier(SceneGraphRelationModel):
    """MEGA: semantic and structural alignment of the scene graph with the text, beside [h_<s>; h_<o>]."""

    def __init__(self, config: MegaConfig, labels: list[str], text_encoder: PreTrainedModel) -> None:
        super().__init__(config, labels, text_encoder)  # W_o (3), width 2d
        width = self.width
        self.text_nodes = nn.Linear(self.hidden_size, width)  # W_h (2)
        self.query = nn.Linear(width, width)  # W_q (4)
        self.key = nn.Linear(width, width)  # W_k (4)
        self.value = nn.Linear(width, width)  # W_v (5)
        self.merge_alignments = nn.Linear(2 * width, width)  # W_1 (7)
        self.fuse = nn.Linear(2 * width, width)  # W_2 (9)
        self.classifier = nn.Linear(width, len(labels))  # W_c (10)

    def semantic_alignment(
        self, objects: torch.Tensor, text: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(4)-(5): S ``[B, N, 2d]`` and A ``[B, N, T]`` (0 on padded text positions)."""
        scores = self.query(objects) @ self.key(text).transpose(1, 2) / math.sqrt(text.size(-1))  # [B, N, T]
        scores = scores.masked_fill(~attention_mask.bool()[:, None, :], torch.finfo(scores.dtype).min)
        attention = scores.softmax(dim=-1)  # (4)
        return torch.sigmoid(attention @ self.value(text)), attention  # (5)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        object_features: torch.Tensor,
        object_mask: torch.Tensor,
        structural_alignment: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SceneGraphRelationOutput:
        hidden, entities = self.entity_pair(input_ids, attention_mask, head_start, tail_start, token_type_ids)  # (1)
        text = self.text_nodes(hidden)  # (2) [B, T, 2d]
        objects = self.objects(object_features)  # (3) [B, N, 2d]
        semantic, attention = self.semantic_alignment(objects, text, attention_mask)  # (4)-(5)
        structural = structural_alignment.transpose(1, 2).to(text.dtype) @ text  # (6) [B, T, N] -> [B, N, T] x H'
        merged = self.merge_alignments(torch.cat([semantic, structural], dim=-1))  # (7) [B, N, 2d]
        visual = (merged * object_mask[..., None].to(merged.dtype)).sum(dim=1)  # (8) [B, 2d]
        relation = self.fuse(torch.cat([entities, visual], dim=-1))  # (9)
        logits = self.classifier(self.dropout(relation))  # (10)
        return SceneGraphRelationOutput(loss=self.loss(logits, labels), logits=logits, object_attention=attention)
