"""Vision encoders behind one interface: PIL images in, one global vector and R region vectors per image out.

Every encoder is an ``nn.Module`` exposing ``hidden_size`` (D), ``num_regions`` (R) and ``grid_size``
so that models take their dimensions from the encoder, never from literals:

    >>> encoder = load_vision_encoder("efficientnet-lite0", frozen=True)      # offline default
    >>> out = encoder(images)                # list of N PIL images -> VisionOutput
    >>> out.global_features.shape, out.region_features.shape                 # [N, 1280], [N, 49, 1280]

The interface (:class:`VisionEncoder`, :class:`VisionOutput`) is defined in
:mod:`mmie.encoders.vision_base` and re-exported here. Implementations: :class:`HFVisionEncoder`
(any Hugging Face vision model or the vision tower of a CLIP-like model, by hub name or local
folder; global = pooled output or [CLS], regions = patch tokens) and
:class:`mmie.encoders.efficientnet.EfficientNetLiteEncoder` (offline EfficientNet-Lite; global =
mean of the grid, regions = the grid cells), which :func:`load_vision_encoder` picks by name.

A post has 1..4 images in order. :func:`flatten_post_images` turns a batch of posts' image lists into
the flat list of real images plus ``image_mask [B, M]``; only real images are encoded, and
:func:`scatter_to_slots` puts the features back into ``[B, M, ...]`` with zeros in padded slots, which
every downstream attention and pooling must mask with ``image_mask``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from PIL import Image
from torch import nn

from mmie.data.schema import MAX_IMAGES
from mmie.encoders.hub import NotInLocalCache, hub_options, loading_problem, local_source, quiet_loading

# The interface also stays importable from here, where models and callers have always taken it.
from mmie.encoders.vision_base import VisionEncoder, VisionOutput, tensor_bytes  # noqa: F401
from mmie.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

T = TypeVar("T")
GLOBAL_POOLINGS = ("auto", "pooler", "cls", "mean")
# Keys of a transformers config that say where it was loaded from, not what it computes.
_VOLATILE_CONFIG_KEYS = {"_name_or_path", "transformers_version", "_commit_hash", "architectures"}


@dataclass
class PostVisionOutput:
    """Features of B posts with up to M image slots each; padded slots are zero and ``image_mask`` False."""

    global_features: torch.Tensor  # [B, M, D]
    region_features: torch.Tensor  # [B, M, R, D]
    image_mask: torch.Tensor  # [B, M] bool

    @classmethod
    def from_flat(
        cls, global_features: torch.Tensor, region_features: torch.Tensor, image_mask: torch.Tensor
    ) -> PostVisionOutput:
        """Scatter features of the real images (post-major, slot order) into their ``[B, M]`` slots."""
        image_mask = image_mask.to(global_features.device)
        return cls(
            scatter_to_slots(global_features, image_mask),
            scatter_to_slots(region_features, image_mask),
            image_mask,
        )


class HFVisionEncoder(VisionEncoder):
    """A Hugging Face vision model (ViT, DeiT, BEiT, Swin, ConvNeXt, ...) or the vision tower of CLIP/SigLIP.

    ``global_pooling``: ``"auto"`` uses the model's pooled output when its weights were in the
    checkpoint (CLIP: post-layernorm [CLS]), else the [CLS] token, else the mean of the patches;
    ``"pooler"``, ``"cls"`` and ``"mean"`` force one. Regions are the patch tokens (prefix tokens such
    as [CLS] or distillation tokens removed), or the cells of a convolutional feature map.
    """

    def __init__(self, name_or_path: str, frozen: bool = True, global_pooling: str = "auto") -> None:
        super().__init__(str(name_or_path), frozen)
        if global_pooling not in GLOBAL_POOLINGS:
            raise ConfigError(f"global_pooling must be one of {', '.join(GLOBAL_POOLINGS)}, got {global_pooling!r}")
        self.model, missing_keys = _load_hf_vision_model(self.name)
        self.processor = _load_image_processor(local_source(self.name))  # (checked by the model's loading)
        self.input_side = _processor_side(self.processor)
        self.requested_pooling = global_pooling
        self._pooler_loaded = not any("pooler" in key for key in missing_keys)
        self._num_prefix_tokens = 0
        self.global_pooling = "mean"
        self.grid_size = None
        self._configure_layout()
        self._finish_init()

    def _configure_layout(self) -> None:
        """Count prefix tokens and the patch grid from one forward pass at the processor's input size."""
        with torch.no_grad():
            pixels = self.preprocess([Image.new("RGB", (64, 64))])
            out = self.model.eval()(pixel_values=pixels)
        hidden = out.last_hidden_state
        patch = getattr(self.model.config, "patch_size", None)
        if hidden.dim() == 4:  # a convolutional feature map [N, C, H, W]
            self.grid_size = (int(hidden.shape[2]), int(hidden.shape[3]))
        elif isinstance(patch, int) and hidden.dim() == 3:
            rows, columns = pixels.shape[2] // patch, pixels.shape[3] // patch
            prefix = hidden.shape[1] - rows * columns
            if prefix >= 0:
                self._num_prefix_tokens, self.grid_size = prefix, (rows, columns)
        has_pooler = getattr(out, "pooler_output", None) is not None
        if self.requested_pooling == "auto":
            if has_pooler and self._pooler_loaded:
                self.global_pooling = "pooler"
            else:
                self.global_pooling = "cls" if self._num_prefix_tokens > 0 else "mean"
        else:
            if self.requested_pooling == "pooler" and not has_pooler:
                raise ConfigError(f"vision encoder {self.name!r} has no pooled output; use 'cls' or 'mean'")
            if self.requested_pooling == "cls" and self._num_prefix_tokens == 0:
                raise ConfigError(f"vision encoder {self.name!r} has no [CLS] token; use 'pooler' or 'mean'")
            self.global_pooling = self.requested_pooling

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        return self.processor(images=rgb, return_tensors="pt")["pixel_values"]

    def encode_pixels(self, pixel_values: torch.Tensor) -> VisionOutput:
        out = self.model(pixel_values=pixel_values.to(self.model.dtype))  # a half-precision model takes half pixels
        hidden = out.last_hidden_state
        if hidden.dim() == 4:
            regions = hidden.flatten(2).transpose(1, 2)
        else:
            regions = hidden[:, self._num_prefix_tokens :]
        if self.global_pooling == "pooler":
            pooled = out.pooler_output.flatten(1)
        elif self.global_pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = regions.mean(dim=1)
        return VisionOutput(pooled, regions)

    def stage_maps(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """Convolutional models (ResNet, ConvNeXt, ...): every hidden state that is a feature map (the
        stem's, then each stage's). Transformers (ViT, ...): the patch grid after every layer."""
        out = self.model(pixel_values=pixel_values.to(self.model.dtype), output_hidden_states=True)
        states = list(out.hidden_states)
        if states[-1].dim() == 4:
            return states
        if self.grid_size is None:
            raise ConfigError(f"vision encoder {self.name!r}: its tokens form no patch grid, so it has no stage maps")
        rows, columns = self.grid_size
        if any(state.shape[1] != self._num_prefix_tokens + rows * columns for state in states):
            # hierarchical Transformers (Swin) merge patches between stages: their sequences shrink
            raise ConfigError(f"vision encoder {self.name!r}: its layers' token grids differ; no stage maps read")
        # [N, prefix + rows*columns, C] -> [N, C, rows, columns]; the embeddings (states[0]) are no stage
        return [
            state[:, self._num_prefix_tokens :].transpose(1, 2).reshape(len(state), -1, rows, columns)
            for state in states[1:]
        ]

    def preprocessing_config(self) -> dict[str, Any]:
        return {"processor": self.processor.to_dict()}

    def architecture_config(self) -> dict[str, Any]:
        config = {k: v for k, v in self.model.config.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
        return {"model_class": type(self.model).__name__, "config": config, "global_pooling": self.global_pooling}


def _load_hf_vision_model(name_or_path: str) -> tuple[PreTrainedModel, list[str]]:
    """The vision model (or, for CLIP-like checkpoints, only its vision tower) and its missing keys."""
    import transformers
    from transformers import AutoConfig, AutoModel

    options = hub_options()
    try:
        source = local_source(name_or_path)
        config = AutoConfig.from_pretrained(source, **options)
        model_class: Any = AutoModel
        if getattr(config, "vision_config", None) is not None:
            # CLIPConfig -> CLIPVisionModel, SiglipConfig -> SiglipVisionModel: load the tower alone.
            tower = type(config).__name__.replace("Config", "VisionModel")
            model_class = getattr(transformers, tower, None)
            if model_class is None:
                raise ConfigError(
                    f"vision encoder {name_or_path!r}: a multimodal checkpoint ({type(config).__name__}) "
                    f"whose vision tower mmie cannot load alone; save the vision model to a folder and use that"
                )
        with quiet_loading(source):
            model, info = model_class.from_pretrained(source, output_loading_info=True, **options)
    except ConfigError:
        raise
    except NotInLocalCache as error:
        raise ConfigError(f"vision encoder {name_or_path!r}: {error}") from None
    except OSError as error:
        raise ConfigError(
            f"vision encoder {name_or_path!r}: not a local model folder and not in the Hugging Face cache "
            f"(downloads only for a hub id you name, without HF_HUB_OFFLINE): {loading_problem(error)}"
        ) from None
    except Exception as error:  # refused weights (a pickle with code in it), custom code, a damaged file
        raise ConfigError(f"vision encoder {name_or_path!r}: cannot load it: {loading_problem(error)}") from None
    return model, list(info.get("missing_keys", []))


def _processor_side(processor: Any) -> int | None:
    """The longer side of the pictures an image processor hands the model (its resize or crop size)."""
    sides = []
    for setting in (getattr(processor, "size", None), getattr(processor, "crop_size", None)):
        values = setting if isinstance(setting, dict) else getattr(setting, "__dict__", {})  # dict or SizeDict
        keys = ("height", "width", "shortest_edge", "longest_edge")
        sides += [value for key, value in values.items() if key in keys and isinstance(value, int) and value > 0]
    return max(sides) if sides else None


def _load_image_processor(name_or_path: str) -> Any:
    """The model's own image processor, on its Pillow backend (torchvision does not import beside this torch)."""
    import transformers
    from transformers import AutoImageProcessor

    # transformers 5 picks the backend by name; 4.x calls the Pillow-based processor the "slow" one.
    options = {"backend": "pil"} if int(transformers.__version__.split(".")[0]) >= 5 else {"use_fast": False}
    try:
        return AutoImageProcessor.from_pretrained(name_or_path, **options, **hub_options())
    except OSError as error:
        raise ConfigError(f"vision encoder {name_or_path!r}: no image processor config found: {error}") from None
    except Exception as error:  # custom code, a damaged file
        raise ConfigError(
            f"vision encoder {name_or_path!r}: cannot load its image processor: {loading_problem(error)}"
        ) from None


# --- factory ---------------------------------------------------------------------------------------
EFFICIENTNET_ALIASES = {f"efficientnet-lite{k}": k for k in range(5)} | {f"efficientnet_lite{k}": k for k in range(5)}
DEFAULT_VISION_ENCODER = "efficientnet-lite0"


def load_vision_encoder(
    name_or_path: str = DEFAULT_VISION_ENCODER,
    frozen: bool = True,
    *,
    device: str | torch.device | None = None,
    global_pooling: str = "auto",
    multiscale: tuple[int, int] | None = None,
) -> VisionEncoder:
    """A vision encoder by alias (``efficientnet-lite0``, offline), hub name or local folder.

    ``frozen`` fixes the weights (no gradients, eval mode); otherwise the encoder is fine-tuned with
    the model. ``device`` defaults to the CPU; move it later with ``.to(device)`` like any module.
    ``multiscale``: ``(stages, cells)`` for its stage outputs pooled to ``cells x cells`` instead of its
    final features (:class:`mmie.encoders.multiscale.MultiScaleEncoder`, HVPNeT's inputs).
    """
    name = str(name_or_path)
    if name.lower() in EFFICIENTNET_ALIASES:
        from mmie.encoders.efficientnet import EfficientNetLiteEncoder

        encoder: VisionEncoder = EfficientNetLiteEncoder(variant=EFFICIENTNET_ALIASES[name.lower()], frozen=frozen)
    else:
        encoder = HFVisionEncoder(name, frozen=frozen, global_pooling=global_pooling)
    if multiscale is not None:
        from mmie.encoders.multiscale import MultiScaleEncoder

        encoder = MultiScaleEncoder(encoder, stages=multiscale[0], cells=multiscale[1])
    return encoder.to(device) if device is not None else encoder


# --- posts with 1..M images --------------------------------------------------------------------------
def flatten_post_images(
    posts_images: Sequence[Sequence[T | None]], max_images: int = MAX_IMAGES, *, truncate: bool = False
) -> tuple[list[T], torch.Tensor]:
    """A batch of posts' image lists -> (the real images, flat and in order; ``image_mask [B, M]``).

    A ``None`` entry keeps its slot (its position still counts for order) but is masked and not
    encoded. A post with more than ``max_images`` images is an error unless ``truncate`` keeps the first ones.
    """
    if max_images < 1:
        raise ValueError(f"max_images must be at least 1, got {max_images}")
    image_mask = torch.zeros(len(posts_images), max_images, dtype=torch.bool)
    flat: list[T] = []
    for row, images in enumerate(posts_images):
        if len(images) > max_images and not truncate:
            raise ValueError(f"post {row} of the batch has {len(images)} images, more than max_images={max_images}")
        for slot, image in enumerate(list(images)[:max_images]):
            if image is not None:
                flat.append(image)
                image_mask[row, slot] = True
    return flat, image_mask


def pool_regions(regions: torch.Tensor, grid_size: tuple[int, int] | None, cells: int) -> torch.Tensor:
    """Average-pool the R regions of each image to ``cells x cells`` tokens: ``[..., R, D] -> [..., cells^2, D]``.

    Regions on a known grid (ViT patches, CNN cells) are pooled in 2D, like HVPNeT's pooled feature maps;
    otherwise in reading order.
    """
    *leading, count, dim = regions.shape
    flat = regions.reshape(-1, count, dim).transpose(1, 2)  # [N, D, R]
    if grid_size is not None and grid_size[0] * grid_size[1] == count:
        pooled = nn.functional.adaptive_avg_pool2d(flat.reshape(-1, dim, *grid_size), cells)  # [N, D, c, c]
    else:
        pooled = nn.functional.adaptive_avg_pool1d(flat, cells * cells)  # [N, D, c*c]
    return pooled.flatten(2).transpose(1, 2).reshape(*leading, cells * cells, dim)


def scatter_to_slots(flat: torch.Tensor, image_mask: torch.Tensor) -> torch.Tensor:
    """``flat [N, ...]`` (one row per True of ``image_mask``, row-major) -> ``[B, M, ...]``, zeros elsewhere."""
    if int(image_mask.sum()) != flat.shape[0]:
        raise ValueError(f"image_mask has {int(image_mask.sum())} real slots but {flat.shape[0]} feature rows")
    slots = flat.new_zeros((*image_mask.shape, *flat.shape[1:]))
    slots[image_mask.to(flat.device)] = flat  # differentiable: gradients reach the fine-tuned encoder
    return slots


def encode_posts(
    encoder: VisionEncoder, posts_images: Sequence[Sequence[Image.Image | None]], max_images: int = MAX_IMAGES
) -> PostVisionOutput:
    """Encode the real images of B posts in one call and return them in ``[B, M]`` slots with the mask."""
    flat, image_mask = flatten_post_images(posts_images, max_images)
    out = encoder(flat)
    return PostVisionOutput.from_flat(out.global_features, out.region_features, image_mask)
