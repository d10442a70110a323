"""Configs of the pretrained vision-language RE baselines (MRE-MI paper Table 2, FocalMRE paper Table 1).

Both read the marked text and the post's FIRST image: they sit in the "Text + One Image" block of the
MRE-MI table ("we select the first image as their image input", sec. 5.1).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from mmie.encoders.text import DEFAULT_TEXT_ENCODER
from mmie.features.settings import ImageLayout, RegionInputs
from mmie.models.text.configuration import RelationModelConfig


class VisualBertReConfig(RelationModelConfig, RegionInputs):
    """VisualBERT RE: marked text and the first image's visual tokens in one Transformer."""

    image_layout: ClassVar[ImageLayout] = "first"

    name: str = "visualbert_re"  # visual tokens: the global vector and k = regions_per_image regions (0: global only)


class ClipReConfig(RelationModelConfig, RegionInputs):
    """CLIP RE: CLIP's text tower over the marked text, its image embedding of the first image, fused.

    ``vision_encoder`` is CLIP's own vision tower: it defaults to ``encoder`` (the same checkpoint), and
    the model refuses another one (its image features must live in the space of CLIP's visual projection).
    """

    image_layout: ClassVar[ImageLayout] = "first"

    name: str = "clip_re"
    max_length: int = Field(77, ge=16, le=4096, description="sub-words per text (CLIP's text tower has 77 positions)")

    @model_validator(mode="before")
    @classmethod
    def _vision_tower_of_the_encoder(cls, values: Any) -> Any:
        """Without a ``vision_encoder``, CLIP reads its images with the vision tower of ``encoder``."""
        if isinstance(values, dict) and values.get("vision_encoder") is None:
            values = {**values, "vision_encoder": values.get("encoder", DEFAULT_TEXT_ENCODER)}
        return values

    @property
    def region_count(self) -> int:
        """CLIP reads the image embedding only: no regions."""
        return 0
