"""Visual-grounding regions: providers (precomputed crops, a zero-shot detector, an offline grid
saliency ranking) and ``build_regions``, which writes them in the MRE-MI layout. See docs/regions.md."""

from __future__ import annotations

from mmie.regions.base import Box, ImageSource, Region, RegionProvider
from mmie.regions.build import PROVIDERS, BuildSummary, build_regions, create_provider, image_jobs
from mmie.regions.precomputed import PrecomputedRegions, default_crop_dict
from mmie.regions.queries import record_queries

__all__ = [
    "PROVIDERS",
    "Box",
    "BuildSummary",
    "ImageSource",
    "PrecomputedRegions",
    "Region",
    "RegionProvider",
    "build_regions",
    "create_provider",
    "default_crop_dict",
    "image_jobs",
    "record_queries",
]
