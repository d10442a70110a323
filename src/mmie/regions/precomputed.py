"""Precomputed regions: the crop files a release ships, found through its crop dictionary.

MRE-MI: ``images_vg/`` holds the crops and ``images_vg.pth`` maps each image name to up to 2 crop
file names (visual grounding of Yang et al., 2019, queried with the entities and nouns). The
single-image lineage (HVPNeT, MKGformer) ships the same kind of dictionary, keyed by image name
(Twitter) or by the line index of the instance (MNRE): ``key="record"`` looks records up by id,
which is that line index for the MNRE reader. Dictionaries are read with ``weights_only=True``
(:func:`mmie.data.read_crop_dict`).

The crops were made once, by whatever tool the release used, so the queries are not read here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from mmie.data import read_crop_dict
from mmie.data.images import resolve_image
from mmie.errors import ConfigError
from mmie.regions.base import ImageSource, Region, RegionProvider

CropKey = Literal["image", "record"]
CROP_DICT_NAME = "images_vg.pth"
CROP_DIR_NAME = "images_vg"


class PrecomputedRegions(RegionProvider):
    """The first ``k`` crops the dictionary lists for an image (none when it lists none)."""

    name = "precomputed"
    reads_text = False

    def __init__(self, crop_dict: str | Path, crop_dir: str | Path | None = None, key: CropKey = "image") -> None:
        crop_dict = Path(crop_dict)
        if not crop_dict.is_file():
            raise ConfigError(
                f"{crop_dict}: no crop dictionary there (build regions with `mmie regions build`, "
                f"or use the offline grid provider)"
            )
        if key not in ("image", "record"):
            raise ConfigError(f"crop dictionary key must be 'image' or 'record', got {key!r}")
        self.crop_dict = crop_dict
        self.crop_dir = Path(crop_dir) if crop_dir is not None else crop_dict.with_name(CROP_DIR_NAME)
        if not self.crop_dir.is_dir():
            raise ConfigError(f"{self.crop_dir}: the crop folder of {crop_dict} does not exist")
        self.key = key
        self.crops = read_crop_dict(crop_dict)

    def crop_names(self, source: ImageSource) -> list[str]:
        key = source.ref if self.key == "image" else source.record_id
        return list(self.crops.get(key, [])) if key is not None else []

    def find(self, source: ImageSource, queries: Sequence[str], k: int) -> list[Region]:
        # resolve_image refuses names that leave the crop folder (absolute paths, '..').
        paths = [resolve_image(name, self.crop_dir, source.record_id) for name in self.crop_names(source)[:k]]
        return [Region(box=None, path=path) for path in paths]

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "crop_dict": str(self.crop_dict), "key": self.key}


def default_crop_dict(image_dir: str | Path) -> Path:
    """The MRE-MI layout: ``images_vg.pth`` (and ``images_vg/``) beside the ``images/`` folder."""
    return Path(image_dir).parent / CROP_DICT_NAME
