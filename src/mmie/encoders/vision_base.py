"""The vision-encoder interface every implementation builds on: :class:`VisionEncoder` and :class:`VisionOutput`.

It lives apart from :mod:`mmie.encoders.vision` (the Hugging Face encoder, the loader and the post/slot
helpers) so that an implementation such as :mod:`mmie.encoders.efficientnet` imports only this base,
while the loader in ``vision`` picks the implementation: the imports go one way.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch import nn

from mmie.errors import ConfigError


@dataclass
class VisionOutput:
    """Features of N images: ``global_features [N, D]`` and ``region_features [N, R, D]``."""

    global_features: torch.Tensor
    region_features: torch.Tensor


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The raw bytes of a tensor (any dtype, bfloat16 included), without a copy when already on the CPU."""
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().data


class VisionEncoder(nn.Module, ABC):
    """Base of every vision encoder: preprocessing, frozen/fine-tuned handling, identity for the cache.

    Subclasses build their backbone, then call :meth:`_finish_init`, and implement
    :meth:`preprocess`, :meth:`encode_pixels`, :meth:`preprocessing_config`, :meth:`architecture_config`.
    """

    hidden_size: int
    num_regions: int
    grid_size: tuple[int, int] | None  # (rows, columns) of the regions when they form a grid
    input_side: int | None = None  # the longer side of the pictures it reads, in pixels (None: not known)

    def __init__(self, name: str, frozen: bool) -> None:
        super().__init__()
        self.name = name
        self.frozen = frozen
        self._fingerprint: str | None = None
        self.register_load_state_dict_post_hook(_forget_fingerprint)  # new weights, new cache identity

    # --- what a subclass provides -------------------------------------------------------------
    @abstractmethod
    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> float ``pixel_values [N, 3, H, W]`` on the CPU."""

    @abstractmethod
    def encode_pixels(self, pixel_values: torch.Tensor) -> VisionOutput:
        """``pixel_values`` (already on the encoder's device) -> features."""

    @abstractmethod
    def preprocessing_config(self) -> dict[str, Any]:
        """Every preprocessing parameter that changes the pixels (part of the cache key)."""

    @abstractmethod
    def architecture_config(self) -> dict[str, Any]:
        """What computes the features besides the weights: architecture config, pooling choice."""

    def stage_maps(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps of the backbone's stages, shallow to deep, each ``[N, C_s, h_s, w_s]`` (the
        multi-scale features of HVPNeT, :mod:`mmie.encoders.multiscale`). Encoders without stages say so."""
        raise ConfigError(f"vision encoder {self.name!r} ({type(self).__name__}) gives no stage outputs")

    # --- shared behaviour ---------------------------------------------------------------------
    def _finish_init(self) -> None:
        """Apply the frozen flag and measure D and R with one forward pass on a grey image."""
        self.set_frozen(self.frozen)
        # Eval mode keeps BatchNorm statistics still during the probe; loaded encoders also start in
        # eval mode, like `from_pretrained` models, until `model.train()` switches them.
        super().train(False)
        with torch.no_grad():
            probe = self.encode_pixels(self.preprocess([Image.new("RGB", (64, 64), (128, 128, 128))]))
        self.hidden_size = int(probe.global_features.shape[-1])
        self.num_regions = int(probe.region_features.shape[1])
        if probe.region_features.shape[-1] != self.hidden_size:
            raise ConfigError(
                f"vision encoder {self.name!r}: global features have size {self.hidden_size} but regions "
                f"{probe.region_features.shape[-1]}; choose global_pooling='cls' or 'mean'"
            )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def set_frozen(self, frozen: bool) -> None:
        """Frozen: no gradients and eval mode (dropout off, BatchNorm statistics fixed) for good."""
        self.frozen = frozen
        self._fingerprint = None
        for parameter in self.parameters():
            parameter.requires_grad_(not frozen)
        if frozen:
            super().train(False)

    def train(self, mode: bool = True) -> VisionEncoder:
        # A frozen encoder stays in eval mode when the model around it is put in training mode.
        return super().train(mode and not self.frozen)

    def forward(self, images: Sequence[Image.Image]) -> VisionOutput:
        """Encode N PIL images (N may be 0) on the encoder's device."""
        device = self.device
        if len(images) == 0:
            zeros = torch.zeros(0, self.hidden_size, device=device)
            return VisionOutput(zeros, torch.zeros(0, self.num_regions, self.hidden_size, device=device))
        pixel_values = self.preprocess(images).to(device)
        # A frozen encoder builds no autograd graph, which also saves the activations' memory.
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.encode_pixels(pixel_values)

    def weights_fingerprint(self) -> str:
        """sha256 over every parameter and buffer (names, dtypes, shapes, bytes); memoised."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for name, tensor in sorted(self.state_dict().items()):
                digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
                digest.update(tensor_bytes(tensor))
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def cache_identity(self) -> dict[str, Any]:
        """Everything the features depend on (the feature cache hashes this into its key)."""
        return {
            "encoder": type(self).__name__,
            "architecture": self.architecture_config(),
            "preprocessing": self.preprocessing_config(),
            "weights_sha256": self.weights_fingerprint(),
            "hidden_size": self.hidden_size,
            "num_regions": self.num_regions,
        }


def _forget_fingerprint(module: VisionEncoder, incompatible_keys: Any) -> None:
    module._fingerprint = None
