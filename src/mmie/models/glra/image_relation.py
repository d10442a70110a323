"""The base of the image RE models (GLRA, the MTB image baselines, FocalMRE, MKGformer, HVFormer,
VisualBERT): marked text, the post's images and k regions per image, encoded by one vision encoder.

Image inputs come as frozen features from the cache (``image_features [B, M, D]``, ``region_features
[B, M, k, D]``) or as pixels for a fine-tuned encoder (``pixel_values``, ``region_pixel_values``),
always with ``image_mask [B, M]`` and ``region_mask [B, M, k]``. Deviation from the reference code, on
purpose: padded images and padded regions are masked in every attention and relevance (the reference
attends to zero-padded images and always to 3 regions each).

The text-only switch (``use_images: false``, the models whose config has one) builds no vision encoder and
takes a text RE model's batch: :meth:`ImageRelationModel.classify_text` is then the head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn
from transformers.utils import ModelOutput

from mmie.encoders.vision import VisionEncoder, scatter_to_slots
from mmie.models.base import RelationClassificationOutput
from mmie.models.image_model import ImageModelMixin
from mmie.models.text.configuration import RelationModelConfig
from mmie.models.text.relation import MarkedRelationModel

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class ImageRelationOutput(RelationClassificationOutput):
    """RE output of the image models. ``relevance [B, M]``: R of each image slot (0 for padded slots);
    ``region_relevance [B, 2, M, k]``: R of each entity marker and region. None when not computed."""

    relevance: torch.Tensor | None = None
    region_relevance: torch.Tensor | None = None


@dataclass
class PostRegions:
    """Encoded image inputs: ``images [B, M, D]``, ``regions [B, M, k, D]`` and their masks."""

    images: torch.Tensor
    image_mask: torch.Tensor  # [B, M] bool
    regions: torch.Tensor
    region_mask: torch.Tensor  # [B, M, k] bool, False also under every padded image


class ImageRelationModel(ImageModelMixin, MarkedRelationModel):
    """Base of the RE models reading the post's images and k regions per image (which ones: the config's
    ``image_layout`` and ``region_count``, read by the processor)."""

    output_class: ClassVar[type[ModelOutput]] = ImageRelationOutput

    def __init__(
        self,
        config: RelationModelConfig,  # and RegionInputs: the settings of the image inputs
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder | None = None,  # None with the text-only switch
    ) -> None:
        super().__init__(config, labels, text_encoder)
        self.attach_vision_encoder(vision_encoder)
        self.dropout = nn.Dropout(config.dropout)

    # ------------------------------------------------------------------------- running

    def post_regions(
        self,
        image_mask: torch.Tensor,
        region_mask: torch.Tensor,
        image_features: torch.Tensor | None = None,
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        region_pixel_values: torch.Tensor | None = None,
    ) -> PostRegions:
        """Image and region vectors from whichever inputs the batch has; padded slots are zero."""
        image_mask = image_mask.bool()
        region_mask = region_mask.bool() & image_mask.unsqueeze(-1)  # no region under a padded image
        if pixel_values is not None:
            if region_pixel_values is None:
                raise ValueError(f"{type(self).__name__}: pixel_values need region_pixel_values")
            image_features, region_features = self._encode_pixels(
                pixel_values, image_mask, region_pixel_values, region_mask
            )
        elif image_features is None or region_features is None:
            raise ValueError(f"{type(self).__name__} needs image_features + region_features, or pixel_values")
        images = image_features.masked_fill(~image_mask.unsqueeze(-1), 0.0)
        regions = region_features.masked_fill(~region_mask.unsqueeze(-1), 0.0)
        return PostRegions(images, image_mask, regions, region_mask)

    def _encode_pixels(
        self, pixels: torch.Tensor, image_mask: torch.Tensor, region_pixels: torch.Tensor, region_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode the real images and real crops only, in one call of the (maybe fine-tuned) encoder."""
        real = torch.cat([pixels[image_mask], region_pixels[region_mask]])
        if real.shape[0] == 0:
            dims = (*image_mask.shape, self.image_dim)
            return pixels.new_zeros(dims), pixels.new_zeros((*region_mask.shape, self.image_dim))
        vectors = self.encode_images(real).global_features
        n_images = int(image_mask.sum())
        return scatter_to_slots(vectors[:n_images], image_mask), scatter_to_slots(vectors[n_images:], region_mask)

    def encode_marked_text(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None,
        posts: PostRegions,
    ) -> torch.Tensor:
        """The text vectors ``[B, T, d_t]``: the text encoder alone (the images join in the head), unless a
        single-stream subclass (VisualBERT) reads text and images in one pass."""
        return self.encode_text(input_ids, attention_mask, token_type_ids)

    def classify(
        self, hidden: torch.Tensor, markers: torch.Tensor, posts: PostRegions
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
        """The subclass's head: text vectors ``[B, T, d_t]``, start markers ``[B, 2, d_t]`` and the images
        -> logits ``[B, labels]`` and extra outputs (fields of :class:`ImageRelationOutput`)."""
        raise NotImplementedError

    def classify_text(self, hidden: torch.Tensor, markers: torch.Tensor) -> torch.Tensor:
        """The head of the text-only switch (``use_images: false``): text vectors and markers -> logits."""
        raise NotImplementedError

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        image_mask: torch.Tensor | None = None,  # None (and region_mask): the text-only switch's batch
        region_mask: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        region_pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> ImageRelationOutput:
        if not self.uses_images:  # the text-only switch: images are never read, even when given
            hidden = self.encode_text(input_ids, attention_mask, token_type_ids)
            logits = self.classify_text(hidden, self.marker_vectors(hidden, head_start, tail_start))
            text_output = self.output_class(loss=self.loss(logits, labels), logits=logits)
            assert isinstance(text_output, ImageRelationOutput)
            return text_output
        if image_mask is None or region_mask is None:
            raise ValueError(f"{type(self).__name__} reads images: its batch needs image_mask and region_mask")
        posts = self.post_regions(
            image_mask, region_mask, image_features, region_features, pixel_values, region_pixel_values
        )
        hidden = self.encode_marked_text(input_ids, attention_mask, token_type_ids, posts)
        markers = self.marker_vectors(hidden, head_start, tail_start)
        logits, extras = self.classify(hidden, markers, posts)
        output = self.output_class(loss=self.loss(logits, labels), logits=logits, **extras)  # a subclass's outputs
        assert isinstance(output, ImageRelationOutput)
        return output
