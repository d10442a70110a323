"""HVPNeT for NER (Chen et al., "Good Visual Guidance Makes A Better Extractor: Hierarchical Visual
Prefix for Multimodal Entity and Relation Extraction", NAACL Findings 2022) and HVPNeT-MI.

    blocks  = the image and its top-k crops (sec. 3.1: "global and regional images"), each read by the
              backbone as S stages pooled to cells x cells                      (1)
    P^l     = gated mix of the scales, one gate per text-encoder layer l       (2)-(5)
    H^L     = BERT with P^l as the past keys/values of every layer l           (6), sec. 3.2
    p(y|H)  = CRF over the words' first sub-words                              sec. 3.4 (as BERT-CRF)

Eq. (1)-(6) are :mod:`mmie.models.layers.hierarchical_prefix`; the blocks come from
:mod:`mmie.models.hvpnet.prefix_model`. ``hvpnet`` reads the post's FIRST image (the multi-image
papers' "Text + Single Image" row); ``hvpnet_mi`` every image, one block per image and per crop, and
no block for a padded slot (masked: zero attention). The MNER-MI and MRE-MI papers run HVPNeT-MI
without saying more (MRE-MI, sec. 5.1: "HVPNeT ... can accept multiple images"); one prefix block per
image is the natural reading (shared/BASELINES.md).

Text-only switch (``use_images: false``): no vision encoder and no prefix (:mod:`mmie.models.hvpnet.prefix_model`);
(6) is then BERT without past keys/values, and the model is BERT-CRF; ``gates`` is None.

Deviations: the reference decodes a CRF over every sub-word; here over each word's first sub-word,
as every mmie tagger (labels live on words). The crops of the MNER datasets come from a region
provider (offline: grid saliency, not grounding; docs/models/hvpnet.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from mmie.features.processor import multiscale_ner_processor
from mmie.models.base import TokenClassificationOutput, gather_positions
from mmie.models.hvpnet.configuration import HvpnetConfig, HvpnetMiConfig
from mmie.models.hvpnet.prefix_model import HierarchicalPrefixMixin
from mmie.models.layers.visual_prefix import encode_with_prefix
from mmie.models.registry import register_model
from mmie.models.text.bert_crf import BertCrfTagger

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder


@dataclass
class HvpnetTaggerOutput(TokenClassificationOutput):
    """NER output plus ``gates [B, L, P, S]``: each layer's weight of each scale, per block of the post."""

    gates: torch.Tensor | None = None


@register_model("hvpnet", config=HvpnetConfig, processor=multiscale_ner_processor)
class HvpnetTagger(HierarchicalPrefixMixin, BertCrfTagger):
    """HVPNeT NER: BERT-CRF with a gated multi-scale visual prefix of the first image and its crops."""

    output_class = HvpnetTaggerOutput
    model_config: HvpnetConfig

    def __init__(
        self,
        config: HvpnetConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder | None = None,  # None with the text-only switch
    ) -> None:
        super().__init__(config, labels, text_encoder)
        self.build_visual_prefix(config, vision_encoder, text_encoder)

    # Takes the batch of its own processor, which adds the image and crop inputs to the text tagger's.
    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        image_mask: torch.Tensor | None = None,  # None (and crop_mask): the text-only switch's batch
        crop_mask: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,  # the images' mean tokens: not read (the blocks are)
        region_features: torch.Tensor | None = None,
        crop_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        crop_pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> HvpnetTaggerOutput:
        gated = self.gated_prefix(
            image_mask, crop_mask, region_features, crop_features, pixel_values, crop_pixel_values
        )
        prefix = gated.prefix if gated is not None else None  # None: the text-only switch (no prefix)
        hidden = encode_with_prefix(self.text_encoder, input_ids, attention_mask, prefix, token_type_ids)  # (6)
        words = gather_positions(hidden.last_hidden_state, word_starts)  # type: ignore[arg-type]
        emissions = self.classifier(self.dropout(words))
        loss = self.crf(emissions, labels, word_mask) if labels is not None else None
        predictions = None if self.training else self.decode(emissions, word_mask)
        gates = gated.gates.transpose(0, 1) if gated is not None else None  # [L, B, P, S] -> [B, L, P, S]
        return HvpnetTaggerOutput(loss=loss, logits=emissions, predictions=predictions, gates=gates)


@register_model("hvpnet_mi", config=HvpnetMiConfig, processor=multiscale_ner_processor)
class HvpnetMiTagger(HvpnetTagger):
    """HVPNeT-MI NER: one gated multi-scale prefix block per image and per crop (padded slots masked).

    The model is HVPNeT's; its config's ``image_layout`` (all images) makes the blocks."""
