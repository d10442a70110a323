"""Image references -> PIL images, with a stated policy for missing and broken files.

Records hold image *references* (file names such as ``17_06_2932.jpg``); they resolve against an
image folder (or several, searched in order: MNER-MI-Plus keeps ``images/`` and ``twitter2017_images/``).

Releases have missing, truncated and undecodable images. What happens is a policy, never a silent
accident: ``"error"`` (the default) raises a :class:`~mmie.errors.DataError` naming the image path
and the record; ``"blank"`` substitutes a blank RGB image. Either way every affected image is
counted in an :class:`ImageReport`, which callers print.

Two guards stay on. Pillow's decompression-bomb check is never disabled: an image past
``Image.MAX_IMAGE_PIXELS`` counts as undecodable. And a reference may not leave its folder (an
absolute path or a ``..`` component is refused under every policy), because a service resolves
references that clients send. The check is on the reference itself: symbolic links that whoever owns
the folder put inside it are followed, as dataset folders are often links to a shared store.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Literal

from PIL import Image

from mmie.data.schema import Post
from mmie.errors import DataError

ImagePolicy = Literal["error", "blank"]
POLICIES: tuple[str, ...] = ("error", "blank")
# The blank substitute's size when the caller asks for no particular size.
DEFAULT_BLANK_SIZE = (224, 224)
ImageDirs = str | Path | Sequence[str | Path]
ImageSize = int | tuple[int, int] | None


@dataclass(frozen=True)
class ImageProblem:
    """One image that could not be used: ``reason`` is missing, unreadable, truncated or undecodable."""

    ref: str
    record_id: str | None
    reason: str
    path: str
    detail: str


@dataclass
class ImageReport:
    """How many images loaded and which ones were affected, and why."""

    policy: str = "error"
    loaded: int = 0
    problems: list[ImageProblem] = field(default_factory=list)

    @property
    def affected(self) -> int:
        return len(self.problems)

    def counts(self) -> dict[str, int]:
        return dict(Counter(problem.reason for problem in self.problems))

    def summary(self) -> str:
        if not self.problems:
            return f"{self.loaded} images loaded, none affected"
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.counts().items()))
        action = "substituted by blank images" if self.policy == "blank" else "raised as errors"
        return f"{self.loaded} images loaded, {self.affected} affected ({reasons}; {action})"

    def to_dict(self) -> dict:
        return {
            "policy": self.policy,
            "loaded": self.loaded,
            "affected": self.affected,
            "by_reason": self.counts(),
            "examples": [problem.__dict__ for problem in self.problems[:10]],
        }


class _Unusable(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _as_dirs(image_dir: ImageDirs) -> list[Path]:
    if isinstance(image_dir, (str, Path)):
        return [Path(image_dir)]
    return [Path(folder) for folder in image_dir]


def _size_pair(size: ImageSize) -> tuple[int, int] | None:
    if size is None:
        return None
    width, height = (size, size) if isinstance(size, int) else size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {size}")
    return width, height


def check_reference(ref: str, record_id: str | None = None) -> None:
    """Refuse a reference that is empty, absolute, or steps out of its folder with ``..``."""
    where = f" of record {record_id!r}" if record_id is not None else ""
    if not isinstance(ref, str) or not ref or "\x00" in ref:
        raise DataError(f"image reference{where} must be a non-empty file name, got {ref!r:.80}", field="image")
    parts = ref.replace("\\", "/").split("/")
    windows = PureWindowsPath(ref)
    if PurePosixPath(ref).is_absolute() or windows.is_absolute() or windows.drive or ".." in parts:
        raise DataError(
            f"image reference{where} {ref!r:.120} leaves the image folder (absolute path or '..'); refused",
            field="image",
        )


def resolve_image(ref: str, image_dir: ImageDirs, record_id: str | None = None) -> Path:
    """The file ``ref`` names: the first folder holding it, else its path in the first folder."""
    check_reference(ref, record_id)
    candidates = [folder / ref for folder in _as_dirs(image_dir)]
    if not candidates:
        raise DataError("no image folder given", field="image_dir")
    return next((path for path in candidates if path.exists()), candidates[0])


def _decode(path: Path) -> Image.Image:
    if not path.exists():
        raise _Unusable("missing", "no such file")
    return _decode_source(path)[0]


def _decode_source(
    source: Path | IO[bytes], max_pixels: int | None = None, max_side: int | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """A file or an in-memory stream -> (RGB, its size as stored). ``max_pixels`` (when given) is checked
    before decoding; ``max_side``: a longer side is decoded downscaled to it (a JPEG at a reduced DCT
    scale, so the full-size picture is never in memory), keeping the aspect ratio."""
    try:
        # The bomb guard warns between 1x and 2x MAX_IMAGE_PIXELS and raises past 2x: both refuse here.
        # `load()` inside the try is what surfaces a truncated file (LOAD_TRUNCATED_IMAGES stays off).
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                size = image.size
                width, height = size
                if max_pixels is not None and width * height > max_pixels:
                    raise _Unusable("too large", f"{width} x {height} pixels, more than the limit of {max_pixels}")
                target = _fit(size, max_side)
                if target != size:
                    image.draft(None, target)  # JPEG: decode at 1/2, 1/4, 1/8 scale
                image.load()
                rgb = image.convert("RGB")
        return downscale(rgb, max_side), size
    except _Unusable:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _Unusable("undecodable", f"too many pixels for the decompression-bomb guard ({error})") from None
    except PermissionError as error:
        raise _Unusable("unreadable", error.strerror or str(error)) from None
    except Image.UnidentifiedImageError:
        # Pillow's message names the stream object (<_io.BytesIO object at 0x...>): say what it means.
        raise _Unusable("undecodable", "not an image file Pillow can read (unknown format)") from None
    except OSError as error:
        text = str(error)
        # Pillow says "image file is truncated", "Truncated File Read" or "broken data stream".
        truncated = "truncated" in text.lower() or "broken data stream" in text
        reason = "truncated" if truncated else "undecodable"
        raise _Unusable(reason, text or type(error).__name__) from None
    except Exception as error:  # decoders raise assorted types (SyntaxError, ValueError, ...) on corrupt data
        raise _Unusable("undecodable", f"{type(error).__name__}: {error}") from None


def downscale(image: Image.Image, max_side: int | None) -> Image.Image:
    """``image`` with its longer side brought down to ``max_side`` (bicubic, aspect kept); itself when it fits."""
    target = _fit(image.size, max_side)
    return image if target == image.size else image.resize(target, Image.Resampling.BICUBIC)


def _fit(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """``size`` scaled down so that its longer side is ``max_side`` (unchanged when it already fits)."""
    width, height = size
    if max_side is None or max(width, height) <= max_side:
        return size
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode_image_bytes(
    data: bytes, name: str = "image", max_pixels: int | None = None, max_side: int | None = None
) -> Image.Image:
    """Image bytes (an upload, not a file) -> RGB with the same guards as files (bomb guard, truncation).

    Raises DataError whose field is ``name`` and whose message says why: ``truncated``,
    ``undecodable`` (also a decompression bomb) or ``too large`` (over ``max_pixels``). ``max_side``:
    a larger picture is decoded downscaled to that longer side (see :func:`decode_upload`).
    """
    return decode_upload(data, name, max_pixels, max_side)[0]


def decode_upload(
    data: bytes, name: str = "image", max_pixels: int | None = None, max_side: int | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """:func:`decode_image_bytes` plus the picture's size as uploaded (before any downscaling)."""
    if not data:
        raise DataError("empty image: no bytes", field=name)
    try:
        return _decode_source(io.BytesIO(data), max_pixels, max_side)
    except _Unusable as unusable:
        raise DataError(f"{unusable.reason} image: {unusable.detail}", field=name) from None


