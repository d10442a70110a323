"""Stitch a post's images into one picture, for single-image models in the "-MI" rows of the tables.

The MNER-MI paper (sec. 5.1) gives single-image baselines (UMT-MI, UMGF-MI, VisualPT-MoE-MI) the
information of every image by stitching them into one image. mmie stitches onto a fixed 2 x 2 grid:
image i always lands in cell i in reading order (top-left, top-right, bottom-left, bottom-right),
so the place in the picture tells the image's order the same way in every post, and one-image posts
are not treated differently from four-image posts. Each image keeps its aspect ratio: it is scaled
to fit its cell and centred on a black background (black = the zero padding of missing images).
The result is deterministic: same images in, same pixels out.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageOps

from mmie.data.schema import MAX_IMAGES

GRID_SIDE = 2  # a 2 x 2 grid holds the MAX_IMAGES = 4 images of a post


def stitch_images(
    images: Sequence[Image.Image], cell_size: int = 224, background: tuple[int, int, int] = (0, 0, 0)
) -> Image.Image:
    """Return one RGB image of ``2 * cell_size`` pixels square holding ``images`` (1..4) on a 2 x 2 grid."""
    if not 1 <= len(images) <= MAX_IMAGES:
        raise ValueError(f"can stitch 1 to {MAX_IMAGES} images, got {len(images)}")
    if cell_size < 1:
        raise ValueError(f"cell_size must be positive, got {cell_size}")
    canvas = Image.new("RGB", (GRID_SIDE * cell_size, GRID_SIDE * cell_size), background)
    for index, image in enumerate(images):
        # scale (up or down) to fit the cell, aspect ratio kept
        fitted = ImageOps.contain(image.convert("RGB"), (cell_size, cell_size), Image.Resampling.BICUBIC)
        row, column = divmod(index, GRID_SIDE)
        left = column * cell_size + (cell_size - fitted.width) // 2
        top = row * cell_size + (cell_size - fitted.height) // 2
        canvas.paste(fitted, (left, top))
    return canvas
