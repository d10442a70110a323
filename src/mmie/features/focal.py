"""Relation instances -> marked text + the patch features of every focal copy of every image (FocalMRE).

For each image slot (up to ``max_images``; MNRE: one) the VG provider gives up to ``regions_per_image``
regions (``regions``: the crop dictionary, as GLRA reads it -- each crop located in its picture --,
the offline grid, or a detector) and the OD provider up to ``od_per_image`` (``od_regions``: grid,
detector, crop dictionary, none). Each region becomes one augmented picture
(:func:`mmie.regions.focal.focal_images`; ``image_input: cropped``: the region cut out; ``original``:
the image itself once per set). The augmented pictures go through the frozen-feature cache like any
image: the cache hashes their decoded pixels, so a copy is encoded once for every run and model.
Its grid of patch features is average-pooled to ``patch_cells x patch_cells`` (7 x 7 = the paper's 49
patches; capped at the encoder's own grid) and kept in float16.

Per example (M image slots, S = VG + OD copies per slot, P patches, D encoder width):

* ``focal_features [m, S, P, D]`` (float16), VG copies first, then OD copies, for the post's m real
  images only (at least one slot; collate pads a batch to its largest m, the masks say what is real);
* ``focal_mask [M, S]``: False where an image has fewer regions, or no image is there;
* ``image_mask [M]``.

Memory: the features are held for the whole split (the engine featurizes up front): S x P x D x 2
bytes per real image, 0.9 MB for 7 copies x 49 patches x 1280 (EfficientNet-Lite0), 0.5 MB at 768
(ViT-B/32): MNRE's 12,247 training instances take about 6.4 GB at the paper's settings; a smaller
``patch_cells`` divides it by (7 / cells)^2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from mmie.data.images import ImageDirs, ImagePolicy
from mmie.data.schema import RelationInstance
from mmie.encoders.hub import local_files_only
from mmie.encoders.vision import pool_regions, scatter_to_slots
from mmie.errors import ConfigError
from mmie.features.regions import RelationImageFeaturizer
from mmie.features.settings import FocalInputs
from mmie.regions.base import ImageSource, RegionProvider
from mmie.regions.detector import DetectorRegions
from mmie.regions.focal import focal_images
from mmie.regions.grid import GridSaliencyRegions
from mmie.regions.precomputed import PrecomputedRegions
from mmie.regions.queries import record_queries

if TYPE_CHECKING:
    from mmie.features.text import Featurizer


class FocalFeaturizer(RelationImageFeaturizer):
    """Wraps the relation featurizer; adds the focal copies' patch features, as its :class:`FocalInputs` say."""

    config: FocalInputs

    def __init__(
        self, text: Featurizer, config: FocalInputs, images: ImageDirs | None, policy: ImagePolicy = "error"
    ) -> None:
        if not config.freeze_vision:
            raise ConfigError("model.freeze_vision: FocalMRE reads frozen patch features of its focal copies (cache)")
        super().__init__(text, config, images, policy)
        self.n_vg, self.n_od = config.focal_sets
        self._detector: RegionProvider | None = None
        self._od_provider: RegionProvider | None = None

    # ------------------------------------------------------------------------- providers

    def detector(self) -> RegionProvider:
        if self._detector is None:
            if not self.config.detector:
                raise ConfigError("model.detector: regions or od_regions is 'detector' but no detector is named")
            with local_files_only(self.local_only):
                self._detector = DetectorRegions(self.config.detector)
        return self._detector

    @property
    def provider(self) -> RegionProvider:
        """The VG provider (the crop dictionary and the grid as GLRA reads them, or the detector)."""
        if self.config.regions == "detector":
            return self.detector()
        return super().provider

    @property
    def od_provider(self) -> RegionProvider:
        if self._od_provider is None:
            kind = self.config.od_regions
            if kind == "detector":
                self._od_provider = self.detector()
            elif kind == "grid":
                self._od_provider = GridSaliencyRegions(self.encoder, cache=self.cache)
            elif kind == "precomputed":
                if self.config.od_region_dict is None:
                    raise ConfigError(
                        "model.od_region_dict: od_regions is 'precomputed' but no crop dictionary is named"
                    )
                self._od_provider = PrecomputedRegions(
                    self.config.od_region_dict, self.config.od_region_dir, key=self.config.region_key
                )
            else:
                raise ConfigError("model.od_regions: 'none' has no provider")
        return self._od_provider

    # -------------------------------------------------------------------------- features

    @property
    def patch_cells(self) -> int:
        grid = self.encoder.grid_size
        return min(self.config.patch_cells, max(grid)) if grid is not None else self.config.patch_cells

    def _copies(self, source: ImageSource, provider: RegionProvider | None, queries: list[str], n: int) -> list:
        """The augmented pictures of one image for one set (at most ``n``)."""
        if n == 0:
            return []
        if self.config.image_input == "original":  # the file itself: the cache entry other models share
            return [source.path if source.path is not None else source.load()]
        assert provider is not None
        regions = provider.find(source, queries, n)[:n]
        if self.config.image_input == "cropped":
            return [region.item(source) for region in regions]
        return focal_images(source, regions, width=self.config.frame_width)

    def _example_inputs(self, instances: Sequence[RelationInstance]) -> list[dict[str, torch.Tensor]]:
        sets = self.n_vg + self.n_od
        image_mask = torch.zeros(len(instances), self.slots, dtype=torch.bool)
        focal_mask = torch.zeros(len(instances), self.slots, sets, dtype=torch.bool)
        items: list[Any] = []  # pictures in (instance, slot, copy) order: VG copies, then OD copies
        needs_providers = self.config.image_input != "original"
        for row, instance in enumerate(instances):
            queries = record_queries(instance)
            for slot, ref in enumerate(self._slot_refs(instance)):
                source = self._image_source(instance, ref)  # a file, or an uploaded picture
                vg = self._copies(source, self.provider if needs_providers else None, queries, self.n_vg)
                od = self._copies(
                    source, self.od_provider if needs_providers and self.n_od else None, queries, self.n_od
                )
                image_mask[row, slot] = True
                focal_mask[row, slot, : len(vg)] = True
                focal_mask[row, slot, self.n_vg : self.n_vg + len(od)] = True
                items.extend(vg + od)
        cache = self.cache
        assert cache is not None
        if items:
            _, patches = cache.get_many(items)
        else:
            patches = torch.zeros(0, self.encoder.num_regions, self.encoder.hidden_size)
        pooled = pool_regions(patches, self.encoder.grid_size, self.patch_cells).half()  # [N, P, D]
        slotted = scatter_to_slots(pooled, focal_mask)  # [N, M, S, P, D]
        # Only the real images' slots are kept (at least one): collate pads them to the batch's most images.
        used = image_mask.sum(dim=1).clamp(min=1)
        return [
            {
                "image_mask": image_mask[row].clone(),
                "focal_mask": focal_mask[row].clone(),
                "focal_features": slotted[row, : int(used[row])].clone(),
            }
            for row in range(len(instances))
        ]
