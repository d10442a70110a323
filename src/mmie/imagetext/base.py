"""The image-text record and the provider interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmie.errors import MmieError

IMAGE_TEXT_FIELDS = ("caption", "tags", "ocr")


class ImageTextUnavailable(MmieError):
    """A provider has no text for an image (offline with no file, or an image its file does not cover)."""


@dataclass
class ImageText:
    """What an image says in words: one caption, object tags (most confident first), OCR text."""

    image: str
    caption: str | None = None
    tags: list[str] = field(default_factory=list)
    ocr: str | None = None

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"image": self.image}
        if self.caption is not None:
            record["caption"] = self.caption
        if self.tags:
            record["tags"] = list(self.tags)
        if self.ocr is not None:
            record["ocr"] = self.ocr
        return record


class ImageTextProvider(ABC):
    """``text(ref, path)``: the image text of the image named ``ref`` (its file is ``path`` when known)."""

    name: str = "base"

    @abstractmethod
    def text(self, ref: str, path: Path | None = None) -> ImageText:
        """The text of one image; :class:`ImageTextUnavailable` when the provider has none."""

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name}


class NoImageText(ImageTextProvider):
    """Offline with no precomputed file and no model: every request says so, nothing is made up."""

    name = "none"

    def __init__(self, reason: str = "no image-text file and no captioning/tagging model were given") -> None:
        self.reason = reason

    def text(self, ref: str, path: Path | None = None) -> ImageText:
        raise ImageTextUnavailable(
            f"no captions, tags or OCR text for image {ref!r}: {self.reason}. Give a precomputed file "
            "(JSON lines keyed by image name, docs/imagetext.md) or a Hugging Face model that is available offline"
        )
