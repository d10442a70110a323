"""Config of ITA: BERT-CRF over the post with the text of its images appended, aligned with the text-only view."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mmie.features.settings import AppendedTextInputs
from mmie.models.base import ModelConfig


class ItaConfig(ModelConfig, AppendedTextInputs):
    """ITA (Wang et al., NAACL 2022). ``alignment_weight`` and ``temperature`` are the authors'
    ``multi_view_rate`` (0.5) and ``temperature`` (2 on Twitter-2017, 4 on Twitter-2015)."""

    name: str = "ita"
    alignment_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="lambda: the cross-view KL's weight; the image-text view's NLL gets 1 - lambda"
    )
    temperature: float = Field(2.0, gt=0.0, description="T of the cross-view KL over the CRF marginals")
    predict_view: Literal["image_text", "text"] = Field(
        "image_text", description="the view decoded at prediction: with the image text (paper) or the post alone"
    )
