"""HVPNeT for RE (Chen et al., NAACL Findings 2022, sec. 3.4) and HVPNeT-MI (MRE-MI paper, sec. 5.1).

    x       = "... <s> head </s> ... <o> tail </o> ..."       entity markers (the reference's)
    P^l     = the hierarchical visual prefix of the image(s) and crops   (1)-(5), as for NER
    H       = BERT(x) with P^l in every layer l                          (6)
    p(r|x)  = softmax(W [h_<s>; h_<o>] + b)                              sec. 3.4 (the reference: dropout 0.5)

The prefix is built as in :mod:`mmie.models.hvpnet.hvpnet`; ``hvpnet_re`` reads the first image and
its k crops (MNRE: the 3 grounding crops of the release), ``hvpnet_mi_re`` every image, one block per
image and per crop, none for a padded slot.

Text-only switch (``use_images: false``): no vision encoder and no prefix; (6) is BERT without past
keys/values, so the model is MTB's entity-start classifier over [h_<s>; h_<o>]; ``gates`` is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn
from transformers.utils import ModelOutput

from mmie.features.processor import multiscale_relation_processor
from mmie.models.base import RelationClassificationOutput
from mmie.models.hvpnet.configuration import HvpnetMiRelationConfig, HvpnetRelationConfig
from mmie.models.hvpnet.prefix_model import HierarchicalPrefixMixin
from mmie.models.layers.visual_prefix import encode_with_prefix
from mmie.models.registry import register_model
from mmie.models.text.relation import MarkedRelationModel

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder


@dataclass
class HvpnetRelationOutput(RelationClassificationOutput):
    """RE output plus ``gates [B, L, P, S]``: each layer's weight of each scale, per block of the post."""

    gates: torch.Tensor | None = None


@register_model("hvpnet_re", config=HvpnetRelationConfig, processor=multiscale_relation_processor)
class HvpnetRelationClassifier(HierarchicalPrefixMixin, MarkedRelationModel):
    """HVPNeT RE: marked text with a gated multi-scale visual prefix, classifier over [h_<s>; h_<o>]."""

    output_class: ClassVar[type[ModelOutput]] = HvpnetRelationOutput
    model_config: HvpnetRelationConfig

    def __init__(
        self,
        config: HvpnetRelationConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder | None = None,  # None with the text-only switch
    ) -> None:
        super().__init__(config, labels, text_encoder)
        self.build_visual_prefix(config, vision_encoder, text_encoder)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(2 * self.hidden_size, len(labels))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        image_mask: torch.Tensor | None = None,  # None (and crop_mask): the text-only switch's batch
        crop_mask: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,  # the images' mean tokens: not read (the blocks are)
        region_features: torch.Tensor | None = None,
        crop_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        crop_pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> HvpnetRelationOutput:
        gated = self.gated_prefix(
            image_mask, crop_mask, region_features, crop_features, pixel_values, crop_pixel_values
        )
        prefix = gated.prefix if gated is not None else None  # None: the text-only switch (no prefix)
        hidden = encode_with_prefix(self.text_encoder, input_ids, attention_mask, prefix, token_type_ids)  # (6)
        markers = self.marker_vectors(hidden.last_hidden_state, head_start, tail_start)  # type: ignore[arg-type]
        logits = self.classifier(self.dropout(markers.flatten(1)))  # [h_<s>; h_<o>]
        gates = gated.gates.transpose(0, 1) if gated is not None else None  # [L, B, P, S] -> [B, L, P, S]
        return HvpnetRelationOutput(loss=self.loss(logits, labels), logits=logits, gates=gates)


@register_model("hvpnet_mi_re", config=HvpnetMiRelationConfig, processor=multiscale_relation_processor)
class HvpnetMiRelationClassifier(HvpnetRelationClassifier):
    """HVPNeT-MI RE: one gated multi-scale prefix block per image and per crop (padded slots masked).

    The model is HVPNeT's; its config's ``image_layout`` (all images) makes the blocks."""
