"""Posts (NER) or relation instances (RE) -> text + the post's picture + one region per fixed query: the
inputs of UMGF (:mod:`mmie.models.umgf`), read as their :class:`QueryRegionInputs` say.

UMGF (Zhang et al., AAAI 2021, sec. 3.1) grounds four queries in every image, the entity types
"person", "location", "organization" and "miscellaneous", and reads the four crops as the visual
nodes of its graph. Here the queries are ``region_queries`` and the regions come from:

* ``regions: detector`` -- a zero-shot detector (the stand-in for the grounding model), asked once per
  query for its best box: crop j answers query j;
* ``regions: grid`` -- offline, the salient boxes of the encoder's own grid (text-free: it takes the
  queries and ignores them; :mod:`mmie.regions.grid`), the top ``regions_per_image``;
* ``regions: precomputed`` -- a crop dictionary, the first ``regions_per_image`` crops of each image.

Which picture: the first image (``image_layout: first``), or for the "-MI" rows all of the post's
images stitched 2 x 2 into one picture (``stitched``, :mod:`mmie.data.stitch`), whose regions are
found on the stitched picture itself. The inputs are those of
:class:`~mmie.features.regions.RelationImageFeaturizer`: ``region_features [M, k, D]`` (frozen) or
``region_pixel_values`` (fine-tuned) with ``region_mask [M, k]``, beside the image inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmie.encoders.hub import local_files_only
from mmie.errors import ConfigError
from mmie.features.regions import RelationImageFeaturizer
from mmie.features.settings import QueryRegionInputs
from mmie.regions.base import ImageSource, RegionProvider
from mmie.regions.detector import DetectorRegions

if TYPE_CHECKING:
    from typing_extensions import Self

    from mmie.data.images import ImageDirs, ImagePolicy
    from mmie.encoders.cache import FeatureCache
    from mmie.features.text import Featurizer


class QueryRegionFeaturizer(RelationImageFeaturizer):
    """Wraps a text featurizer (NER or RE); adds the picture and one region per query of ``region_queries``."""

    config: QueryRegionInputs

    def __init__(
        self, text: Featurizer, config: QueryRegionInputs, images: ImageDirs | None, policy: ImagePolicy = "error"
    ) -> None:
        if config.regions_per_image > len(config.region_queries):
            raise ConfigError(
                f"model.regions_per_image: {config.regions_per_image} regions, but region_queries has "
                f"{len(config.region_queries)} queries (one region each)"
            )
        if config.image_layout == "stitched" and config.regions == "precomputed":
            raise ConfigError(
                f"model.regions: {config.name} finds its regions on the stitched picture, which no crop dictionary "
                "has: use detector or grid"
            )
        super().__init__(text, config, images, policy)

    @property
    def provider(self) -> RegionProvider:
        """The detector (loaded on first use, from local files for a saved model), else the grid or crop dictionary."""
        if self._provider is None and self.config.regions == "detector":
            if not self.config.detector:
                raise ConfigError("model.detector: regions is 'detector' but no detector is named (or regions: grid)")
            with local_files_only(self.local_only):
                self._provider = DetectorRegions(self.config.detector)
        return super().provider

    def for_uploads(self, shared: dict[str, FeatureCache] | None = None) -> Self:
        """For uploads: a detector reads an uploaded picture as well as a file, so it is kept."""
        uploads = super().for_uploads(shared)
        if self.config.regions == "detector" and uploads.k:
            uploads._provider = self.provider
        return uploads

    def _find_regions(self, record: Any, ref: str) -> list[tuple[ImageSource, Any]]:
        """One region per query: a grounding provider is asked once per query for its best box (UMGF's
        per-type crops); a text-free one gives its top k."""
        source = self._image_source(record, ref)
        regions = self.provider.find_per_query(source, self.config.region_queries[: self.k])
        return [(source, region) for region in regions]
