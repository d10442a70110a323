"""UMGF: Unified Multi-modal Graph Fusion for NER (Zhang et al., "Multi-modal Graph Fusion for Named
Entity Recognition with Targeted Visual Guidance", AAAI 2021), and UMGF-MI (MNER-MI paper, sec. 5.1).

    V = CNN(crop_q(I)),  q in {person, location, organization, miscellaneous}     targeted visual
        guidance (sec. 3.1): the picture grounded once per entity type, each crop one visual node
    H = BERT(x)                                                        sub-word vectors [B, n, d_t]
    X^L = GraphFusion(H, V)       L layers of intra- and inter-modal fusion (sec. 3.2-3.3), (G1)-(G8)
                                  of :mod:`mmie.models.layers.graph_fusion`
    e = W [H; X^L] + b            emissions at each word's first sub-word (the code: 768 + 512)   (G9)
    loss = -log p_CRF(y | e)      decoding: constrained Viterbi (sec. 3.4)

``umgf`` reads the post's FIRST image (the multi-image papers' "single image" row); ``umgf_mi`` one
picture with all of them stitched 2 x 2, its crops found on that picture (its config's ``image_layout``).

Deviations (docs/models/umgf.md): the crops come from a region provider (a zero-shot detector queried
with the four types, the stand-in for the paper's one-stage grounding model; offline: grid saliency
boxes, which read no text); the vision encoder is frozen by default (the code fine-tunes ResNet-152
with a new 2048 x 2048 fc; ``freeze_vision: false`` fine-tunes any encoder); the CRF runs over each
word's first sub-word (the code tags the others ``X``); a post without an image has no visual node
(the code always reads four crop files).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import query_region_ner_processor
from mmie.models.base import TokenClassificationOutput, gather_positions
from mmie.models.registry import register_model
from mmie.models.text.bert_crf import BertCrfTagger
from mmie.models.umgf.configuration import UmgfConfig, UmgfMiConfig
from mmie.models.umgf.graph_model import GraphFusionMixin

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder


@dataclass
class UmgfTaggerOutput(TokenClassificationOutput):
    """NER output plus ``gates [B, L, n, o]``: each layer's mean gate of each sub-word-object edge (0: no edge)."""

    gates: torch.Tensor | None = None


@register_model("umgf", config=UmgfConfig, processor=query_region_ner_processor)
class UmgfTagger(GraphFusionMixin, BertCrfTagger):
    """UMGF NER: CRF over [BERT; graph fusion with one crop per entity type of the first image]."""

    output_class = UmgfTaggerOutput
    model_config: UmgfConfig

    def __init__(
        self, config: UmgfConfig, labels: list[str], text_encoder: PreTrainedModel, vision_encoder: VisionEncoder
    ) -> None:
        super().__init__(config, labels, text_encoder)
        self.build_graph_fusion(config, vision_encoder, self.hidden_size)
        self.classifier = nn.Linear(self.hidden_size + config.fusion_dim, len(labels))  # W, G9

    # Takes the batch of its own processor, which adds the picture and crop inputs to the text tagger's.
    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        image_mask: torch.Tensor,
        region_mask: torch.Tensor,
        image_features: torch.Tensor | None = None,  # the whole picture: not a node (the crops are)
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        region_pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> UmgfTaggerOutput:
        text = self.encode_text(input_ids, attention_mask, token_type_ids)  # H [B, n, d_t]
        fused = self.fuse(text, attention_mask, image_mask, region_mask, region_features, region_pixel_values)
        words = gather_positions(torch.cat([text, fused.words], dim=-1), word_starts)  # [H; X^L] at each word
        emissions = self.classifier(words)  # e, G9 (no dropout here, as the code)
        loss = self.crf(emissions, labels, word_mask) if labels is not None else None
        predictions = None if self.training else self.decode(emissions, word_mask)
        return UmgfTaggerOutput(loss=loss, logits=emissions, predictions=predictions, gates=fused.gates)


@register_model("umgf_mi", config=UmgfMiConfig, processor=query_region_ner_processor)
class UmgfMiTagger(UmgfTagger):
    """UMGF-MI NER: UMGF fed all of the post's images stitched 2 x 2 into one picture (MNER-MI paper, sec. 5.1).

    The model is UMGF's; its config's ``image_layout`` (stitched) makes the picture and its crops."""
