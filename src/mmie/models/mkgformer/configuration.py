"""MKGformer's config: marked text, the first image and its k grounding crops, the M-Encoder's depth."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from mmie.features.settings import ImageLayout, RegionInputs
from mmie.models.text.configuration import RelationModelConfig


class MkgformerConfig(RelationModelConfig, RegionInputs):
    """MKGformer for RE (Chen et al., SIGIR 2022; zjunlp/MKGformer ``MRE/``): a single-image model."""

    image_layout: ClassVar[ImageLayout] = "first"
    text_only_switch: ClassVar[bool] = True  # use_images: false -> no M-Encoder: the text encoder + [h_<s>; h_<o>]

    name: str = "mkgformer"
    regions_per_image: int = Field(3, ge=0, le=16, description="k: grounding crops of the image (reference code: 3)")
    fusion_layers: int | None = Field(
        None,
        ge=1,
        description="L_M: the upper text layers forming the M-Encoder; null: the upper third (reference: 9-12 of 12)",
    )
    vision_intermediate_size: int | None = Field(
        None, ge=1, description="feed-forward width of the vision layers; null: the text encoder's"
    )