def load_image(
    ref: str,
    image_dir: ImageDirs,
    policy: ImagePolicy = "error",
    size: ImageSize = None,
    *,
    record_id: str | None = None,
    report: ImageReport | None = None,
) -> Image.Image:
    """The RGB image ``ref`` names in ``image_dir``, resized to ``size`` (width, height) when given.

    A missing, unreadable, truncated or undecodable image raises DataError (policy ``"error"``) or
    becomes a blank image (``"blank"``); either way it is added to ``report`` when one is given.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown image policy {policy!r} (choose from {', '.join(POLICIES)})")
    target_size = _size_pair(size)
    path = resolve_image(ref, image_dir, record_id)
    try:
        image = _decode(path)
    except _Unusable as unusable:
        if report is not None:
            report.problems.append(ImageProblem(ref, record_id, unusable.reason, str(path), unusable.detail))
        if policy == "error":
            of_record = f" of record {record_id!r}" if record_id is not None else ""
            raise DataError(
                f"{unusable.reason} image{of_record}: {unusable.detail}", path=path, field="image"
            ) from None
        return Image.new("RGB", target_size or DEFAULT_BLANK_SIZE)
    if report is not None:
        report.loaded += 1
    if target_size is not None and image.size != target_size:
        image = image.resize(target_size, Image.Resampling.BICUBIC)
    return image


class ImageLoader:
    """Loads the images of posts from one image folder (or several) under one policy, keeping a report."""

    def __init__(self, image_dir: ImageDirs, policy: ImagePolicy = "error", size: ImageSize = None) -> None:
        self.image_dirs = _as_dirs(image_dir)
        for folder in self.image_dirs:
            if not folder.is_dir():
                raise DataError("the image folder does not exist", path=folder, field="image_dir")
        if policy not in POLICIES:
            raise ValueError(f"unknown image policy {policy!r} (choose from {', '.join(POLICIES)})")
        self.policy = policy
        self.size = size
        self.report = ImageReport(policy=policy)

    def load(self, ref: str, record_id: str | None = None) -> Image.Image:
        return load_image(ref, self.image_dirs, self.policy, self.size, record_id=record_id, report=self.report)

    def item(self, ref: str, record_id: str | None = None) -> Path:
        """What a feature cache or region provider takes for ``ref``: its file (hashed, decoded on demand)."""
        return resolve_image(ref, self.image_dirs, record_id)

    def load_post(self, post: Post) -> list[Image.Image]:
        """The post's images, in order."""
        return [self.load(ref, post.id) for ref in post.images]


