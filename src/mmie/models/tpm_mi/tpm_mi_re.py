"""TPM-MI with a relation head: the "TPM-MI" row of the MRE-MI paper's Table 2 (shared/papers/000_*,
sec. 5.1: "a model designed for multi-image multimodal named entity recognition, treating multiple
images as frames of a video", run there as one of the four multi-image MRE methods).

The paper says no more than that; this is TPM-MI's image side unchanged (MNER-MI paper, sec. 4) with
the entity-start head that the prefix family's RE rows share (HVPNeT's, MTB's):

    x    = "... <s> head </s> ... <o> tail </o> ..."   entity markers (mmie.features.text)
    v_i  = global vector of image i, zero for a missing one; C = V + T; U = TransformerEncoder(C)  (sec. 4.3)
    P^l  = W_p^l U;  K_p^l = phi_k^l P^l,  V_p^l = phi_v^l P^l   one prefix token per real image  (eq. 1, 3)
    H    = BERT(x) with [K_p^l; V_p^l] in every self-attention layer l                            (eq. 2, 4)
    r    = [H_<s>; H_<o>]                          the start-marker vectors [B, 2d]                (R1)
    p(r | x) = softmax(W r + b),  loss = cross-entropy                                            (R2)

The temporal encoder and the prefix are TPM-MI's own (:class:`~mmie.models.tpm_mi.tpm_mi.TemporalPromptMixin`).
Deviations: the CRF over the words (eq. 5-7) becomes the relation classifier R1-R2, since RE classifies
a pair rather than tagging words; padded image slots are masked in the temporal encoder and the prefix
(the reference attends to them), as TPM-MI's tagger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import post_image_relation_processor
from mmie.models.base import RelationClassificationOutput
from mmie.models.layers.visual_prefix import encode_with_prefix
from mmie.models.registry import register_model
from mmie.models.text.relation import MarkedRelationModel
from mmie.models.tpm_mi.configuration import TpmMiRelationConfig
from mmie.models.tpm_mi.tpm_mi import TemporalPromptMixin

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder


@register_model("tpm_mi_re", config=TpmMiRelationConfig, processor=post_image_relation_processor)
class TpmMiRelationClassifier(TemporalPromptMixin, MarkedRelationModel):
    """TPM-MI RE: the temporal visual prefix of every image in BERT, classifier over [h_<s>; h_<o>]."""

    model_config: TpmMiRelationConfig

    def __init__(
        self,
        config: TpmMiRelationConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder,
    ) -> None:
        super().__init__(config, labels, text_encoder)
        self.build_visual_prefix(config, text_encoder, vision_encoder)  # eq. 1, 3
        self.build_temporal_encoder(config)  # sec. 4.3
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(2 * self.hidden_size, len(labels))  # W, R2

    # Takes the batch of its own processor: the marked text's plus the images of TPM-MI's tagger.
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        image_mask: torch.Tensor,
        image_features: torch.Tensor | None = None,
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> RelationClassificationOutput:
        prefix = self.image_prefix(image_mask, image_features, region_features, pixel_values)  # sec. 4.3, eq. 1, 3
        hidden = encode_with_prefix(self.text_encoder, input_ids, attention_mask, prefix, token_type_ids)  # eq. 4
        # transformers types every ModelOutput field Optional; the encoder sets it.
        markers = self.marker_vectors(hidden.last_hidden_state, head_start, tail_start)  # type: ignore[arg-type]
        logits = self.classifier(self.dropout(markers.flatten(1)))  # [B, 2, d] -> r [B, 2d], R1-R2
        return RelationClassificationOutput(loss=self.loss(logits, labels), logits=logits)
