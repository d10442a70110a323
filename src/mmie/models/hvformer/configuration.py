"""Configs of HVFormer (one image) and HVFormer-MI (every image, one vision sequence each)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from mmie.features.settings import ImageLayout, RegionInputs
from mmie.models.text.configuration import RelationModelConfig


class HvformerConfig(RelationModelConfig, RegionInputs):
    """HVFormer (Liu et al., 2024; liuxiyang641/HVFormer): the first image and its crops ("Text + One Image")."""

    image_layout: ClassVar[ImageLayout] = "first"

    name: str = "hvformer"
    regions_per_image: int = Field(3, ge=0, le=16, description="k: grounding crops per image (reference code: 3)")
    vision_layers: int = Field(
        2, ge=1, description="vision Transformer layers over the image tokens; the experts read levels 0, middle, last"
    )
    vision_intermediate_size: int | None = Field(
        None, ge=1, description="feed-forward width of the vision layers; null: the text encoder's"
    )


class HvformerMiConfig(HvformerConfig):
    """HVFormer-MI (MRE-MI paper, sec. 5.1): every image of the post, each its own vision sequence."""

    image_layout: ClassVar[ImageLayout] = "all"

    name: str = "hvformer_mi"
