"""Relation instances -> marked text + the post's images + k regions per image: the inputs of GLRA and
the image RE baselines (:mod:`mmie.models.glra`), read as their :class:`RegionInputs` say.

On top of :class:`~mmie.features.images.PostImageFeaturizer` (global image inputs, in the
config's ``image_layout``), each image slot gets up to ``k`` regions from a region provider
(:mod:`mmie.regions`), encoded by the same vision encoder as the images:

* ``regions: precomputed`` -- the crops of a crop dictionary (MRE-MI ``images_vg.pth`` + ``images_vg/``
  beside the ``images/`` folder unless ``region_dict``/``region_dir`` say otherwise; one built by
  ``mmie regions build``; the HVPNeT-style dictionaries with ``region_key``);
* ``regions: grid`` -- computed here, offline: the salient cells of the image's own feature grid
  (a text-free saliency ranking, see :mod:`mmie.regions.grid`).

Per example (M image slots, k region slots per image):

* frozen vision encoder: ``region_features [M, k, D]`` (each crop's global vector, from the feature
  cache: a crop is encoded once for every run and model);
* fine-tuned: ``region_pixel_values [M, k, 3, H, W]``, cropped and preprocessed when the batch is
  collated (as the images' pixels are);
* always ``region_mask [M, k]``: False where an image has fewer than k regions (or no image is there).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mmie.data.images import ImageDirs, ImageLoader, ImagePolicy
from mmie.data.schema import MAX_IMAGES, RelationInstance
from mmie.data.stitch import stitch_images
from mmie.encoders.vision import scatter_to_slots
from mmie.errors import ConfigError
from mmie.features.collate import Deferred
from mmie.features.images import PostImageFeaturizer
from mmie.features.settings import RegionInputs
from mmie.regions.base import ImageSource, RegionProvider
from mmie.regions.grid import GridSaliencyRegions
from mmie.regions.precomputed import PrecomputedRegions, default_crop_dict
from mmie.regions.queries import record_queries

if TYPE_CHECKING:
    from typing_extensions import Self

    from mmie.encoders.cache import FeatureCache, ImageItem
    from mmie.features.text import Featurizer


# The reference of a stitched picture: its images' references joined (a key no crop dictionary has).
STITCH_JOIN = "+"


class RelationImageFeaturizer(PostImageFeaturizer):
    """Wraps the relation featurizer; adds image inputs and region inputs, as its :class:`RegionInputs` say."""

    config: RegionInputs

    def __init__(
        self, text: Featurizer, config: RegionInputs, images: ImageDirs | None, policy: ImagePolicy = "error"
    ) -> None:
        super().__init__(text, config, images, policy)
        self.k = config.region_count
        self._provider: RegionProvider | None = None

    @property
    def provider(self) -> RegionProvider:
        """The model's region provider, built on first use (the crop dictionary is read once)."""
        if self._provider is None:
            config = self.config
            if config.regions == "grid":
                self._provider = self._grid_provider()
            else:
                crop_dict = config.region_dict
                if crop_dict is None:
                    # Uploads (InMemoryImages) have no folder either; for_uploads gives them grid regions.
                    if not isinstance(self.loader, ImageLoader):
                        raise ConfigError("model.region_dict: no crop dictionary and no image folder to look beside")
                    crop_dict = default_crop_dict(self.loader.image_dirs[0])
                try:  # the crop folder defaults to images_vg/ beside the dictionary
                    self._provider = PrecomputedRegions(crop_dict, config.region_dir, key=config.region_key)
                except ConfigError as error:
                    raise ConfigError(f"model.region_dict: {error} (or set model.regions: grid)") from None
        return self._provider

    def _grid_provider(self) -> RegionProvider:
        """The offline grid regions, on the cells of the model's own encoder."""
        return GridSaliencyRegions(self.encoder, cache=self.cache)

    def for_uploads(self, shared: dict[str, FeatureCache] | None = None) -> Self:
        """For uploads (see the base class). Uploads have no crop dictionary, so a model trained on
        precomputed regions gets the offline grid regions (:mod:`mmie.regions.grid`)."""
        uploads = super().for_uploads(shared)
        if uploads.k and uploads.config.regions != "grid":
            uploads._provider = uploads._grid_provider()
        return uploads

    @property
    def image_side(self) -> int | None:
        """With regions: enough pixels that a crop of one grid cell still fills the encoder's input."""
        side = self.encoder.input_side
        if side is None or not self.k:
            return super().image_side
        cells = max(self.encoder.grid_size or (2, 2))
        return side * max(2, cells)

    @property
    def region_source(self) -> str:
        """Which regions the model reads: ``"none"``, ``"grid"`` or ``"precomputed"``."""
        if not self.k:
            return "none"
        return getattr(self._provider, "name", None) or self.config.regions

    def _example_inputs(self, instances: Sequence[RelationInstance]) -> list[dict[str, Any]]:
        """The image inputs of each instance (a subclass reading other image inputs overrides this)."""
        image_rows = self._image_inputs([self._post(instance) for instance in instances])
        return [{**images, **regions} for images, regions in zip(image_rows, self._region_inputs(instances))]

    def _slot_refs(self, instance: RelationInstance) -> list[str]:
        """The image references in the model's slots (the same ones the global inputs use). With the
        stitched layout: the one stitched picture (its images' references joined), whose regions a grid
        or a detector finds on the picture the model reads; a crop dictionary has no entry for it, so
        with ``regions: precomputed`` the first image's crops stand in."""
        images = self._post(instance).images
        if self.layout == "stitched" and self.config.regions != "precomputed":
            return [STITCH_JOIN.join(images[:MAX_IMAGES])] if images else []
        return list(images[:1] if self.layout in ("first", "stitched") else images[: self.slots])

    def _region_inputs(self, instances: Sequence[RelationInstance]) -> list[dict[str, Any]]:
        """Per instance ``region_mask`` and ``region_features``, or (fine-tuned) deferred ``region_pixel_values``."""
        mask = torch.zeros(len(instances), self.slots, self.k, dtype=torch.bool)
        found: list[list[tuple[ImageSource, Any]]] = []  # per instance: (source, region) in (slot, region) order
        # A provider that reads no text (grid, precomputed) gives an image the same regions for every
        # pair of its post: look once per image, and encode each crop once.
        looked: dict[str, list[tuple[ImageSource, Any]]] = {}
        for row, instance in enumerate(instances if self.k else ()):
            found.append([])
            for slot, ref in enumerate(self._slot_refs(instance)):
                regions = looked.get(ref) if not self.provider.reads_text else None
                if regions is None:
                    regions = self._find_regions(instance, ref)
                    if not self.provider.reads_text:
                        looked[ref] = regions
                mask[row, slot, : len(regions)] = True
                found[-1].extend(regions)
        if self.cache is None:
            return [
                {
                    "region_pixel_values": self._deferred_crops(found[row] if self.k else [], mask[row]),
                    "region_mask": mask[row].clone(),
                }
                for row in range(len(instances))
            ]
        unique: dict[int, int] = {}  # id(region) -> its row among the crops to encode
        crops_to_encode: list[ImageItem] = []
        for source, region in (pair for regions in found for pair in regions):
            if id(region) not in unique:
                unique[id(region)] = len(crops_to_encode)
                crops_to_encode.append(region.item(source))
        crops = self._crop_vectors(crops_to_encode)
        order = torch.tensor([unique[id(region)] for regions in found for _, region in regions], dtype=torch.long)
        rows = {"region_features": scatter_to_slots(crops[order], mask), "region_mask": mask}
        return [{key: value[row].clone() for key, value in rows.items()} for row in range(len(instances))]

    def _crop_vectors(self, crops: list[ImageItem]) -> torch.Tensor:
        """What each crop becomes: its global vector ``[n, D]`` (from the feature cache)."""
        assert self.cache is not None
        return self.cache.get_many(crops)[0] if crops else torch.zeros(0, self.encoder.hidden_size)

    def _find_regions(self, instance: RelationInstance, ref: str) -> list[tuple[ImageSource, Any]]:
        """The provider's top-k regions of one image of the instance's post, each with its source."""
        source = self._image_source(instance, ref)
        return [(source, region) for region in self.provider.find(source, record_queries(instance), self.k)[: self.k]]

    def _image_source(self, instance: RelationInstance, ref: str) -> ImageSource:
        """One image of the instance's post as region providers take it: its file, the upload itself, or
        (the stitched layout) the stitched picture."""
        assert self.loader is not None
        if self.layout == "stitched" and self.config.regions != "precomputed":
            post = self._post(instance)
            pictures = [self.loader.load(image, post.id) for image in post.images[:MAX_IMAGES]]
            return ImageSource(ref, None, post.id, image=stitch_images(pictures))  # the picture the model reads
        item = self.loader.item(ref, instance.id)
        if isinstance(item, Path):
            return ImageSource(ref, item, instance.id, self.policy)
        return ImageSource(ref, None, instance.id, image=item)

    def _deferred_crops(self, regions: list[tuple[ImageSource, Any]], mask: torch.Tensor) -> Deferred:
        """The crops' pixels ``[M, k, 3, H, W]``, cut and preprocessed when the batch is collated."""

        def pixels() -> torch.Tensor:
            crops = [region.image(source) for source, region in regions]
            values = self.encoder.preprocess(crops) if crops else self._blank_pixels()[:0]
            return scatter_to_slots(values, mask[None])[0]

        return Deferred(pixels)
