"""Image focal augmentation (FocalMRE paper, sec. 3.3): the original picture with a frame around ONE region.

    framed = draw_focal_frame(picture, (40, 30, 120, 90))        # a copy; the picture is untouched

One augmented copy per region keeps the global context (the whole picture) while pointing at the
region; FocalMRE reads 4 VG copies and 3 OD copies per image. The frame is drawn with Pillow's
``ImageDraw.rectangle`` on the region's border, inside the box (so a box touching the picture's edge
keeps its whole frame), ``width`` pixels wide (default: 1.5% of the longer side, at least 2), in a
colour that rarely occurs in posts (pure red by default).

Boxes come from the region providers (:mod:`mmie.regions`): the detector and the offline grid give
boxes directly. Precomputed crops (a release's ``images_vg/``) are files without boxes; :func:`locate_crop`
finds where a crop sits in its picture by template matching (least sum of squared differences of the
grey values, computed with FFTs on both pictures scaled so the picture's longer side is ``max_side``
pixels). A crop must be an unscaled cut-out (the MRE-MI and synthetic crops are); its box is accurate
to about ``longer side / max_side`` pixels. A crop from ANOTHER picture (Aug-Noise's replaced regions)
gets the best-matching place of this picture: a frame around an irrelevant area, what Aug-Noise means.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from mmie.regions.base import Box, ImageSource, Region

FRAME_COLOR = (255, 0, 0)
LOCATE_SIDE = 192


def frame_width(size: tuple[int, int]) -> int:
    """The default frame width for a picture of ``size``: 1.5% of its longer side, at least 2 pixels."""
    return max(2, round(0.015 * max(size)))


def draw_focal_frame(
    image: Image.Image, box: Box, width: int | None = None, color: tuple[int, int, int] = FRAME_COLOR
) -> Image.Image:
    """A copy of ``image`` with a ``width``-pixel frame on the border of ``box`` (x0, y0, x1, y1; x1, y1 exclusive)."""
    framed = image.convert("RGB").copy()
    x0, y0, x1, y1 = box
    width = width if width is not None else frame_width(image.size)
    # ImageDraw's rectangle includes its end corner and grows the outline inwards: the frame stays inside the box.
    ImageDraw.Draw(framed).rectangle((x0, y0, x1 - 1, y1 - 1), outline=color, width=max(1, width))
    return framed


def _grey(image: Image.Image, scale: float) -> np.ndarray:
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.convert("L").resize(size, Image.Resampling.BILINEAR), dtype=np.float64)


def locate_crop(image: Image.Image, crop: Image.Image, max_side: int = LOCATE_SIDE) -> Box | None:
    """The box of ``image`` that ``crop`` (an unscaled cut-out) matches best; None when it cannot fit."""
    width, height = image.size
    if crop.width > width or crop.height > height:
        return None
    if crop.size == image.size:
        return (0, 0, width, height)
    scale = min(1.0, max_side / max(width, height))
    picture, template = _grey(image, scale), _grey(crop, scale)
    rows, cols = picture.shape
    t_rows, t_cols = template.shape
    t_rows, t_cols = min(t_rows, rows), min(t_cols, cols)
    template = template[:t_rows, :t_cols]
    # SSD(y, x) = sum I^2 over the window - 2 sum I*T + sum T^2; the last term is the same everywhere.
    correlation = np.fft.irfft2(
        np.fft.rfft2(picture) * np.conj(np.fft.rfft2(template, s=picture.shape)), s=picture.shape
    )
    integral = np.pad((picture**2).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    valid_y, valid_x = rows - t_rows + 1, cols - t_cols + 1
    window = (
        integral[t_rows : t_rows + valid_y, t_cols : t_cols + valid_x]
        - integral[:valid_y, t_cols : t_cols + valid_x]
        - integral[t_rows : t_rows + valid_y, :valid_x]
        + integral[:valid_y, :valid_x]
    )
    ssd = window - 2 * correlation[:valid_y, :valid_x]
    y, x = np.unravel_index(int(np.argmin(ssd)), ssd.shape)
    x0 = min(max(0, round(x / scale)), width - crop.width)
    y0 = min(max(0, round(y / scale)), height - crop.height)
    return (x0, y0, x0 + crop.width, y0 + crop.height)


def region_box(region: Region, source: ImageSource) -> Box | None:
    """The region's box on its picture: the provider's, or the located place of a precomputed crop."""
    if region.box is not None:
        return region.box
    return locate_crop(source.load(), region.image(source))


def focal_images(
    source: ImageSource, regions: Sequence[Region], width: int | None = None, color: tuple[int, int, int] = FRAME_COLOR
) -> list[Image.Image]:
    """One framed copy of the source picture per region (regions without a place on it are left out)."""
    picture = source.load()
    boxes = [region_box(region, source) for region in regions]
    return [draw_focal_frame(picture, box, width, color) for box in boxes if box is not None]
