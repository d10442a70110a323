"""What every image model shares: its vision encoder, built, saved and run in one way.

:class:`ImageModelMixin` goes first in the bases of an image model (``class VisualPrefixTagger(
ImageModelMixin, BertCrfTagger)``): it adds the ``vision_encoder`` part (loaded by name, or rebuilt
from a saved folder's components and then overwritten by its weights), keeps that part out of the
head learning rate, and encodes the real images of a batch only (padded slots cost nothing).

With the text-only switch (``use_images: false``, :class:`~mmie.features.settings.ImageInputs`) no
vision encoder is built or loaded (the model has no ``vision_encoder``, nor its saved folder), and the
model builds none of its image layers (:attr:`ImageModelMixin.uses_images`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from mmie.encoders.vision import VisionEncoder, VisionOutput, load_vision_encoder, pool_regions, scatter_to_slots
from mmie.features.settings import ImageInputs

if TYPE_CHECKING:
    from mmie.models.base import ModelConfig

# Parameters whose names start with this belong to the pretrained vision encoder.
VISION_PREFIX = "vision_encoder."
# Images per vision-encoder call when no gradient flows through it: a batch of 16 posts holds up to
# 16 x (4 + 8) images and crops, and EfficientNet's activations for all of them at once take ~2 GB.
ENCODE_CHUNK = 32


class ImageModelMixin:
    """The vision-encoder part of an image model (a mixin before an :class:`ExtractionModel` base)."""

    vision_encoder: VisionEncoder

    @classmethod
    def build_components(cls, config: ModelConfig, component_configs: dict[str, dict] | None = None) -> dict:
        components: dict[str, Any] = super().build_components(config, component_configs)  # type: ignore[misc]
        assert isinstance(config, ImageInputs)
        if not config.use_images:  # the text-only switch: no vision encoder is loaded
            return components
        # Rebuilt by name also from a saved model folder; the folder's weights then overwrite it.
        vision = (component_configs or {}).get("vision_encoder", {})
        components["vision_encoder"] = load_vision_encoder(
            vision.get("name", config.vision_encoder),
            frozen=vision.get("frozen", config.freeze_vision),
            multiscale=config.multiscale,
        )
        return components

    @property
    def uses_images(self) -> bool:
        """False with the text-only switch (``use_images: false``): no vision encoder, no image layers."""
        config = self.model_config  # type: ignore[attr-defined]
        return bool(config.use_images)

    def attach_vision_encoder(self, vision_encoder: VisionEncoder | None) -> bool:
        """Keep ``vision_encoder`` (None with the text-only switch, and only then); True when the model reads images."""
        if (vision_encoder is not None) != self.uses_images:
            use_images = self.uses_images
            raise TypeError(f"{type(self).__name__} with use_images: {use_images} needs build_components' parts")
        if vision_encoder is not None:
            self.vision_encoder = vision_encoder
        return self.uses_images

    def component_configs(self) -> dict[str, dict]:
        if not self.uses_images:
            return super().component_configs()  # type: ignore[misc]
        return {
            **super().component_configs(),  # type: ignore[misc]
            "vision_encoder": {"name": self.vision_encoder.name, "frozen": self.vision_encoder.frozen},
        }

    def is_head_parameter(self, name: str) -> bool:
        return super().is_head_parameter(name) and not name.startswith(VISION_PREFIX)  # type: ignore[misc]

    @property
    def image_dim(self) -> int:
        return self.vision_encoder.hidden_size

    def encode_images(self, pixels: torch.Tensor) -> VisionOutput:
        """Encode real images ``[N, 3, H, W]`` with the vision encoder: with gradients when it is
        fine-tuned and training, otherwise in chunks that keep the activations' memory flat."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.vision_encoder.frozen):
            if torch.is_grad_enabled() or len(pixels) <= ENCODE_CHUNK:
                return self.vision_encoder.encode_pixels(pixels)
            outputs = [self.vision_encoder.encode_pixels(chunk) for chunk in pixels.split(ENCODE_CHUNK)]
        return VisionOutput(
            global_features=torch.cat([out.global_features for out in outputs]),
            region_features=torch.cat([out.region_features for out in outputs]),
        )


class ImageGridMixin(ImageModelMixin):
    """An image model that reads one picture per post as a grid of region vectors (``region_cells``
    per side): UMT and MAF over BERT, GVATT and AdaCAN over the word BiLSTM.

    Image inputs (one image slot, ``image_mask [B, 1]``: False = the post has no image):
    ``region_features [B, 1, R, D]``, the frozen encoder's grid pooled to ``region_cells^2`` regions
    (the feature cache), or ``pixel_values [B, 1, 3, H, W]`` encoded here (fine-tuned; posts without
    an image are not encoded). A post without an image gets an all-zero grid and ``present`` False.
    """

    model_config: Any

    def image_grid(
        self,
        image_mask: torch.Tensor,
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The picture of each post as regions ``[B, R, D]`` (zeros without one) and ``present [B]``."""
        present = image_mask.bool()[:, 0]
        if region_features is not None:
            grid = region_features[:, 0]  # [B, 1, R, D] -> [B, R, D]
        elif pixel_values is not None:
            cells = self.model_config.region_cells
            grid = pixel_values.new_zeros(len(present), cells * cells, self.image_dim)
            if present.any():  # only the real pictures are encoded
                out = self.encode_images(pixel_values[:, 0][present])
                regions = pool_regions(out.region_features, self.vision_encoder.grid_size, cells)
                grid = scatter_to_slots(regions, present)
        else:
            raise ValueError(f"{type(self).__name__} reads an image grid: give region_features or pixel_values")
        return grid * present[:, None, None].to(grid.dtype), present
