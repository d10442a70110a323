"""Rendering of the synthetic images with Pillow shapes only (no fonts, no files).

Every image has the same kind of background (a smooth random colour field with pixel noise) and a
few small random distractor shapes. A *cue* image additionally shows one large object whose kind
decides the label of the post (a face for a person, a badge for an organisation, a heart for a
couple, ...). Cue objects cover roughly a third to two thirds of the frame, have their own colour
scheme and are jittered in position, scale, aspect and colour, so that a frozen ImageNet feature
extractor separates them while no single pixel pattern does. Distractors are small and random and
never draw a cue shape.

Two options of a plan serve the mechanism settings (docs/synthetic.md): ``scale="small"`` draws the
cue over 5-15 % of the frame's area, anywhere in it; ``background="<colour>"`` tints the whole
background field with one of the named :data:`BACKGROUND_COLOURS`, which a post's text can name.
A plan with neither draws exactly what it drew before they existed.

Rendering is a pure function of an :class:`ImagePlan` (its seed), so a dataset is byte-identical
whenever it is generated again with the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from PIL import Image, ImageChops, ImageDraw

Box = tuple[int, int, int, int]
RGB = tuple[int, int, int]
T = TypeVar("T")

IMAGE_SIZE = 224
# Side of a large cue's box as a fraction of the frame's side (its area: 30-72 % of the frame).
LARGE_CUE_SIDE = (0.55, 0.85)
# Area of a small cue's box as a fraction of the frame's area (its side: 22-39 % of the frame's).
SMALL_CUE_AREA = (0.05, 0.15)
CUE_SCALES = ("large", "small")
# Named background colours (distractor posts): far apart in hue, and one word each in the text.
BACKGROUND_COLOURS: dict[str, RGB] = {
    "red": (200, 45, 45),
    "green": (45, 160, 65),
    "blue": (45, 85, 205),
    "yellow": (235, 205, 40),
    "purple": (135, 55, 175),
}


@dataclass(frozen=True)
class ImagePlan:
    """What one image file shows: its file name, the cue kind (``None``: distractors only), a seed,
    the cue's scale (``large`` or ``small``) and an optional named background colour."""

    name: str
    cue: str | None
    seed: int
    scale: str = "large"
    background: str | None = None


@dataclass
class RenderedImage:
    image: Image.Image
    cue_box: Box | None
    distractor_boxes: list[Box] = field(default_factory=list)


def _jitter(rgb: RGB, rng: np.random.Generator, amount: int = 22) -> RGB:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)  # type: ignore[return-value]


def _pick(rng: np.random.Generator, options: Sequence[T]) -> T:
    return options[int(rng.integers(len(options)))]


def _background(rng: np.random.Generator, size: int, tint: RGB | None = None) -> Image.Image:
    # A low-resolution random colour field upsampled smoothly, then per-pixel noise: no two
    # backgrounds are alike and none carries information about the label. A tint makes the field
    # that colour, each coarse cell jittered by up to 25 per channel.
    if tint is None:
        coarse = rng.integers(45, 215, size=(4, 4, 3), dtype=np.uint8)
    else:
        jitter = rng.integers(-25, 26, size=(4, 4, 3))
        coarse = np.clip(np.asarray(tint)[None, None, :] + jitter, 0, 255).astype(np.uint8)
    field_image = Image.fromarray(coarse, "RGB").resize((size, size), Image.Resampling.BILINEAR)
    noise = Image.fromarray(rng.integers(0, 29, size=(size, size, 3), dtype=np.uint8), "RGB")
    return ImageChops.add(field_image, noise, scale=1.0, offset=-14)


