"""Crop dictionaries: which region crops (visual grounding or detection) belong to which image.

MRE-MI ships ``images_vg.pth``: image name -> up to 2 crop file names. The single-image lineage
(HVPNeT, MKGformer) ships the same kind of dict per dataset: Twitter keyed by image name
(``'17_06_12483.jpg': ['0_pred_yolo_crop_5402.png', ...]``), MNRE keyed by the integer line index.
mmie normalises keys to strings, so an MNRE key ``12`` becomes ``"12"``, the id the MNRE reader
gives line 13. The files are ``torch.save``d dicts: they are loaded with ``weights_only=True``,
which refuses anything but plain containers, strings and numbers (never an unpickled object).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmie.data.formats.base import check_readable
from mmie.errors import DataError
from mmie.io import atomic_writer


def _normalise(mapping: Any, path: Path) -> dict[str, list[str]]:
    if not isinstance(mapping, dict):
        raise DataError(f"expected a dict of image name -> crop names, found {type(mapping).__name__}", path=path)
    crops_by_image: dict[str, list[str]] = {}
    for key, crops in mapping.items():
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise DataError(f"key {key!r:.60} is a {type(key).__name__}, expected a string or integer", path=path)
        name = str(key)
        if name in crops_by_image:
            raise DataError("the key occurs twice (as a string and as an integer)", path=path, field=name)
        if not isinstance(crops, (list, tuple)) or not all(isinstance(crop, str) for crop in crops):
            raise DataError(f"expected a list of crop file names, found {crops!r:.60}", path=path, field=name)
        crops_by_image[name] = list(crops)
    return crops_by_image


def read_crop_dict(path: str | Path) -> dict[str, list[str]]:
    """The crop dictionary at ``path`` with string keys (integer line-index keys become their decimal string)."""
    import torch  # heavy: only the crop dictionaries need it

    path = Path(path)
    check_readable(path)
    try:
        mapping = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch/pickle raise many types for files that are not what they claim
        reason = str(error).splitlines()[0][:200] if str(error) else ""
        raise DataError(f"not a torch-saved crop dictionary ({type(error).__name__}: {reason})", path=path) from None
    return _normalise(mapping, path)


def write_crop_dict(
    mapping: dict[str, list[str]] | dict[int, list[str]] | dict[str | int, list[str]], path: str | Path
) -> None:
    """Save ``mapping`` (keys normalised to strings) with ``torch.save``, atomically."""
    import torch

    path = Path(path)
    crops_by_image = _normalise(mapping, path)
    with atomic_writer(path, binary=True) as handle:
        torch.save(crops_by_image, handle)
