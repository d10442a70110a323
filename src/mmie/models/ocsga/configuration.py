"""Config of OCSGA: BERT-CRF with the object labels of the image as text, dense co-attention and a gate."""

from __future__ import annotations

from pydantic import Field

from mmie.features.settings import ObjectLabelInputs
from mmie.models.base import ModelConfig


class OcsgaConfig(ModelConfig, ObjectLabelInputs):
    """OCSGA (Wu et al., ACM MM 2020). ``co_attention_layers``: stacked co-attention layers (mmie's
    default 1: the count of the paper is not recorded here)."""

    name: str = "ocsga"
    co_attention_layers: int = Field(1, ge=1, le=12, description="stacked dense co-attention layers (D1)-(D3)")
