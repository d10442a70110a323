"""What HVPNeT's NER and RE models share: the vision encoder over the images and their crops, and
the hierarchical visual prefix they make (:mod:`mmie.models.layers.hierarchical_prefix`).

A post's visual blocks, in order: image 1, its k crops, image 2, its k crops, ... (HVPNeT: one image,
so 1 + k blocks, the reference's 1 + 3; HVPNeT-MI: M x (1 + k)). Each block is T = cells^2 tokens of
the backbone's S stages. Inputs come as frozen features from the cache (``region_features [B, M, T, D]``
for the images, ``crop_features [B, M, k, T, D]`` for the crops) or as pixels for a fine-tuned
backbone (``pixel_values``, ``crop_pixel_values``), always with ``image_mask [B, M]`` and
``crop_mask [B, M, k]``. A padded image slot and a missing crop are blocks of the tensor, masked in the
prefix: they get no attention, so their content never changes the output.

The text-only switch (``use_images: false``) builds neither the vision encoder nor the prefix: the text
encoder runs as is (no past keys/values), so HVPNeT NER is BERT-CRF and HVPNeT RE is MTB's
[h_<s>; h_<o>] classifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mmie.encoders.multiscale import MultiScaleEncoder
from mmie.encoders.vision import scatter_to_slots
from mmie.models.image_model import ImageModelMixin
from mmie.models.layers.hierarchical_prefix import GatedPrefix, HierarchicalVisualPrefix
from mmie.models.layers.visual_prefix import require_prefix_support

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder
    from mmie.models.hvpnet.configuration import HvpnetInputs


class HierarchicalPrefixMixin(ImageModelMixin):
    """The visual side of HVPNeT (a mixin before the text model's base class)."""

    visual_prefix: HierarchicalVisualPrefix

    def build_visual_prefix(
        self, config: HvpnetInputs, vision_encoder: VisionEncoder | None, text_encoder: PreTrainedModel
    ) -> None:
        if vision_encoder is None:  # the text-only switch: no prefix
            self.attach_vision_encoder(None)
            return
        require_prefix_support(text_encoder)  # the prefix goes in as the encoder's key/value cache (eq. 6)
        if not isinstance(vision_encoder, MultiScaleEncoder):
            raise TypeError(f"{type(self).__name__} reads stage features: build it with create_model")
        self.attach_vision_encoder(vision_encoder)
        tokens = config.prefix_grid**2
        self.visual_prefix = HierarchicalVisualPrefix(
            vision_encoder.stage_dims, tokens, text_encoder.config, config.prefix_bottleneck
        )

    def visual_blocks(
        self,
        image_mask: torch.Tensor,
        crop_mask: torch.Tensor,
        region_features: torch.Tensor | None = None,
        crop_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        crop_pixel_values: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every block's tokens ``[B, M * (1 + k), T, D]`` and the block mask ``[B, M * (1 + k)]``."""
        image_mask = image_mask.bool()
        crop_mask = crop_mask.bool() & image_mask.unsqueeze(-1)  # no crop under a padded image
        if pixel_values is not None:
            if crop_pixel_values is None:
                raise ValueError(f"{type(self).__name__}: pixel_values need crop_pixel_values")
            region_features, crop_features = self._encode_pixels(pixel_values, image_mask, crop_pixel_values, crop_mask)
        elif region_features is None or crop_features is None:
            raise ValueError(f"{type(self).__name__} needs region_features + crop_features, or pixel_values")
        images = region_features.masked_fill(~image_mask[..., None, None], 0.0)  # [B, M, T, D]
        crops = crop_features.masked_fill(~crop_mask[..., None, None], 0.0)  # [B, M, k, T, D]
        # [B, M, 1 + k, T, D] -> [B, M * (1 + k), T, D]: each image followed by its crops
        blocks = torch.cat([images.unsqueeze(2), crops], dim=2).flatten(1, 2)
        mask = torch.cat([image_mask.unsqueeze(2), crop_mask], dim=2).flatten(1, 2)
        return blocks, mask

    def _encode_pixels(
        self, pixels: torch.Tensor, image_mask: torch.Tensor, crop_pixels: torch.Tensor, crop_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The real images and real crops only, in one call of the (maybe fine-tuned) backbone."""
        real = torch.cat([pixels[image_mask], crop_pixels[crop_mask]])
        shape = (self.vision_encoder.num_regions, self.image_dim)
        if real.shape[0] == 0:
            return pixels.new_zeros((*image_mask.shape, *shape)), pixels.new_zeros((*crop_mask.shape, *shape))
        tokens = self.encode_images(real).region_features  # [N, T, D]
        n_images = int(image_mask.sum())
        return scatter_to_slots(tokens[:n_images], image_mask), scatter_to_slots(tokens[n_images:], crop_mask)

    def gated_prefix(
        self,
        image_mask: torch.Tensor | None,
        crop_mask: torch.Tensor | None,
        region_features: torch.Tensor | None = None,
        crop_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        crop_pixel_values: torch.Tensor | None = None,
    ) -> GatedPrefix | None:
        """Eq. 1-5 over the post's blocks: the prefix of every text-encoder layer and its gates (None
        with the text-only switch: the images are never read, even when given)."""
        if not self.uses_images:
            return None
        if image_mask is None or crop_mask is None:
            raise ValueError(f"{type(self).__name__} reads images: its batch needs image_mask and crop_mask")
        blocks, mask = self.visual_blocks(
            image_mask, crop_mask, region_features, crop_features, pixel_values, crop_pixel_values
        )
        return self.visual_prefix(blocks, mask)
