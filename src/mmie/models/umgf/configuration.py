"""Configs of UMGF, UMGF-MI (NER) and UMGF for RE: a graph fusion of the text with one crop per entity type.

Every one reads a picture and one region per query of ``region_queries`` (the four entity types, as
the original grounding queries; :class:`~mmie.features.settings.QueryRegionInputs`), encoded by the
frozen vision encoder (ResNet-152 in the paper, fine-tuned there; any encoder here). UMGF reads the
FIRST image (as the multi-image papers run the single-image models); UMGF-MI all of the post's images
stitched 2 x 2 into one picture (MNER-MI paper, sec. 5.1), its regions found on that picture.
Defaults are the paper's and the released code's (``ddp_mmner.py``).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from mmie.features.settings import ImageLayout, QueryRegionInputs
from mmie.models.base import ModelConfig
from mmie.models.text.configuration import RelationModelConfig


class GraphFusionInputs(QueryRegionInputs):
    """The fusion's sizes, shared by the NER and RE variants (paper values by default)."""

    image_layout: ClassVar[ImageLayout] = "first"

    fusion_dim: int = Field(512, ge=1, description="d: width of the graph's nodes (paper: 512)")
    fusion_layers: int = Field(6, ge=1, le=24, description="L: graph fusion layers (paper: 6)")
    fusion_heads: int = Field(8, ge=1, description="heads of the text and object self-attention (paper: 8)")
    fusion_feedforward: int = Field(256, ge=1, description="hidden width of the feed-forward maps (paper: 256)")
    dropout: float = Field(0.4, ge=0.0, lt=1.0, description="dropout of the fusion layers and object MLP (paper: 0.4)")


class UmgfConfig(GraphFusionInputs, ModelConfig):  # the fusion's dropout (0.4) over ModelConfig's
    """UMGF NER: CRF over [text encoder; graph fusion] of the first image's entity-type crops."""

    name: str = "umgf"


class UmgfMiConfig(UmgfConfig):
    """UMGF-MI NER (MNER-MI paper, sec. 5.1): UMGF fed all of a post's images stitched into one picture."""

    image_layout: ClassVar[ImageLayout] = "stitched"

    name: str = "umgf_mi"


class UmgfRelationConfig(GraphFusionInputs, RelationModelConfig):
    """UMGF RE (the FocalMRE paper's Table 1 row): the graph fusion, classifier over the entity markers."""

    name: str = "umgf_re"
