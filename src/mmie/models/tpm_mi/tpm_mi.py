"""TPM-MI: Temporal Prompt Model with Multiple Images (MNER-MI paper, sec. 4).

A post's m images are read like the frames of a video, and the result is coupled with the text as a
visual prompt in every layer of BERT:

    v_i  = vision encoder [CLS] / global vector of image i; zero vector for a missing image   (sec. 4.3)
    C    = V + T,  T = (t_1 .. t_m) learnable temporal position embeddings                    (sec. 4.3)
    U    = TransformerEncoder(C), self-attention over the real images only                    (sec. 4.3)
           (with ``temporal_dim`` set, V is first projected to that width; see the config)
    P^l  = W_p^l U                       one prompt token per image for each layer l           (eq. 1)
    K_p^l = phi_k^l P^l ;  V_p^l = phi_v^l P^l                                                 (eq. 3)
    H^l  = softmax(Q^l [K_p^l; K^l]^T / sqrt d) [V_p^l; V^l]   prefix in every self-attention  (eq. 2, 4)
    p(y | H^L) by a CRF, loss = -log p(y | H^L) averaged over the batch                        (eq. 5-7)

Eq. 1 and 3 live in :class:`mmie.models.layers.visual_prefix.VisualPrefix`, eq. 4 is the text
encoder's own attention, eq. 5-7 the CRF of BERT-CRF; this file holds the multi-image
representation (sec. 4.3), shared with TPM-MI's relation classifier (``tpm_mi_re.py``). Deviation
from the reference code, on purpose: missing images are masked in the temporal encoder and in the
prefix, never attended to (the reference attends to its zero-padded images, so a post's prediction
depends on how many slots are padded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.errors import ConfigError
from mmie.features.processor import image_ner_processor
from mmie.models.registry import register_model
from mmie.models.tpm_mi.configuration import TpmMiConfig
from mmie.models.tpm_mi.prefix_tagger import PostImages, VisualPrefixMixin, VisualPrefixTagger

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder


class TemporalImageEncoder(nn.Module):
    """Sec. 4.3: U = TransformerEncoder(V + T) over the m image vectors of each post."""

    def __init__(
        self, image_dim: int, width: int, max_images: int, layers: int, heads: int, feedforward: int, dropout: float
    ):
        super().__init__()
        if width % heads:
            raise ConfigError(f"model.temporal_heads: {heads} does not divide the temporal encoder's width {width}")
        self.input_projection = nn.Linear(image_dim, width) if width != image_dim else nn.Identity()
        # T = (t_1 .. t_m): which image is first, second, ... (the first one usually matters most)
        self.temporal_positions = nn.Parameter(torch.empty(max_images, width))
        nn.init.normal_(self.temporal_positions, std=0.02)
        layer = nn.TransformerEncoderLayer(width, heads, feedforward, dropout, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, images: torch.Tensor, image_mask: torch.Tensor) -> torch.Tensor:
        """``images`` V [B, M, d_v] (zero in missing slots), ``image_mask`` [B, M] -> U [B, M, width]."""
        slots = images.shape[1]
        if slots > self.temporal_positions.shape[0]:
            raise ValueError(f"{slots} image slots, but temporal positions for {len(self.temporal_positions)} only")
        combined = self.input_projection(images) + self.temporal_positions[:slots]  # C = V + T
        # Missing images are keys of no one. A post without any image keeps its slots visible to each
        # other only so that attention has a key; its prefix is masked entirely downstream.
        ignore = ~image_mask & image_mask.any(dim=1, keepdim=True)
        return self.encoder(combined, src_key_padding_mask=ignore)


class TemporalPromptMixin(VisualPrefixMixin):
    """TPM-MI's visual side (sec. 4.3), shared by its tagger and its relation classifier: the temporal
    encoder's U as the prefix's visual tokens, one per image slot."""

    model_config: TpmMiConfig
    temporal_encoder: TemporalImageEncoder

    def build_temporal_encoder(self, config: TpmMiConfig) -> None:
        width = self.visual_token_dim()
        self.temporal_encoder = TemporalImageEncoder(
            self.image_dim,
            width,
            config.max_images,
            config.temporal_layers,
            config.temporal_heads,
            config.temporal_feedforward or 4 * width,
            config.dropout,
        )

    def visual_token_dim(self) -> int:
        return self.model_config.temporal_dim or self.image_dim

    def visual_tokens(self, images: PostImages) -> tuple[torch.Tensor, torch.Tensor]:
        # one prompt token per image slot: P^l in R^{d_t x m}; padded slots are masked in the prefix
        return self.temporal_encoder(images.global_features, images.mask), images.mask


@register_model("tpm_mi", config=TpmMiConfig, processor=image_ner_processor)
class TpmMiTagger(TemporalPromptMixin, VisualPrefixTagger):
    """TPM-MI (MNER-MI paper): images as video frames -> temporal encoder -> visual prefix in BERT -> CRF."""

    model_config: TpmMiConfig

    def __init__(
        self, config: TpmMiConfig, labels: list[str], text_encoder: PreTrainedModel, vision_encoder: VisionEncoder
    ) -> None:
        super().__init__(config, labels, text_encoder, vision_encoder)
        self.build_temporal_encoder(config)
