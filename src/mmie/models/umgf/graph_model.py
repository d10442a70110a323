"""What UMGF's NER and RE models share: the vision encoder over the entity-type crops and the graph fusion.

The visual nodes of a post are the crops of its picture, one per query of ``region_queries`` (UMGF:
person, location, organization, miscellaneous), from the processor as frozen features
(``region_features [B, M, k, D]``) or as pixels for a fine-tuned encoder (``region_pixel_values
[B, M, k, 3, H, W]``), with ``region_mask [B, M, k]`` and ``image_mask [B, M]`` (M = 1: the first or
the stitched picture). A missing crop, or a post without an image, is no node: it has no edge
(:mod:`mmie.models.layers.graph_fusion`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mmie.encoders.vision import scatter_to_slots
from mmie.models.image_model import ImageModelMixin
from mmie.models.layers.graph_fusion import GraphFusion, GraphFusionOutput

if TYPE_CHECKING:
    from mmie.encoders.vision import VisionEncoder
    from mmie.models.umgf.configuration import GraphFusionInputs


class GraphFusionMixin(ImageModelMixin):
    """The visual side of UMGF (a mixin before the text model's base class)."""

    fusion: GraphFusion

    def build_graph_fusion(self, config: GraphFusionInputs, vision_encoder: VisionEncoder, text_dim: int) -> None:
        self.vision_encoder = vision_encoder
        self.fusion = GraphFusion(
            text_dim,
            vision_encoder.hidden_size,
            config.fusion_dim,
            config.fusion_layers,
            config.fusion_heads,
            config.fusion_feedforward,
            config.dropout,
        )

    def object_nodes(
        self,
        image_mask: torch.Tensor,
        region_mask: torch.Tensor,
        region_features: torch.Tensor | None,
        region_pixel_values: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The crops as nodes ``[B, M k, D]`` (zeros where none) and their mask ``[B, M k]``."""
        mask = region_mask.bool() & image_mask.bool()[..., None]  # no crop under a padded picture
        if region_features is None:
            if region_pixel_values is None:
                raise ValueError(f"{type(self).__name__} reads crops: give region_features or region_pixel_values")
            if mask.any():  # only the real crops are encoded
                region_features = scatter_to_slots(self.encode_images(region_pixel_values[mask]).global_features, mask)
            else:
                region_features = region_pixel_values.new_zeros((*mask.shape, self.image_dim))
        objects = region_features.masked_fill(~mask[..., None], 0.0)
        return objects.flatten(1, 2), mask.flatten(1, 2)  # [B, M, k, D] -> [B, M k, D]

    def fuse(
        self,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        image_mask: torch.Tensor,
        region_mask: torch.Tensor,
        region_features: torch.Tensor | None,
        region_pixel_values: torch.Tensor | None,
    ) -> GraphFusionOutput:
        """X^L of the sub-words ``text [B, n, d_t]`` fused with the post's crops (G1-G8)."""
        objects, object_mask = self.object_nodes(image_mask, region_mask, region_features, region_pixel_values)
        return self.fusion(text, text_mask, objects.to(text.dtype), object_mask)
