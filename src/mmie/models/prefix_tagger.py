"""What the visual-prefix NER models share: a BERT-CRF tagger whose every self-attention layer also
attends to tokens made from the post's images (HVPNeT-style prefix, :mod:`mmie.models.layers.visual_prefix`).

    visual tokens  = the subclass's choice (TPM-MI: temporal encoder over the images; baselines: ...)
    prefix         = VisualPrefix(visual tokens, their mask)         eq. 1 + eq. 3 of the MNER-MI paper
    H^L            = text encoder with the prefix in every layer     eq. 4
    y              = BIO-constrained CRF over the words' vectors      eq. 5-7 (as BERT-CRF)

Image inputs come in one of two forms (batch keys), both with ``image_mask [B, M]`` (False = no image):

* ``image_features [B, M, D]`` (+ ``region_features [B, M, R, D]`` for models that read regions):
  precomputed by a frozen vision encoder, usually through the feature cache;
* ``pixel_values [B, M, 3, H, W]``: encoded here by the model's own vision encoder, which is then
  fine-tuned end to end (``freeze_vision: false``), as in the paper's TPM-MI.

Padded slots are masked everywhere: their content never changes the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from mmie.data.schema import MAX_IMAGES
from mmie.encoders.vision import DEFAULT_VISION_ENCODER, VisionEncoder, load_vision_encoder, scatter_to_slots
from mmie.models.base import ModelConfig, TokenClassificationOutput, gather_positions
from mmie.models.bert_crf import BertCrfTagger
from mmie.models.layers.visual_prefix import VisualPrefix, encode_with_prefix

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from mmie.data.images import ImageDirs
    from mmie.training.features import Featurizer

VISION_PREFIX = "vision_encoder."
ImageLayout = Literal["all", "first", "stitched"]


class PrefixTaggerConfig(ModelConfig):
    vision_encoder: str = Field(
        DEFAULT_VISION_ENCODER, description="vision encoder: alias, Hugging Face id or folder (the paper: ViT-B/16)"
    )
    freeze_vision: bool = Field(
        True, description="true: frozen, features precomputed (feature cache); false: fine-tuned end to end on pixels"
    )
    prefix_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout on the per-layer prompts P^l")
    feature_cache: Path | None = Field(
        None, description="feature cache folder (frozen vision); null: $MMIE_CACHE_DIR or ~/.cache/mmie/vision-features"
    )


@dataclass
class PostImages:
    """The images of B posts in M slots: ``global_features [B, M, D]``, ``region_features [B, M, R, D]`` or None."""

    global_features: torch.Tensor
    region_features: torch.Tensor | None
    mask: torch.Tensor  # [B, M] bool


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


class VisualPrefixTagger(BertCrfTagger):
    """Base of the visual-prefix NER models; subclasses say which visual tokens become the prefix."""

    config_class: ClassVar[type[ModelConfig]] = PrefixTaggerConfig
    # What the featurizer hands over: every image ("all", up to image_slots), the first one, or one stitched grid.
    image_layout: ClassVar[ImageLayout] = "all"

    def __init__(
        self,
        config: PrefixTaggerConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder,
    ) -> None:
        super().__init__(config, labels, text_encoder)
        self.vision_encoder = vision_encoder
        self.image_dim: int = vision_encoder.hidden_size
        self.visual_prefix = VisualPrefix(self.visual_token_dim(), text_encoder.config, config.prefix_dropout)

    # ---------------------------------------------------------------- what a subclass provides

    @classmethod
    def image_slots(cls, config: PrefixTaggerConfig) -> int:
        """M: image slots per post in the batch."""
        return 1 if cls.image_layout != "all" else getattr(config, "max_images", MAX_IMAGES)

    @classmethod
    def region_cells(cls, config: PrefixTaggerConfig) -> int:
        """Side of the pooled region grid the model reads (0: the model reads global vectors only)."""
        return 0

    def visual_tokens(self, images: PostImages) -> tuple[torch.Tensor, torch.Tensor]:
        """The prefix's visual tokens ``[B, P, D]`` and their mask ``[B, P]``."""
        raise NotImplementedError

    def visual_token_dim(self) -> int:
        """D of :meth:`visual_tokens` (read from the config and ``image_dim`` only: called while building)."""
        return self.image_dim

    # ------------------------------------------------------------------------ building

    @classmethod
    def build_components(cls, config: PrefixTaggerConfig, component_configs: dict[str, dict] | None = None) -> dict:
        components = super().build_components(config, component_configs)
        # Rebuilt by name also from a saved model folder; the folder's weights then overwrite it.
        vision = (component_configs or {}).get("vision_encoder", {})
        components["vision_encoder"] = load_vision_encoder(
            vision.get("name", config.vision_encoder), frozen=vision.get("frozen", config.freeze_vision)
        )
        return components

    def component_configs(self) -> dict[str, dict]:
        return {
            **super().component_configs(),
            "vision_encoder": {"name": self.vision_encoder.name, "frozen": self.vision_encoder.frozen},
        }

    @classmethod
    def featurizer(
        cls,
        tokenizer: PreTrainedTokenizerBase,
        config: PrefixTaggerConfig,
        labels: list[str],
        images: ImageDirs | None = None,
    ) -> Featurizer:
        from mmie.training.image_features import PostImageFeaturizer

        return PostImageFeaturizer(super().featurizer(tokenizer, config, labels), cls, config, images)

    def is_head_parameter(self, name: str) -> bool:
        return super().is_head_parameter(name) and not name.startswith(VISION_PREFIX)

    # ------------------------------------------------------------------------- running

    def post_images(
        self,
        image_mask: torch.Tensor,
        image_features: torch.Tensor | None = None,
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
    ) -> PostImages:
        """Per-slot image features from whichever input the batch has; padded slots are zero."""
        mask = image_mask.bool()
        cells = self.region_cells(self.model_config)
        if pixel_values is not None and not mask.any():  # no real image in the batch: nothing to encode
            image_features = pixel_values.new_zeros(*mask.shape, self.image_dim)
            region_features = pixel_values.new_zeros(*mask.shape, cells * cells, self.image_dim) if cells else None
        elif pixel_values is not None:
            # [B, M, 3, H, W] -> the real images only [N, 3, H, W]: padded slots cost no compute
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.vision_encoder.frozen):
                out = self.vision_encoder.encode_pixels(pixel_values[mask])
            image_features = scatter_to_slots(out.global_features, mask)
            if cells:
                regions = pool_regions(out.region_features, self.vision_encoder.grid_size, cells)
                region_features = scatter_to_slots(regions, mask)
        elif image_features is None:
            raise ValueError(f"{type(self).__name__} needs image inputs: image_features or pixel_values")
        elif cells and region_features is None:
            raise ValueError(f"{type(self).__name__} reads regions: give region_features (or pixel_values)")
        keep = mask.unsqueeze(-1).to(image_features.dtype)  # zero vectors in missing slots (paper, sec. 4.3)
        if region_features is not None:
            region_features = region_features * keep.unsqueeze(-1)
        return PostImages(image_features * keep, region_features, mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        image_mask: torch.Tensor,
        image_features: torch.Tensor | None = None,
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> TokenClassificationOutput:
        images = self.post_images(image_mask, image_features, region_features, pixel_values)
        tokens, token_mask = self.visual_tokens(images)
        prefix = self.visual_prefix(tokens, token_mask)  # eq. 1 and 3, every layer
        hidden = encode_with_prefix(self.text_encoder, input_ids, attention_mask, prefix, token_type_ids)
        words = gather_positions(hidden.last_hidden_state, word_starts)  # H^L at each word's first sub-word
        emissions = self.classifier(self.dropout(words))
        loss = self.crf(emissions, labels, word_mask) if labels is not None else None  # eq. 7
        predictions = None if self.training else self.decode(emissions, word_mask)
        return TokenClassificationOutput(loss=loss, logits=emissions, predictions=predictions)
