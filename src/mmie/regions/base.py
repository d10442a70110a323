"""Region providers: per image, the top-k boxes (or crops) a multi-image RE model reads as local regions.

The papers (MRE-MI sec. 4.4, FocalMRE sec. 3) crop the top-k *visual-grounding* regions of each image:
a one-stage grounding model (Yang et al., 2019) queried with the head and tail entity names and the
post's nouns. mmie offers three providers behind one interface:

* :class:`~mmie.regions.precomputed.PrecomputedRegions` -- the crops a release ships (MRE-MI
  ``images_vg/`` + ``images_vg.pth``; the HVPNeT/MKGformer dictionaries);
* :class:`~mmie.regions.detector.DetectorRegions` -- a zero-shot detector of transformers (OWL-ViT,
  OWLv2, Grounding-DINO) queried with the entity names: text-conditioned boxes;
* :class:`~mmie.regions.grid.GridSaliencyRegions` -- offline, no detector weights: the cells of a
  vision encoder's feature grid that stand out most from the image's mean feature. It ignores the
  text entirely (a saliency ranking, not grounding).

    provider = GridSaliencyRegions(load_vision_encoder("efficientnet-lite0"))
    regions = provider.find(ImageSource.from_file("images/11573_0.jpg"), ["Jason Isaacs", "Emma Hewitt"], k=2)
    crops = [region.image(source) for region in regions]

:mod:`mmie.regions.build` writes the regions of a whole dataset in the MRE-MI layout.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from mmie.data.images import ImagePolicy, load_image

# (x0, y0, x1, y1) in pixels of the original image; x1 and y1 exclusive (PIL's crop convention).
Box = tuple[int, int, int, int]


@dataclass
class ImageSource:
    """One image a provider looks at: its reference (the crop dictionaries' key), its file, its record.

    The pixels are decoded on first use only (a precomputed provider never needs them). ``image``
    may be given directly for an image that has no file (an upload).
    """

    ref: str
    path: Path | None = None
    record_id: str | None = None
    policy: ImagePolicy = "error"
    image: Image.Image | None = field(default=None, repr=False)

    @classmethod
    def from_file(cls, path: str | Path, record_id: str | None = None, policy: ImagePolicy = "error") -> ImageSource:
        path = Path(path)
        return cls(ref=path.name, path=path, record_id=record_id, policy=policy)

    def load(self) -> Image.Image:
        """The RGB picture (decoded once); missing or broken files follow ``policy`` (mmie.data.images)."""
        if self.image is None:
            if self.path is None:
                raise ValueError(f"image {self.ref!r} has neither a file nor pixels")
            self.image = load_image(self.path.name, self.path.parent, self.policy, record_id=self.record_id)
        return self.image

    @property
    def size(self) -> tuple[int, int]:
        return self.load().size


@dataclass(frozen=True)
class Region:
    """One region of an image: a box with the provider's score, or a precomputed crop file (no box known)."""

    box: Box | None
    score: float | None = None
    query: str | None = None  # the text the region was found for (None: the provider reads no text)
    path: Path | None = None  # a precomputed crop file

    def image(self, source: ImageSource) -> Image.Image:
        """The region's pixels: the crop file, or the box cut out of the source image."""
        if self.path is not None:
            return load_image(self.path.name, self.path.parent, source.policy, record_id=source.record_id)
        if self.box is None:
            raise ValueError("a region needs a box or a crop file")
        return source.load().crop(self.box)

    def item(self, source: ImageSource) -> Path | Image.Image:
        """What the feature cache takes: the crop file when there is one (hashed, never re-decoded), else the crop."""
        return self.path if self.path is not None else self.image(source)


class RegionProvider(ABC):
    """Gives the top-k regions of an image for a post's text queries (entity names, words)."""

    name: ClassVar[str]
    # True when the regions depend on the queries (a grounding model); False for text-free rankings.
    reads_text: ClassVar[bool]

    @abstractmethod
    def find(self, source: ImageSource, queries: Sequence[str], k: int) -> list[Region]:
        """At most ``k`` regions of ``source``, best first."""

    def find_per_query(self, source: ImageSource, queries: Sequence[str]) -> list[Region]:
        """One region per fixed query, in the queries' order (UMGF's entity-type crops): a grounding
        provider is asked once per query for its best box (a query it finds nothing for is skipped); a
        text-free one gives its top ``len(queries)``."""
        if self.reads_text:
            return [region for query in queries for region in self.find(source, [query], 1)[:1]]
        return self.find(source, queries, len(queries))[: len(queries)]

    def describe(self) -> dict[str, Any]:
        """What determines the regions (written beside built regions, so a resumed build cannot mix providers)."""
        return {"provider": self.name}


# ------------------------------------------------------------------------------ box helpers


def clip_box(box: Sequence[float], size: tuple[int, int]) -> Box | None:
    """``box`` rounded outwards to whole pixels inside an image of ``size`` (width, height); None when empty."""
    width, height = size
    x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x1, y1 = min(width, math.ceil(box[2])), min(height, math.ceil(box[3]))
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1, y1)


def box_iou(a: Box, b: Box) -> float:
    inter_w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def top_k_distinct(regions: Sequence[Region], k: int, iou_threshold: float) -> list[Region]:
    """Greedy non-maximum suppression: the best ``k`` regions, none overlapping a better one above the IoU."""
    kept: list[Region] = []
    for region in sorted(regions, key=lambda r: -(r.score or 0.0)):
        if len(kept) == k:
            break
        assert region.box is not None
        if all(box_iou(region.box, other.box) <= iou_threshold for other in kept):  # type: ignore[arg-type]
            kept.append(region)
    return kept
