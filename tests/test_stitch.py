"""Stitching 1..4 images on a 2 x 2 grid for the "-MI" single-image baselines."""

from __future__ import annotations

import pytest
from PIL import Image

from mmie.data.stitch import stitch_images

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def test_images_land_in_reading_order_with_their_aspect_ratio_kept():
    wide = Image.new("RGB", (200, 100), RED)  # 2:1 -> 64 x 32 in a 64 cell, centred vertically
    tall = Image.new("RGB", (50, 100), GREEN)  # 1:2 -> 32 x 64, centred horizontally
    grey = Image.new("L", (10, 10), 255)  # not RGB, and smaller than the cell: scaled up
    stitched = stitch_images([wide, tall, grey, Image.new("RGB", (64, 64), BLUE)], cell_size=64)
    assert stitched.size == (128, 128) and stitched.mode == "RGB"
    assert stitched.getpixel((32, 32)) == RED and stitched.getpixel((32, 8)) == BLACK  # band above the wide one
    assert stitched.getbbox() == (0, 0, 128, 128)
    red_rows = [y for y in range(64) if stitched.getpixel((32, y)) == RED]
    assert (min(red_rows), max(red_rows)) == (16, 47)
    assert stitched.getpixel((96, 32)) == GREEN and stitched.getpixel((66, 32)) == BLACK
    green_columns = [x for x in range(64, 128) if stitched.getpixel((x, 32)) == GREEN]
    assert (min(green_columns), max(green_columns)) == (80, 111)
    assert stitched.getpixel((32, 96)) == WHITE and stitched.getpixel((96, 96)) == BLUE


def test_fewer_images_leave_black_cells_and_the_result_is_deterministic():
    first = Image.effect_noise((90, 70), 40).convert("RGB")
    one = stitch_images([first], cell_size=32)
    assert one.getbbox() is not None and one.getbbox()[2] <= 32 and one.getbbox()[3] <= 32  # top-left cell only
    assert stitch_images([first], cell_size=32).tobytes() == one.tobytes()
    two = stitch_images([first, first], cell_size=32)
    assert two.crop((0, 0, 32, 32)).tobytes() == two.crop((32, 0, 64, 32)).tobytes()
    assert two.crop((0, 32, 64, 64)).getbbox() is None  # bottom row empty


@pytest.mark.parametrize("count", [0, 5])
def test_zero_or_more_than_four_images_are_refused(count):
    with pytest.raises(ValueError, match="1 to 4"):
        stitch_images([Image.new("RGB", (8, 8))] * count)
