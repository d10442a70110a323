"""Configs of UMT, UMT-MI and MAF: BERT-CRF taggers that read one image as a grid of regions; and of
UMT-RE, UMT's interaction with a relation head.

Both originals read ResNet-152's 7 x 7 x 2048 feature map of the (first) image: ``region_grid: 7``
pools any vision encoder's patch or cell grid to 7 x 7 = 49 regions (EfficientNet-Lite0's own grid is
7 x 7 at 224 px; ViT-B/16's 14 x 14 patches are average-pooled 2 x 2). Which image: the first
(``image_layout: first``, as both papers) or, for UMT-MI, all of the post's images stitched 2 x 2
into one picture (MNER-MI paper, sec. 5.1).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from mmie.features.settings import ImageInputs, ImageLayout
from mmie.models.base import ModelConfig
from mmie.models.text.configuration import RelationModelConfig


class ImageGridConfig(ModelConfig, ImageInputs):
    """A text tagger reading one picture as ``region_grid x region_grid`` region vectors."""

    image_layout: ClassVar[ImageLayout] = "first"

    region_grid: int = Field(
        7,
        ge=1,
        le=16,
        description="the image is read as region_grid x region_grid regions (7: 49, as ResNet-152's map)",
    )

    @property
    def region_cells(self) -> int:
        return self.region_grid


class UmtConfig(ImageGridConfig):
    """UMT (Yu et al., ACL 2020); ``span_mix`` and ``span_weight`` are alpha and beta of its code."""

    text_only_switch: ClassVar[bool] = True  # use_images: false -> BERT-CRF + the auxiliary span task

    name: str = "umt"
    span_mix: float = Field(
        0.5, ge=0.0, le=1.0, description="alpha: weight of the main emissions against the converted span emissions"
    )
    span_weight: float = Field(0.5, ge=0.0, description="beta: weight of the auxiliary entity-span loss")


class UmtMiConfig(UmtConfig):
    """UMT-MI (MNER-MI paper, sec. 5.1): UMT fed all of a post's images stitched into one picture."""

    image_layout: ClassVar[ImageLayout] = "stitched"

    name: str = "umt_mi"


class UmtRelationConfig(RelationModelConfig, ImageGridConfig):
    """UMT with a relation head (the "UMT" rows of the MRE tables): its multimodal interaction over the
    marked text and the first image's grid; no entity-span task (nothing in RE to tag)."""

    name: str = "umt_re"


class MafConfig(ImageGridConfig):
    """MAF (Xu et al., WSDM 2022); defaults from the authors' run script (``run_gate_cl.py``)."""

    text_only_switch: ClassVar[bool] = True  # use_images: false -> BERT-CRF (no matching, alignment or gate)

    name: str = "maf"
    negative_fraction: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="share of a training batch's posts with an image whose images are swapped to make the matching "
        "module's negatives (the code: the last 16 of 64)",
    )
    temperature: float = Field(0.179, gt=0.0, description="tau of the contrastive alignment")
    text_to_image_weight: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="weight of the text-to-image direction of the contrastive loss (1 - it: image-to-text)",
    )
    ner_weight: float = Field(
        0.62, ge=0.0, le=1.0, description="weight of the CRF loss; 1 - it weighs matching + contrastive losses"
    )
