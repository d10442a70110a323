"""Config of promptMNER: CLIP scores entity-type prompts against the image; the clues enter a BERT-CRF tagger."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from mmie.features.settings import ImageInputs, ImageLayout
from mmie.models.base import ModelConfig

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
# The MNER types, each as the words its prompt names (Twitter-2015's OTHER and MNER-MI's MIS are MISC).
DEFAULT_ENTITY_TYPES = ("person", "location", "organization", "miscellaneous")


class PromptMnerConfig(ModelConfig, ImageInputs):
    """promptMNER (Wang et al., DASFAA 2022): ``prompt_template`` filled with each of ``entity_types``
    gives the K prompts CLIP scores against the post's first image.

    ``vision_encoder`` is CLIP's own vision tower: it defaults to ``clip_model`` (the same checkpoint), and
    the model refuses another one (the cached features must live in the space of CLIP's visual projection).
    ``freeze_vision`` (default true: cached features) freezes CLIP's vision tower; its text tower, which
    reads only the fixed prompts, is always frozen.
    """

    image_layout: ClassVar[ImageLayout] = "first"

    name: str = "promptmner"
    clip_model: str = Field(DEFAULT_CLIP, description="CLIP checkpoint (Hugging Face id or folder) scoring the prompts")
    prompt_template: str = Field(
        "a photo of a {type}", description="the prompt of each entity type: {type} is replaced by its words"
    )
    entity_types: tuple[str, ...] = Field(
        DEFAULT_ENTITY_TYPES, min_length=2, description="the entity types the prompts name, one prompt each"
    )

    @field_validator("prompt_template")
    @classmethod
    def _names_the_type(cls, template: str) -> str:
        if "{type}" not in template:
            raise ValueError("the prompt template must contain {type}, the place of the entity type's words")
        try:
            template.format(type="person")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"the prompt template has a placeholder other than {{type}}: {error}") from None
        return template

    @field_validator("entity_types")
    @classmethod
    def _distinct_types(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        if any(not t.strip() for t in types):
            raise ValueError("an entity type is empty")
        if len(set(types)) != len(types):
            raise ValueError(f"entity types repeat: {list(types)}")
        return types

    @model_validator(mode="before")
    @classmethod
    def _vision_tower_of_clip(cls, values: Any) -> Any:
        """Without a ``vision_encoder``, the images are read with the vision tower of ``clip_model``."""
        if isinstance(values, dict) and values.get("vision_encoder") is None:
            values = {**values, "vision_encoder": values.get("clip_model", DEFAULT_CLIP)}
        return values

    @property
    def prompts(self) -> list[str]:
        """The K prompts, in the order of ``entity_types``."""
        return [self.prompt_template.format(type=entity_type) for entity_type in self.entity_types]