class InMemoryImages:
    """Decoded pictures by reference, for posts whose images came as uploads, not files (no folder).

    Takes the place of an :class:`ImageLoader` in the image featurizers (same ``load``/``item``/``report``);
    the extraction pipeline fills ``images`` for the posts of a batch and empties it afterwards.
    """

    def __init__(self) -> None:
        self.images: dict[str, Image.Image] = {}
        self.policy: ImagePolicy = "error"
        self.report = ImageReport(policy="error")

    def load(self, ref: str, record_id: str | None = None) -> Image.Image:
        try:
            return self.images[ref]
        except KeyError:
            of_record = f" of record {record_id!r}" if record_id is not None else ""
            raise DataError(f"image {ref!r}{of_record} was not given", field="image") from None

    def item(self, ref: str, record_id: str | None = None) -> Image.Image:
        """What a feature cache or region provider takes for ``ref``: the picture itself."""
        return self.load(ref, record_id)


def check_images(posts: Iterable[Post], image_dir: ImageDirs) -> ImageReport:
    """Decode every image the posts name (each once) and report the affected ones; raises nothing per image."""
    loader = ImageLoader(image_dir, policy="blank")
    seen: set[str] = set()
    for post in posts:
        for ref in post.images:
            if ref not in seen:
                seen.add(ref)
                loader.load(ref, post.id)
    return loader.report
