"""The image baselines of the MRE-MI paper's Table 2, built from GLRA's pieces.

Both are MTB (the entity start markers) plus one plain cross-modal attention, the common core of
the HVFormer / HVPNeT family (their prompts, gates and hierarchies are left out):

    [H_<s>; H_<o>]           start-marker vectors (MTB)
    A = attention([H_<s>; H_<o>], image tokens)          softmax(QK^T / sqrt d) V W_v, no relevance
    p(y) = softmax([H_<s>; H_<o>; A_<s>; A_<o>] W)       4 d_t

* ``mtb_first_image`` -- "Text + One Image": the image tokens are the global vector of the post's
  FIRST image and its k regions (what the single-image models see: "we select the first image as
  their image input", sec. 5.1);
* ``mtb_all_images`` -- "Text + All Images" (the "-MI" rows): the global vectors of every image and
  all their regions, in one attention (1..4 images, padding masked).

The attention is :class:`~mmie.models.layers.relevance_attention.RelevanceModulatedAttention` with
``relevance_modulation=False``: the baselines differ from GLRA's "w/o Relevance Modulation"
ablation in that they have no [CLS] path and one attention over images and regions together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import image_relation_processor
from mmie.models.glra.configuration import MtbAllImagesConfig, MtbFirstImageConfig
from mmie.models.glra.image_relation import ImageRelationModel, PostRegions
from mmie.models.layers.relevance_attention import RelevanceModulatedAttention
from mmie.models.registry import register_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder


class MarkerImageAttentionClassifier(ImageRelationModel):
    """MTB + plain attention of the start markers over image tokens (global vectors, then regions)."""

    def __init__(
        self,
        config: MtbFirstImageConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder,
    ) -> None:
        super().__init__(config, labels, text_encoder, vision_encoder)
        self.attention = RelevanceModulatedAttention(
            self.hidden_size, self.image_dim, config.attention_heads, relevance_modulation=False
        )
        self.classifier = nn.Linear(4 * self.hidden_size, len(labels))

    def classify(
        self, hidden: torch.Tensor, markers: torch.Tensor, posts: PostRegions
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
        batch = posts.images.shape[0]
        tokens = torch.cat([posts.images, posts.regions.flatten(1, 2)], dim=1)  # [B, M + M*k, D]
        mask = torch.cat([posts.image_mask, posts.region_mask.reshape(batch, -1)], dim=1)
        attended = self.attention(markers, tokens, mask).context  # [B, 2, d_t]
        logits = self.classifier(self.dropout(torch.cat([markers, attended], dim=1).flatten(1)))
        return logits, {}


@register_model("mtb_first_image", config=MtbFirstImageConfig, processor=image_relation_processor)
class FirstImageClassifier(MarkerImageAttentionClassifier):
    """MTB + attention over the FIRST image and its regions (the single-image rows of Table 2)."""


@register_model("mtb_all_images", config=MtbAllImagesConfig, processor=image_relation_processor)
class AllImagesClassifier(MarkerImageAttentionClassifier):
    """MTB + attention over every image and all their regions (the "-MI" rows of Table 2)."""
