"""GLRA: Global and Local Relevance-Modulated Attention (MRE-MI paper, sec. 4).

    T = [CLS] ... <s> head </s> ... <o> tail </o> ... [SEP]          entity markers     (eq. 1)
    H = BERT(T);  global text H_[CLS];  local text [H_<s>; H_<o>]                       (sec. 4.3)
    V = (v_1 .. v_m)        one vector per image (vision encoder)                       (sec. 4.4)
    O = (o_1 .. o_{m*k})    one vector per region, k regions per image, same encoder    (sec. 4.4)
    C = RMA(H_[CLS], V)     global text-aware image representation   [1 x d_t]          (eq. 2-6)
    U = RMA([H_<s>; H_<o>], O)   local text-aware image representation [2 x d_t]        (eq. 2-6)
    p(y | S, I) = softmax([H_[CLS]; H_<s>; H_<o>; C; U] W),  W: 6 d_t x |Y|            (eq. 7)
    L = cross-entropy                                                                  (eq. 8)

RMA is :class:`~mmie.models.layers.relevance_attention.RelevanceModulatedAttention`, one module for
both paths. The ablations of Table 3 are switches: ``use_global: false`` drops H_[CLS] and C,
``use_local: false`` drops H_<s>, H_<o> and U, ``relevance_modulation: false`` keeps the attention
and drops R (eq. 2-4). The per-image relevance R_global is in every output (``relevance [B, M]``,
0 for padded slots) and in every prediction GLRA writes.

Text-only switch (``use_images: false``): no vision encoder and no RMA; C and U leave eq. 7, whose text
part stays: p(y | S) = softmax([H_[CLS]; H_<s>; H_<o>] W), W: 3 d_t x |Y| (``use_global`` / ``use_local``
still choose the parts). ``relevance`` is None.

The vision encoder, the image and region inputs and their masking are the image RE base's
(:mod:`mmie.models.glra.image_relation`), shared with the Table 2 baselines
(:mod:`mmie.models.glra.mre_image_baselines`) and FocalMRE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.errors import ConfigError
from mmie.features.processor import image_relation_processor
from mmie.models.glra.configuration import GlraConfig
from mmie.models.glra.image_relation import ImageRelationModel, PostRegions
from mmie.models.layers.relevance_attention import RelevanceModulatedAttention
from mmie.models.registry import register_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder


@register_model("glra", config=GlraConfig, processor=image_relation_processor)
class GlraClassifier(ImageRelationModel):
    """GLRA (MRE-MI paper): relevance-modulated attention of global and local text over images and regions."""

    model_config: GlraConfig

    def __init__(
        self,
        config: GlraConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder | None = None,  # None with the text-only switch
    ) -> None:
        super().__init__(config, labels, text_encoder, vision_encoder)
        if not (config.use_global or config.use_local):
            raise ConfigError("model: use_global and use_local are both false; GLRA needs at least one")
        text_width = int(config.use_global) + 2 * int(config.use_local)  # H_[CLS]; H_<s>; H_<o>
        if not self.uses_images:  # the text-only switch: eq. 7 without C and U, 3 d_t
            self.classifier = nn.Linear(text_width * self.hidden_size, len(labels))
            return
        if config.use_local and config.regions_per_image == 0:
            raise ConfigError("model.regions_per_image: the local path needs regions (or set use_local: false)")
        self.attention = RelevanceModulatedAttention(
            self.hidden_size, self.image_dim, config.attention_heads, config.relevance_modulation
        )
        width = 2 * text_width  # eq. 7: 6 d_t with both paths
        self.classifier = nn.Linear(width * self.hidden_size, len(labels))

    def classify(
        self, hidden: torch.Tensor, markers: torch.Tensor, posts: PostRegions
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
        config = self.model_config
        batch, slots, k = posts.region_mask.shape
        text_parts, image_parts = [], []
        relevance = region_relevance = None
        if config.use_global:
            cls = hidden[:, :1]  # H_[CLS], global text
            out = self.attention(cls, posts.images, posts.image_mask)  # C, eq. 2-6
            text_parts.append(cls)
            image_parts.append(out.context)
            relevance = out.relevance[:, 0] if out.relevance is not None else None  # R_global [B, M]
        if config.use_local:
            regions = posts.regions.reshape(batch, slots * k, -1)  # O = (o_1 .. o_{m*k})
            out = self.attention(markers, regions, posts.region_mask.reshape(batch, slots * k))  # U, eq. 2-6
            text_parts.append(markers)  # [H_<s>; H_<o>], local text
            image_parts.append(out.context)
            if out.relevance is not None:
                region_relevance = out.relevance.reshape(batch, 2, slots, k)
                if relevance is None:  # w/o global: an image's relevance is that of its best region
                    relevance = region_relevance.amax(dim=(1, 3))
        representation = torch.cat(text_parts + image_parts, dim=1).flatten(1)  # eq. 7 order
        logits = self.classifier(self.dropout(representation))
        return logits, {"relevance": relevance, "region_relevance": region_relevance}

    def classify_text(self, hidden: torch.Tensor, markers: torch.Tensor) -> torch.Tensor:
        """Eq. 7's text part (the text-only switch): [H_[CLS]; H_<s>; H_<o>] -> logits."""
        parts = ([hidden[:, :1]] if self.model_config.use_global else []) + (
            [markers] if self.model_config.use_local else []
        )
        return self.classifier(self.dropout(torch.cat(parts, dim=1).flatten(1)))
