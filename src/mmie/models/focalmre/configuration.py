"""FocalMRE's config: its model switches (Table 3) beside its inputs (:class:`FocalInputs`: the VG and
OD region providers, the kind of augmented image of Table 5, the patch grid)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from mmie.features.settings import FocalInputs
from mmie.models.glra.configuration import ImageRelationConfig


# FocalInputs first: its fields (the VG provider's wider choice, 4 regions per image) win over RegionInputs'.
class FocalMreConfig(FocalInputs, ImageRelationConfig):
    text_only_switch: ClassVar[bool] = True  # use_images: false -> eq. 6-7 over the text vectors alone

    name: str = "focalmre"
    focal_attention: bool = Field(True, description="eq. 3 text-to-patch attention (Table 3: w/o Focal Attention)")
    gating: bool = Field(True, description="eq. 4 gate (Table 3: w/o Gating)")
    attention_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout on the focal attention's output")
