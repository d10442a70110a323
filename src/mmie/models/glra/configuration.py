"""Configs of GLRA, its Table 3 ablations and the image RE baselines of the MRE-MI paper's Table 2.

Every one reads the post's images and k regions per image (:class:`~mmie.features.settings.RegionInputs`:
the region provider's settings live there); each says which of them (``image_layout``, ``region_count``).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from mmie.features.settings import ImageLayout, RegionInputs
from mmie.models.text.configuration import RelationModelConfig


class ImageRelationConfig(RelationModelConfig, RegionInputs):
    """A relation model over marked text, the images and their regions (the paper's vision encoder: ViT-L/16-384)."""

    attention_heads: int = Field(
        1, ge=1, description="heads of the cross-modal attention (paper: 1; reference code: 12)"
    )


class GlraConfig(ImageRelationConfig):
    text_only_switch: ClassVar[bool] = True  # use_images: false -> [H_[CLS]; H_<s>; H_<o>] (eq. 7 without C, U)

    name: str = "glra"
    use_global: bool = Field(True, description="global representations H_[CLS] and C (Table 3: w/o Global)")
    use_local: bool = Field(True, description="local representations H_<s>, H_<o> and U (Table 3: w/o Local)")
    relevance_modulation: bool = Field(
        True, description="R in the attention, eq. 2-4 (Table 3: w/o Relevance Modulation)"
    )


class MtbFirstImageConfig(ImageRelationConfig):
    """MTB + attention over the first image and its regions ("Text + One Image")."""

    image_layout: ClassVar[ImageLayout] = "first"

    name: str = "mtb_first_image"
    use_regions: bool = Field(
        True, description="image tokens: the global vector and the k regions (false: global only)"
    )

    @property
    def region_count(self) -> int:
        return self.regions_per_image if self.use_regions else 0


class MtbAllImagesConfig(MtbFirstImageConfig):
    """MTB + attention over every image and all their regions (the "-MI" rows)."""

    image_layout: ClassVar[ImageLayout] = "all"

    name: str = "mtb_all_images"
