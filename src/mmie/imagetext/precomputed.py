"""Precomputed image text: one JSON-lines file, one object per image, keyed by the image's file name.

    {"image": "17_06_12598.jpg", "caption": "a woman singing on a stage", "tags": ["person", "microphone"], "ocr": "BRITNEY"}

``image`` is required; ``caption`` and ``ocr`` are strings, ``tags`` a list of strings, each optional
(a field left out is text the file does not have). ``docs/imagetext.md`` describes the format and
the converters of released files (:mod:`mmie.imagetext.convert`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from mmie.errors import DataError
from mmie.imagetext.base import IMAGE_TEXT_FIELDS, ImageText, ImageTextProvider, ImageTextUnavailable
from mmie.io import atomic_writer


def parse_image_text(record: object, path: Path | None = None, line: int | None = None) -> ImageText:
    """One line's object as :class:`ImageText`; DataError naming the file, line and field."""
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object, got {type(record).__name__}", path=path, line=line)
    unknown = sorted(set(record) - {"image", *IMAGE_TEXT_FIELDS})
    if unknown:
        raise DataError(
            f"unknown field (known: image, {', '.join(IMAGE_TEXT_FIELDS)})", path=path, line=line, field=unknown[0]
        )
    image = record.get("image")
    if not isinstance(image, str) or not image:
        raise DataError("the image's file name is required", path=path, line=line, field="image")
    for key in ("caption", "ocr"):
        if key in record and not isinstance(record[key], str):
            raise DataError(f"expected a string, got {record[key]!r}", path=path, line=line, field=key)
    tags = record.get("tags", [])
    if not (isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)):
        raise DataError("expected a list of strings", path=path, line=line, field="tags")
    return ImageText(image=image, caption=record.get("caption"), tags=list(tags), ocr=record.get("ocr"))


def read_image_text(path: str | Path, *, allow_cut_tail: bool = False) -> dict[str, ImageText]:
    """Image text by image name; a later line for the same image replaces fields of an earlier one.

    ``allow_cut_tail``: a last line without its newline that does not parse (a writer killed mid-line)
    is dropped instead of being an error (the model provider's own cache)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such image-text file", path=path)
    found: dict[str, ImageText] = {}
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            if allow_cut_tail and number == len(lines):
                break
            raise DataError(f"not a JSON object: {error}", path=path, line=number) from None
        entry = parse_image_text(record, path, number)
        earlier = found.get(entry.image)
        if earlier is not None:  # several files merged: caption from one, tags from another
            entry = ImageText(
                entry.image,
                entry.caption if "caption" in record else earlier.caption,
                entry.tags if "tags" in record else earlier.tags,
                entry.ocr if "ocr" in record else earlier.ocr,
            )
        found[entry.image] = entry
    return found


def write_image_text(entries: Iterable[ImageText], path: str | Path) -> None:
    """Write image text in the documented format, atomically."""
    with atomic_writer(path) as handle:
        for entry in entries:
            handle.write(json.dumps(entry.to_dict(), ensure_ascii=False) + "\n")


class PrecomputedImageText(ImageTextProvider):
    """The text a file gives each image; an image it does not list is :class:`ImageTextUnavailable`."""

    name = "precomputed"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.entries = read_image_text(self.path)

    def text(self, ref: str, path: Path | None = None) -> ImageText:
        entry = self.entries.get(ref) or self.entries.get(Path(ref).name)
        if entry is None:
            raise ImageTextUnavailable(f"{self.path}: no line for image {ref!r}")
        return entry

    def describe(self) -> dict:
        return {"provider": self.name, "path": str(self.path), "images": len(self.entries)}
