"""Configs of TPM-MI (and TPM-MI with a relation head) and the visual-prefix baselines of the MNER-MI
paper's Table 3.

Each says which images its model reads (``image_layout``, ``image_slots``, ``region_cells`` of
:class:`~mmie.features.settings.ImageInputs`): the processor reads that, never the model class.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from mmie.data.schema import MAX_IMAGES
from mmie.features.settings import ImageInputs, ImageLayout
from mmie.models.base import ModelConfig
from mmie.models.text.configuration import RelationModelConfig


class PrefixTaggerConfig(ModelConfig, ImageInputs):
    """BERT-CRF with a visual prefix in every layer (the paper's vision encoder: ViT-B/16)."""

    prefix_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout on the per-layer prompts P^l")


class TpmMiConfig(PrefixTaggerConfig):
    name: str = "tpm_mi"
    max_images: int = Field(MAX_IMAGES, ge=1, le=MAX_IMAGES, description="m: image slots per post (the paper: 4)")
    temporal_layers: int = Field(1, ge=1, description="layers of the Transformer encoder over the images")
    temporal_heads: int = Field(8, ge=1, description="its attention heads (must divide the image dimension)")
    temporal_feedforward: int | None = Field(None, ge=1, description="its feed-forward size; null: 4 x its width")
    # The paper's encoders (ViT-B/16, BERT-base) are both 768 wide, so there the temporal encoder is as
    # wide as the text; EfficientNet-Lite0's 1280-d vectors would make it (20M parameters at 4 x 1280)
    # as large as the whole MiniLM text encoder, hence a projected width for the offline configs.
    temporal_dim: int | None = Field(
        None, ge=1, description="width of the temporal encoder (image vectors projected to it); null: the image dim"
    )

    @property
    def image_slots(self) -> int:
        return self.max_images


class TpmMiRelationConfig(RelationModelConfig, TpmMiConfig):
    """TPM-MI with a relation head (the "TPM-MI" row of the MRE-MI paper's Table 2): its temporal prompt
    over all the post's images, the marked text, a classifier over the start markers."""

    name: str = "tpm_mi_re"


class PrefixFirstImageConfig(PrefixTaggerConfig):
    """The first image only: its pooled regions (HVPNeT-style) or its global vector."""

    image_layout: ClassVar[ImageLayout] = "first"

    name: str = "bert_crf_first_image"
    first_image_tokens: Literal["regions", "global"] = Field(
        "regions", description="prefix tokens: pooled region features of the image, or its global vector"
    )
    region_grid: int = Field(2, ge=1, le=16, description="regions are pooled to region_grid x region_grid tokens")

    @property
    def region_cells(self) -> int:
        return self.region_grid if self.first_image_tokens == "regions" else 0


class StitchedConfig(PrefixFirstImageConfig):
    """All images stitched on one 2 x 2 picture, read as the first-image row reads its image."""

    image_layout: ClassVar[ImageLayout] = "stitched"

    name: str = "bert_crf_stitched"


class PrefixAllImagesConfig(PrefixTaggerConfig):
    """One prefix token per image, no temporal encoder (the TPM-MI ablation)."""

    name: str = "prefix_all_images"
    max_images: int = Field(MAX_IMAGES, ge=1, le=MAX_IMAGES, description="m: image slots per post")

    @property
    def image_slots(self) -> int:
        return self.max_images
