"""The offline region provider: salient cells of a vision encoder's feature grid, merged into boxes.

No detector weights and no text: the vision encoders mmie runs offline (EfficientNet-Lite0: a 7 x 7
grid of 1280-d cells; a ViT: its patch grid) were never trained to put text and image in one space,
so nothing here can tell which part of a picture shows "Emma Hewitt". What this provider computes
instead is a **saliency (objectness) ranking**:

    s(cell) = || f(cell) - mean_cells f ||_2          how much a cell differs from the picture's average

Cells showing an object differ from the background that dominates the mean; flat sky, walls and
borders score low. Boxes are grown from the highest-scoring free cell over its 4-connected
neighbours scoring at least ``merge`` x the peak (best first, up to ``max_fraction`` of the grid), so
one object spanning several cells becomes one box; the box's cells are then taken, and the next box
starts from the best remaining cell. Boxes
map the grid onto the whole picture, which holds for encoders that resize without cropping
(EfficientNet-Lite in mmie, ViT processors); for a processor that crops the centre they are approximate.

The queries are accepted (one interface for all providers) and ignored: use these regions as generic
"object-like" crops, like the object-detection (OD) regions of FocalMRE, never as grounding of the entities.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from mmie.errors import ConfigError
from mmie.regions.base import ImageSource, Region, RegionProvider, clip_box

if TYPE_CHECKING:
    from mmie.encoders.cache import FeatureCache
    from mmie.encoders.vision import VisionEncoder


def cell_saliency(region_features: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
    """``[R, D]`` cell features -> ``[rows, columns]`` distance of each cell to the mean cell."""
    centre = region_features.mean(dim=0, keepdim=True)
    return (region_features - centre).norm(dim=-1).reshape(grid_size)


def grow_boxes(
    saliency: torch.Tensor, k: int, merge: float, max_fraction: float = 0.5
) -> list[tuple[tuple[int, int, int, int], float]]:
    """Up to ``k`` cell boxes ``((row0, col0, row1, col1) exclusive, peak score)``, best first, not overlapping.

    Each box starts at the best free cell and grows best-first over free 4-connected neighbours scoring
    at least ``merge`` x its peak, as long as it covers at most ``max_fraction`` of the grid (a box
    spanning the whole picture would be no region at all).
    """
    rows, columns = saliency.shape
    largest = max(1, int(max_fraction * rows * columns))
    free = torch.ones(rows, columns, dtype=torch.bool)
    boxes: list[tuple[tuple[int, int, int, int], float]] = []
    while len(boxes) < k and free.any():
        peak = int(saliency.masked_fill(~free, float("-inf")).flatten().argmax())
        peak_value = float(saliency.flatten()[peak])
        row0, col0 = divmod(peak, columns)
        row1, col1 = row0 + 1, col0 + 1
        seen = {(row0, col0)}
        frontier: list[tuple[float, int, int]] = []

        # Called only within this iteration: the closure reads this box's seen, frontier and peak.
        def push_neighbours(row: int, column: int) -> None:  # noqa: B023
            for r, c in ((row - 1, column), (row + 1, column), (row, column - 1), (row, column + 1)):
                if 0 <= r < rows and 0 <= c < columns and (r, c) not in seen and free[r, c]:  # noqa: B023
                    seen.add((r, c))  # noqa: B023
                    if float(saliency[r, c]) >= merge * peak_value:  # noqa: B023
                        heapq.heappush(frontier, (-float(saliency[r, c]), r, c))  # noqa: B023

        push_neighbours(row0, col0)
        while frontier:
            _, r, c = heapq.heappop(frontier)
            grown = (min(row0, r), min(col0, c), max(row1, r + 1), max(col1, c + 1))
            if (grown[2] - grown[0]) * (grown[3] - grown[1]) > largest:
                continue
            row0, col0, row1, col1 = grown
            push_neighbours(r, c)
        free[row0:row1, col0:col1] = False  # the whole box: later boxes never overlap it
        boxes.append(((row0, col0, row1, col1), peak_value))
    return boxes


class GridSaliencyRegions(RegionProvider):
    """Top-k salient boxes on a vision encoder's feature grid (offline; ignores the text)."""

    name = "grid"
    reads_text = False

    def __init__(
        self, encoder: VisionEncoder, cache: FeatureCache | None = None, merge: float = 0.75, max_fraction: float = 0.5
    ) -> None:
        if encoder.grid_size is None or encoder.grid_size[0] * encoder.grid_size[1] != encoder.num_regions:
            raise ConfigError(
                f"vision encoder {encoder.name!r}: its regions do not form a grid; the grid provider needs one "
                f"(EfficientNet-Lite, ViT, ConvNeXt, ...)"
            )
        if not 0.0 < merge <= 1.0:
            raise ConfigError(f"merge must be in (0, 1], got {merge}")
        if not 0.0 < max_fraction <= 1.0:
            raise ConfigError(f"max_fraction must be in (0, 1], got {max_fraction}")
        self.encoder = encoder
        self.cache = cache
        self.merge = merge
        self.max_fraction = max_fraction

    def cell_features(self, source: ImageSource) -> torch.Tensor:
        """``[R, D]``: from the feature cache when there is one (the file is hashed, the picture not re-encoded)."""
        if self.cache is not None:
            _, regions = self.cache.get_many([source.path if source.path is not None else source.load()])
            return regions[0]
        with torch.no_grad():
            return self.encoder([source.load()]).region_features[0].float().cpu()

    def find(self, source: ImageSource, queries: Sequence[str], k: int) -> list[Region]:
        if k <= 0:
            return []
        grid = self.encoder.grid_size
        assert grid is not None
        saliency = cell_saliency(self.cell_features(source), grid)
        width, height = source.size
        cell_w, cell_h = width / grid[1], height / grid[0]
        regions = []
        for (row0, col0, row1, col1), score in grow_boxes(saliency, k, self.merge, self.max_fraction):
            box = clip_box((col0 * cell_w, row0 * cell_h, col1 * cell_w, row1 * cell_h), (width, height))
            if box is not None:
                regions.append(Region(box=box, score=score))
        return regions

    def describe(self) -> dict[str, Any]:
        identity = self.encoder.cache_identity()
        return {
            "provider": self.name,
            "encoder": self.encoder.name,
            "weights_sha256": identity["weights_sha256"],
            "merge": self.merge,
            "max_fraction": self.max_fraction,
        }
