"""Configs of HVPNeT and HVPNeT-MI, for NER (CRF head) and RE (entity-marker head).

All four read the images and their crops (:class:`~mmie.features.settings.RegionInputs`: the region
provider's settings) as multi-scale tokens (``multiscale``: the backbone's stages pooled to
``prefix_grid x prefix_grid``). HVPNeT reads the FIRST image (``image_layout = "first"``, as the
multi-image papers run the single-image models); HVPNeT-MI every image, one prefix block each.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from mmie.features.settings import ImageLayout, RegionInputs
from mmie.models.base import ModelConfig
from mmie.models.text.configuration import RelationModelConfig


class MultiScaleCropInputs(RegionInputs):
    """The image and its top-k crops, each read as the backbone's stages pooled to a small grid (HVPNeT's
    visual blocks; VisualPT-MoE's image and crop experts read the same). The reference's values by default."""

    regions_per_image: int = Field(3, ge=0, le=16, description="k: crops per image (HVPNeT: the top 3 of grounding)")
    regions: Literal["precomputed", "grid"] = Field(
        "grid", description="crops: a crop dictionary (precomputed), or offline saliency boxes (grid; no grounding)"
    )
    scales: int = Field(4, ge=1, le=12, description="S: backbone stages read (ResNet-50's four in the paper)")
    prefix_grid: int = Field(2, ge=1, le=8, description="each stage average-pooled to prefix_grid x prefix_grid tokens")

    @property
    def region_cells(self) -> int:
        return self.prefix_grid

    @property
    def multiscale(self) -> tuple[int, int]:
        return self.scales, self.prefix_grid


class HvpnetInputs(MultiScaleCropInputs):
    """What every HVPNeT variant reads and how its prefix is built (the reference's values by default)."""

    prefix_bottleneck: int = Field(800, ge=1, description="hidden width of the map of each scale (reference: 800)")

    @property
    def prefix_length(self) -> int:
        """Prefix tokens per layer: T = grid^2 per block, (1 + k) blocks per image, per image slot."""
        return self.image_slots * (1 + self.regions_per_image) * self.prefix_grid**2


class HvpnetConfig(ModelConfig, HvpnetInputs):
    """HVPNeT NER: BERT-CRF with the hierarchical visual prefix of the first image and its crops."""

    image_layout: ClassVar[ImageLayout] = "first"
    text_only_switch: ClassVar[bool] = True  # use_images: false -> no prefix: BERT-CRF

    name: str = "hvpnet"


class HvpnetMiConfig(HvpnetConfig):
    """HVPNeT-MI NER: one prefix block per image (and per crop of each image), up to ``max_images``."""

    image_layout: ClassVar[ImageLayout] = "all"

    name: str = "hvpnet_mi"


class HvpnetRelationConfig(RelationModelConfig, HvpnetInputs):
    """HVPNeT RE: marked text with the hierarchical visual prefix, classifier over [h_<s>; h_<o>]."""

    image_layout: ClassVar[ImageLayout] = "first"
    text_only_switch: ClassVar[bool] = True  # use_images: false -> no prefix: MTB's [h_<s>; h_<o>] head

    name: str = "hvpnet_re"


class HvpnetMiRelationConfig(HvpnetRelationConfig):
    """HVPNeT-MI RE: one prefix block per image and per crop."""

    image_layout: ClassVar[ImageLayout] = "all"

    name: str = "hvpnet_mi_re"
