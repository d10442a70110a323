"""Multi-scale image features: a backbone's stage outputs, each pooled to a small grid (HVPNeT, sec. 3.1).

HVPNeT (Chen et al., NAACL Findings 2022) reads the four stages of a ResNet-50 (strides 4, 8, 16,
32), average-pools each to 2 x 2 and concatenates them along the channels: 4 tokens of 256 + 512 +
1024 + 2048 = 3840 values per image. :class:`MultiScaleEncoder` does the same over any encoder that
has stages (:meth:`VisionEncoder.stage_maps`):

* a convolutional backbone (EfficientNet-Lite, a Hugging Face ResNet / ConvNeXt): the last ``stages``
  maps, one per resolution (EfficientNet-Lite0 at 224: 24 + 40 + 112 + 1280 = 1456 channels);
* a Transformer (ViT, ...): its patch grid after ``stages`` evenly spaced layers (12 layers, 4
  stages: layers 3, 6, 9, 12), since all its layers have one resolution.

It is a :class:`VisionEncoder` like any other: ``region_features [N, cells^2, sum C_s]`` (the pooled
tokens, stages side by side in ``stage_dims`` order), ``global_features`` their mean. So the feature
cache keeps its features the way it keeps every encoder's, under a key of its own (the stage layout
is part of :meth:`architecture_config`), and the plain encoder's cache entries stay valid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torch import nn

from mmie.encoders.vision_base import VisionEncoder, VisionOutput
from mmie.errors import ConfigError


def select_stages(maps: list[torch.Tensor], stages: int) -> list[torch.Tensor]:
    """``stages`` of the maps: the deepest ones when resolutions differ (a CNN's stages), else evenly
    spaced layers ending at the last (a Transformer: every layer has the same grid)."""
    if len(maps) < stages and len({tuple(m.shape[2:]) for m in maps}) > 1:
        raise ConfigError(f"the vision encoder has {len(maps)} stages, fewer than the {stages} asked for")
    if len({tuple(m.shape[2:]) for m in maps}) > 1:
        return maps[-stages:]
    return [maps[math.ceil(len(maps) * (s + 1) / stages) - 1] for s in range(stages)]


class MultiScaleEncoder(VisionEncoder):
    """``base``'s last ``stages`` stage maps, each average-pooled to ``cells x cells`` and concatenated."""

    stage_dims: tuple[int, ...]  # C_s of each stage, shallow to deep: the channel blocks of the features

    def __init__(self, base: VisionEncoder, stages: int = 4, cells: int = 2, frozen: bool | None = None) -> None:
        if stages < 1 or cells < 1:
            raise ConfigError(f"multi-scale features need stages >= 1 and cells >= 1, got {stages} and {cells}")
        # The name is the backbone's: a saved model rebuilds it by that name and its config's stage settings.
        super().__init__(base.name, base.frozen if frozen is None else frozen)
        self.base = base
        self.stages, self.cells = stages, cells
        self.input_side = base.input_side
        self.grid_size = (cells, cells)
        self._finish_init()

    def set_frozen(self, frozen: bool) -> None:
        if "base" in self._modules:  # (the base class calls this before __init__ has set `base`)
            self.base.set_frozen(frozen)
        super().set_frozen(frozen)

    def pooled_stages(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """Each selected stage pooled: ``[N, C_s, cells, cells]`` (HVPNeT: AvgPool2d to 2 x 2)."""
        maps = select_stages(self.base.stage_maps(pixel_values), self.stages)
        return [nn.functional.adaptive_avg_pool2d(stage, self.cells) for stage in maps]

    def encode_pixels(self, pixel_values: torch.Tensor) -> VisionOutput:
        pooled = self.pooled_stages(pixel_values)
        self.stage_dims = tuple(int(stage.shape[1]) for stage in pooled)
        # [N, sum C_s, c, c] -> [N, c*c, sum C_s]: one token per pooled cell, the stages side by side
        tokens = torch.cat(pooled, dim=1).flatten(2).transpose(1, 2)
        return VisionOutput(tokens.mean(dim=1), tokens)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.base.preprocess(images)

    def preprocessing_config(self) -> dict[str, Any]:
        return self.base.preprocessing_config()

    def architecture_config(self) -> dict[str, Any]:
        return {
            **self.base.architecture_config(),
            "multiscale": {"stages": self.stages, "cells": self.cells, "pooling": "adaptive_avg"},
        }
