"""Configs of VisualPT-MoE and VisualPT-MoE-MI (NER, cross-entropy head).

Both read the image (``image_layout``) and its crops as multi-scale tokens (``multiscale``: the
backbone's stages pooled to ``prefix_grid x prefix_grid``, as HVPNeT's), and, for the experts that
read text, the image's object tags and caption from an image-text file (``image_text``,
docs/imagetext.md). ``experts`` names the experts the model has; the default is the three that need
nothing but the images (offline); the paper's five add ``tags`` and ``caption``, which need the file.
VisualPT-MoE reads the FIRST image (the multi-image papers' single-image row); VisualPT-MoE-MI all
the post's images stitched 2 x 2 into one picture (MNER-MI paper, sec. 5.1).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from mmie.features.settings import ImageLayout, ImageTextInputs
from mmie.models.base import ModelConfig
from mmie.models.hvpnet.configuration import MultiScaleCropInputs

# The five experts of the paper, in the reference's order.
EXPERTS = ("image", "crops", "tags", "caption", "random")
Expert = Literal["image", "crops", "tags", "caption", "random"]
# The experts that read an image-text provider's text (the field of ImageText each reads).
TEXT_EXPERTS = {"tags": "tags", "caption": "caption"}


class VisualptMoeConfig(ModelConfig, MultiScaleCropInputs, ImageTextInputs):
    """VisualPT-MoE NER: five prefix experts of the first image, mixed per layer, cross-entropy head."""

    image_layout: ClassVar[ImageLayout] = "first"

    name: str = "visualpt_moe"
    prompt_length: int = Field(
        16,
        ge=1,
        le=256,
        description="P: prefix tokens of every expert and layer (paper: 16 = 4 image + 12 crop tokens)",
    )
    expert_bottleneck: int = Field(1024, ge=1, description="hidden width of each expert's MLP (reference: 1024)")
    alpha: float = Field(1e-4, ge=0.0, lt=1.0, description="weight of the balance loss: (1 - alpha) CE + alpha B")
    gate_noise: float = Field(1 / 16, ge=0.0, description="std of the noise on the gate logits in training")
    experts: tuple[Expert, ...] = Field(
        ("image", "crops", "random"),
        description="the experts the model has (of image, crops, tags, caption, random); tags and caption need "
        "model.image_text",
    )

    @field_validator("experts")
    @classmethod
    def _experts_have_inputs(cls, experts: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if not experts:
            raise ValueError("at least one expert")
        if len(set(experts)) != len(experts):
            raise ValueError("an expert is named twice")
        needing = [name for name in experts if name in TEXT_EXPERTS]
        if needing and info.data.get("image_text") is None:
            raise ValueError(
                f"the {' and '.join(needing)} expert(s) read the images' text, and model.image_text names no "
                "image-text file (docs/imagetext.md: `mmie imagetext build` or `convert` makes one); give one, "
                "or leave them out of model.experts"
            )
        return tuple(name for name in EXPERTS if name in experts)  # the reference's order

    @field_validator("prompt_length")
    @classmethod
    def _prompt_holds_the_tokens(cls, length: int, info: ValidationInfo) -> int:
        tokens = info.data.get("prefix_grid", 2) ** 2
        crops = info.data.get("regions_per_image", 3) * tokens
        if length < max(tokens, crops):
            raise ValueError(
                f"P must hold the image's {tokens} tokens and its crops' {crops} (regions_per_image x prefix_grid^2)"
            )
        return length

    @property
    def image_slots(self) -> int:
        return self.max_images if self.image_layout == "all" else 1

    @property
    def image_text_fields(self) -> tuple[str, ...]:
        return tuple(TEXT_EXPERTS[name] for name in self.experts if name in TEXT_EXPERTS)

    @property
    def text_tokens(self) -> int:
        return self.prompt_length


class VisualptMoeMiConfig(VisualptMoeConfig):
    """VisualPT-MoE-MI NER: VisualPT-MoE fed all of the post's images stitched 2 x 2 into one picture."""

    image_layout: ClassVar[ImageLayout] = "stitched"

    name: str = "visualpt_moe_mi"
