"""Posts (NER) or relation instances (RE) -> text + the multi-scale tokens of each image and of its crops:
the inputs of HVPNeT and HVPNeT-MI (:mod:`mmie.models.hvpnet`).

HVPNeT reads the whole image and its top-k visual-grounding crops through one backbone, each as its
four stages pooled to 2 x 2 (:mod:`mmie.encoders.multiscale`). On top of the image RE featurizer
(the slots of the config's ``image_layout``, the crops of its region provider), every image and every
crop here is read as those pooled stage tokens:

* frozen vision encoder: ``region_features [M, cells^2, D]`` (the image's tokens) and
  ``crop_features [M, k, cells^2, D]`` (its crops'), both from the feature cache under the multi-scale
  encoder's key; ``image_features [M, D]`` (their mean) comes along;
* fine-tuned: ``pixel_values [M, 3, H, W]`` and ``crop_pixel_values [M, k, 3, H, W]``, made when the
  batch is collated;
* always ``image_mask [M]`` and ``crop_mask [M, k]`` (False where an image has fewer than k crops).

The offline grid regions (``regions: grid``) rank the cells of the backbone's own final grid (its
plain features, cached under the plain encoder's key), not the 2 x 2 multi-scale cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from mmie.encoders.cache import FeatureCache, default_cache_root
from mmie.encoders.multiscale import MultiScaleEncoder
from mmie.features.regions import RelationImageFeaturizer
from mmie.regions.grid import GridSaliencyRegions

if TYPE_CHECKING:
    from mmie.encoders.cache import ImageItem
    from mmie.regions.base import RegionProvider

# The region featurizer's keys, as the crops of HVPNeT are named (its images' pooled tokens are the
# `region_features` of the image featurizer, as for the other prefix models).
CROP_KEYS = {"region_mask": "crop_mask", "region_features": "crop_features", "region_pixel_values": "crop_pixel_values"}


class MultiScaleRegionFeaturizer(RelationImageFeaturizer):
    """Wraps a text featurizer (NER or RE); adds the multi-scale tokens of the images and of their crops."""

    @property
    def multiscale_encoder(self) -> MultiScaleEncoder:
        encoder = self.encoder
        if not isinstance(encoder, MultiScaleEncoder):
            raise TypeError(f"{self.config.name}: its config must name multi-scale features (ImageInputs.multiscale)")
        return encoder

    def _grid_provider(self) -> RegionProvider:
        """Grid regions on the backbone's own feature grid (7 x 7 for EfficientNet-Lite0), not the pooled cells."""
        base = self.multiscale_encoder.base
        cache = None
        if self.cache is not None:  # the plain encoder's features, in memory too when the model's are
            root = (self.config.feature_cache or default_cache_root()) if self.cache.persistent else None
            cache = FeatureCache(root, base, policy=self.policy)
        return GridSaliencyRegions(base, cache=cache)

    def _crop_vectors(self, crops: list[ImageItem]) -> torch.Tensor:
        """Each crop's pooled stage tokens ``[n, cells^2, D]``."""
        assert self.cache is not None
        if crops:
            return self.cache.get_many(crops)[1]
        return torch.zeros(0, self.encoder.num_regions, self.encoder.hidden_size)

    def _example_inputs(self, records: Sequence[Any]) -> list[dict[str, Any]]:
        image_rows = self._image_inputs([self._post(record) for record in records])
        crop_rows = self._region_inputs(records)
        return [
            {**images, **{CROP_KEYS[key]: value for key, value in crops.items()}}
            for images, crops in zip(image_rows, crop_rows)
        ]