def _draw_distractors(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int) -> list[Box]:
    boxes = []
    for _ in range(int(rng.integers(3, 7))):
        extent = int(rng.integers(14, 49))
        x0 = int(rng.integers(0, size - extent))
        y0 = int(rng.integers(0, size - extent))
        box = (x0, y0, x0 + extent, y0 + extent)
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        kind = int(rng.integers(4))
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        elif kind == 2:
            draw.polygon([(x0, y0 + extent), (x0 + extent // 2, y0), (x0 + extent, y0 + extent)], fill=colour)
        else:
            draw.line([(x0, y0), (x0 + extent, y0 + extent)], fill=colour, width=int(rng.integers(2, 6)))
        boxes.append(box)
    return boxes


def _cue_box(rng: np.random.Generator, size: int) -> Box:
    side = rng.uniform(*LARGE_CUE_SIDE) * size
    aspect = rng.uniform(0.85, 1.15)
    width, height = min(size, side * aspect), min(size, side / aspect)
    x0 = rng.uniform(0, size - width)
    y0 = rng.uniform(0, size - height)
    return int(x0), int(y0), int(x0 + width), int(y0 + height)


def _small_cue_box(rng: np.random.Generator, size: int) -> Box:
    # Area uniform in SMALL_CUE_AREA of the frame, aspect jittered as for large cues, anywhere.
    side = math.sqrt(rng.uniform(*SMALL_CUE_AREA)) * size
    aspect = rng.uniform(0.85, 1.15)
    width, height = side * aspect, side / aspect
    x0 = rng.uniform(0, size - width)
    y0 = rng.uniform(0, size - height)
    return int(round(x0)), int(round(y0)), int(round(x0 + width)), int(round(y0 + height))


# --- cue objects: each draws inside its box -------------------------------------------------


def _face(image: Image.Image, box: Box, rng: np.random.Generator) -> None:
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    skin = _jitter(_pick(rng, ((241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36))), rng, 12)
    hair = _jitter(_pick(rng, ((35, 22, 12), (20, 20, 20), (110, 60, 20), (190, 150, 70))), rng, 12)
    shirt = _jitter(_pick(rng, ((200, 40, 40), (40, 90, 190), (40, 140, 70), (230, 230, 230))), rng)
    X = lambda f: x0 + f * w  # noqa: E731 - relative coordinates keep the drawing readable
    Y = lambda f: y0 + f * h  # noqa: E731
    draw.polygon([(X(0.02), Y(1.0)), (X(0.2), Y(0.8)), (X(0.8), Y(0.8)), (X(0.98), Y(1.0))], fill=shirt)
    draw.rectangle((X(0.42), Y(0.62), X(0.58), Y(0.84)), fill=skin)
    draw.ellipse((X(0.2), Y(0.0), X(0.8), Y(0.6)), fill=hair)
    draw.ellipse((X(0.26), Y(0.1), X(0.74), Y(0.74)), fill=skin)
    for cx in (0.38, 0.62):
        draw.ellipse((X(cx - 0.055), Y(0.34), X(cx + 0.055), Y(0.42)), fill=(250, 250, 250))
        draw.ellipse((X(cx - 0.025), Y(0.35), X(cx + 0.025), Y(0.41)), fill=(30, 20, 10))
        draw.line([(X(cx - 0.06), Y(0.3)), (X(cx + 0.06), Y(0.29))], fill=hair, width=max(2, w // 40))
    draw.line([(X(0.5), Y(0.42)), (X(0.47), Y(0.53)), (X(0.52), Y(0.54))], fill=_jitter(skin, rng, 40), width=2)
    draw.chord((X(0.39), Y(0.54), X(0.61), Y(0.66)), 0, 180, fill=(170, 40, 50))


def _logo(image: Image.Image, box: Box, rng: np.random.Generator) -> None:
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    colour = _jitter(_pick(rng, ((20, 50, 160), (10, 20, 60), (0, 100, 190), (25, 25, 25))), rng, 15)
    draw.rounded_rectangle(
        box, radius=int(min(w, h) * 0.18), fill=colour, outline=(255, 255, 255), width=max(3, w // 30)
    )
    cx, cy, r = x0 + w / 2, y0 + h / 2, min(w, h) * 0.3
    emblem = int(rng.integers(3))
    if emblem == 0:  # ring with a bar through it
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(255, 255, 255), width=max(4, int(r / 3)))
        draw.rectangle((cx - r * 1.2, cy - r / 6, cx + r * 1.2, cy + r / 6), fill=(255, 255, 255))
    elif emblem == 1:  # chevron
        chevron = [(cx - r, cy - r / 2), (cx, cy + r / 2), (cx + r, cy - r / 2)]
        draw.line(chevron, fill=(255, 255, 255), width=max(5, int(r / 2.5)))
    else:  # five-pointed star
        points = [
            (cx + radius * math.sin(k * math.pi / 5), cy - radius * math.cos(k * math.pi / 5))
            for k, radius in enumerate([r, r * 0.45] * 5)
        ]
        draw.polygon(points, fill=(255, 255, 255))


def _landscape(image: Image.Image, box: Box, rng: np.random.Generator) -> None:
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    horizon = y0 + h * rng.uniform(0.55, 0.7)
    draw.rectangle((x0, y0, x1, horizon), fill=_jitter((100, 170, 235), rng))
    for _ in range(int(rng.integers(1, 4))):
        peak_x = x0 + w * rng.uniform(0.15, 0.85)
        half = w * rng.uniform(0.2, 0.4)
        peak_y = y0 + h * rng.uniform(0.15, 0.35)
        rock = _jitter((120, 120, 130), rng, 15)
        draw.polygon([(peak_x - half, horizon), (peak_x, peak_y), (peak_x + half, horizon)], fill=rock)
        cap = 0.3
        snow_line = peak_y + (horizon - peak_y) * cap
        draw.polygon(
            [(peak_x - half * cap, snow_line), (peak_x, peak_y), (peak_x + half * cap, snow_line)],
            fill=(245, 245, 250),
        )
    draw.rectangle((x0, horizon, x1, y1), fill=_jitter((60, 150, 50), rng))
    sun_r = w * 0.09
    sun_x = x0 + w * rng.choice((0.15, 0.85))
    draw.ellipse(
        (sun_x - sun_r, y0 + h * 0.08, sun_x + sun_r, y0 + h * 0.08 + 2 * sun_r), fill=_jitter((255, 215, 40), rng, 10)
    )


def _product(image: Image.Image, box: Box, rng: np.random.Generator) -> None:
    # A drink can: red body, white wave band, silver lid.
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    left, right = x0 + w * 0.25, x1 - w * 0.25
    body = _jitter(_pick(rng, ((200, 25, 30), (230, 90, 10), (180, 0, 60))), rng, 15)
    draw.rounded_rectangle((left, y0 + h * 0.06, right, y1), radius=int(w * 0.06), fill=body)
    draw.ellipse((left, y0, right, y0 + h * 0.12), fill=(200, 200, 205), outline=(120, 120, 125), width=2)
    band = [
        (left, y0 + h * 0.45),
        (left + (right - left) / 2, y0 + h * 0.38),
        (right, y0 + h * 0.45),
        (right, y0 + h * 0.55),
        (left + (right - left) / 2, y0 + h * 0.48),
        (left, y0 + h * 0.55),
    ]
    draw.polygon(band, fill=(250, 250, 250))
    can_width = right - left
    shine = (left + can_width * 0.12, y0 + h * 0.12, left + can_width * 0.2, y1 - h * 0.05)
    draw.rectangle(shine, fill=_jitter(body, rng, 60))


def _heart(image: Image.Image, box: Box, rng: np.random.Generator) -> None:
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    colour = _jitter(_pick(rng, ((220, 20, 60), (240, 80, 140), (200, 0, 30))), rng, 15)
    draw.ellipse((x0, y0, x0 + w * 0.55, y0 + h * 0.55), fill=colour)
    draw.ellipse((x1 - w * 0.55, y0, x1, y0 + h * 0.55), fill=colour)
    draw.polygon([(x0 + w * 0.02, y0 + h * 0.38), (x0 + w / 2, y1), (x1 - w * 0.02, y0 + h * 0.38)], fill=colour)
    draw.ellipse((x0 + w * 0.14, y0 + h * 0.12, x0 + w * 0.26, y0 + h * 0.24), fill=(255, 230, 235))


def _ball(image: Image.Image, box: Box, rng: np.random.Generator) -> None:
    # A football: white disc, a black pentagon in the middle and five around it, clipped to the disc.
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = box
    r = min(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = int(2 * r) + 1
    layer = Image.new("RGB", (side, side), (245, 245, 245))
    layer_draw = ImageDraw.Draw(layer)
    turn = rng.uniform(0, 2 * math.pi / 5)

    def pentagon(px: float, py: float, radius: float, phase: float) -> list[tuple[float, float]]:
        angles = [phase + k * 2 * math.pi / 5 for k in range(5)]
        return [(px + radius * math.cos(a), py + radius * math.sin(a)) for a in angles]

    layer_draw.polygon(pentagon(r, r, r * 0.3, turn), fill=(15, 15, 15))
    for k in range(5):
        angle = turn + k * 2 * math.pi / 5
        dx, dy = math.cos(angle), math.sin(angle)
        layer_draw.polygon(
            pentagon(r + r * 0.92 * dx, r + r * 0.92 * dy, r * 0.28, angle + math.pi / 5), fill=(15, 15, 15)
        )
        layer_draw.line(
            [(r + r * 0.3 * dx, r + r * 0.3 * dy), (r + r * 0.7 * dx, r + r * 0.7 * dy)], fill=(60, 60, 60), width=2
        )
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, side - 1, side - 1), fill=255)
    image.paste(layer, (int(cx - r), int(cy - r)), mask)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(30, 30, 30), width=max(2, int(r / 25)))


def _house(image: Image.Image, box: Box, rng: np.random.Generator) -> None:
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    wall = _jitter(_pick(rng, ((235, 205, 150), (240, 240, 225), (200, 120, 80))), rng, 15)
    roof = _jitter((165, 45, 30), rng, 20)
    draw.rectangle((x0 + w * 0.68, y0 + h * 0.08, x0 + w * 0.78, y0 + h * 0.35), fill=(110, 60, 50))
    draw.polygon([(x0, y0 + h * 0.45), (x0 + w / 2, y0), (x1, y0 + h * 0.45)], fill=roof)
    draw.rectangle((x0 + w * 0.1, y0 + h * 0.45, x1 - w * 0.1, y1), fill=wall)
    draw.rectangle((x0 + w * 0.42, y0 + h * 0.68, x0 + w * 0.58, y1), fill=(95, 55, 25))
    for left in (0.17, 0.66):
        window = (x0 + w * left, y0 + h * 0.55, x0 + w * (left + 0.17), y0 + h * 0.72)
        draw.rectangle(window, fill=(170, 215, 245), outline=(250, 250, 250), width=3)


def _pin(image: Image.Image, box: Box, rng: np.random.Generator) -> None:
    # A map with roads, a river and a park, and a big red location pin.
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    draw.rectangle(box, fill=_jitter((236, 232, 218), rng, 8))
    draw.rectangle((x0 + w * 0.05, y0 + h * 0.6, x0 + w * 0.35, y0 + h * 0.9), fill=(170, 220, 160))
    river = [(x0, y0 + h * rng.uniform(0.6, 0.95)), (x1, y0 + h * rng.uniform(0.6, 0.95))]
    draw.line(river, fill=(120, 180, 235), width=max(4, w // 18))
    for f in (0.25, 0.5, 0.75):
        draw.line([(x0 + w * f, y0), (x0 + w * f, y1)], fill=(255, 255, 255), width=max(3, w // 40))
        draw.line([(x0, y0 + h * f), (x1, y0 + h * f)], fill=(255, 255, 255), width=max(3, w // 40))
    red = _jitter((225, 40, 35), rng, 12)
    cx, r = x0 + w * 0.55, w * 0.2
    draw.polygon([(cx - r * 0.85, y0 + h * 0.32), (cx, y0 + h * 0.85), (cx + r * 0.85, y0 + h * 0.32)], fill=red)
    draw.ellipse((cx - r, y0 + h * 0.1, cx + r, y0 + h * 0.1 + 2 * r), fill=red)
    draw.ellipse((cx - r * 0.4, y0 + h * 0.1 + r * 0.6, cx + r * 0.4, y0 + h * 0.1 + r * 1.4), fill=(255, 255, 255))


def _stage(image: Image.Image, box: Box, rng: np.random.Generator) -> None:
    # A dark stage under spotlights, between red curtains.
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    draw.rectangle(box, fill=(18, 10, 28))
    light = _jitter((250, 230, 120), rng, 10)
    for f in (0.3, 0.7) if rng.random() < 0.5 else (0.25, 0.5, 0.75):
        top = x0 + w * f
        cone = [
            (top - w * 0.03, y0),
            (top + w * 0.03, y0),
            (top + w * 0.14, y0 + h * 0.82),
            (top - w * 0.14, y0 + h * 0.82),
        ]
        draw.polygon(cone, fill=light)
    draw.rectangle((x0, y0 + h * 0.82, x1, y1), fill=(120, 70, 30))
    curtain = _jitter((150, 0, 20), rng, 15)
    draw.polygon([(x0, y0), (x0 + w * 0.2, y0), (x0 + w * 0.08, y0 + h * 0.82), (x0, y0 + h * 0.82)], fill=curtain)
    draw.polygon([(x1, y0), (x1 - w * 0.2, y0), (x1 - w * 0.08, y0 + h * 0.82), (x1, y0 + h * 0.82)], fill=curtain)
    draw.rectangle((x0, y0, x1, y0 + h * 0.07), fill=curtain)


CUE_DRAWERS: dict[str, Callable[[Image.Image, Box, np.random.Generator], None]] = {
    "face": _face,
    "logo": _logo,
    "landscape": _landscape,
    "product": _product,
    "heart": _heart,
    "ball": _ball,
    "house": _house,
    "pin": _pin,
    "stage": _stage,
}


def render_image(plan: ImagePlan, size: int = IMAGE_SIZE) -> RenderedImage:
    """Draw the image a plan describes; the same plan always gives the same pixels."""
    if plan.cue is not None and plan.cue not in CUE_DRAWERS:
        raise ValueError(f"unknown cue kind {plan.cue!r}; known: {sorted(CUE_DRAWERS)}")
    if plan.scale not in CUE_SCALES:
        raise ValueError(f"unknown cue scale {plan.scale!r}; known: {CUE_SCALES}")
    if plan.background is not None and plan.background not in BACKGROUND_COLOURS:
        raise ValueError(f"unknown background colour {plan.background!r}; known: {sorted(BACKGROUND_COLOURS)}")
    rng = np.random.default_rng(plan.seed)
    tint = BACKGROUND_COLOURS[plan.background] if plan.background is not None else None
    image = _background(rng, size, tint)
    draw = ImageDraw.Draw(image)
    distractors = _draw_distractors(draw, rng, size)
    cue_box = None
    if plan.cue is not None:
        cue_box = _small_cue_box(rng, size) if plan.scale == "small" else _cue_box(rng, size)
        CUE_DRAWERS[plan.cue](image, cue_box, rng)
        # Distractors the cue hides completely are no longer visible regions.
        distractors = [b for b in distractors if not _inside(b, cue_box)]
    return RenderedImage(image=image, cue_box=cue_box, distractor_boxes=distractors)


def _inside(inner: Box, outer: Box) -> bool:
    return inner[0] >= outer[0] and inner[1] >= outer[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def grounding_boxes(rendered: RenderedImage, seed: int, k: int = 2, size: int = IMAGE_SIZE) -> list[Box]:
    """Up to ``k`` regions as a visual-grounding model would return them: the cue first when the
    image has one (slightly loose, as predicted boxes are), then distractor regions (noise)."""
    rng = np.random.default_rng(seed)
    boxes: list[Box] = []
    if rendered.cue_box is not None:
        boxes.append(_loosen(rendered.cue_box, rng, size, minimum=32))
    for box in rendered.distractor_boxes:
        if len(boxes) >= k:
            break
        boxes.append(_loosen(box, rng, size, minimum=40))
    return boxes


def _loosen(box: Box, rng: np.random.Generator, size: int, minimum: int) -> Box:
    x0, y0, x1, y1 = box
    pad_x = max((x1 - x0) * rng.uniform(0.0, 0.12), (minimum - (x1 - x0)) / 2)
    pad_y = max((y1 - y0) * rng.uniform(0.0, 0.12), (minimum - (y1 - y0)) / 2)
    return (
        max(0, int(x0 - pad_x)),
        max(0, int(y0 - pad_y)),
        min(size, int(math.ceil(x1 + pad_x))),
        min(size, int(math.ceil(y1 + pad_y))),
    )
