"""GLRA: Global and Local Relevance-Modulated Attention (MRE-MI paper, sec. 4).

    T = [CLS] ... <s> head </s> ... <o> tail </o> ... [SEP]          entity markers     (eq. 1)
    H = BERT(T);  global text H_[CLS];  local text [H_<s>; H_<o>]                       (sec. 4.3)
    V = (v_1 .. v_m)        one vector per image (vision encoder)                       (sec. 4.4)
    O = (o_1 .. o_{m*k})    one vector per region, k regions per image, same encoder    (sec. 4.4)
    C = RMA(H_[CLS], V)     global text-aware image representation   [1 x d_t]          (eq. 2-6)
    U = RMA([H_<s>; H_<o>], O)   local text-aware image representation [2 x d_t]        (eq. 2-6)
    p(y | S, I) = softmax([H_[CLS]; H_<s>; H_<o>; C; U] W),  W: 6 d_t x |Y|            (eq. 7)
    L = cross-entropy                                                                  (eq. 8)

RMA is :class:`~mmie.models.layers.relevance_attention.RelevanceModulatedAttention`, one module for
both paths. The ablations of Table 3 are switches: ``use_global: false`` drops H_[CLS] and C,
``use_local: false`` drops H_<s>, H_<o> and U, ``relevance_modulation: false`` keeps the attention
and drops R (eq. 2-4). The per-image relevance R_global is in every output (``relevance [B, M]``,
0 for padded slots) and in every prediction GLRA writes.

Also here: :class:`ImageRelationModel`, the base GLRA shares with the image RE baselines of Table 2
(:mod:`mmie.models.mre_image_baselines`): the vision encoder, the image and region inputs, masking.
Deviation from the reference code, on purpose: padded images and padded regions are masked in every
attention and relevance (the reference attends to zero-padded images and always to 3 regions each).
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
from mmie.errors import ConfigError
from mmie.models.base import RelationClassificationOutput, gather_positions
from mmie.models.bert_cls import MarkedRelationModel, RelationModelConfig
from mmie.models.layers.relevance_attention import RelevanceModulatedAttention
from mmie.models.registry import register_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from mmie.data.images import ImageDirs
    from mmie.training.features import Featurizer

VISION_PREFIX = "vision_encoder."
# Images per vision-encoder call when no gradient flows through it: a batch of 16 posts holds up to
# 16 x (4 + 8) images and crops, and EfficientNet's activations for all of them at once take ~2 GB.
ENCODE_CHUNK = 32


class ImageRelationConfig(RelationModelConfig):
    vision_encoder: str = Field(
        DEFAULT_VISION_ENCODER, description="vision encoder: alias, Hugging Face id or folder (the paper: ViT-L/16-384)"
    )
    freeze_vision: bool = Field(
        True, description="true: frozen, features precomputed (feature cache); false: fine-tuned on pixels"
    )
    feature_cache: Path | None = Field(
        None, description="feature cache folder (frozen vision); null: $MMIE_CACHE_DIR or ~/.cache/mmie/vision-features"
    )
    max_images: int = Field(MAX_IMAGES, ge=1, le=MAX_IMAGES, description="m: image slots per post")
    regions_per_image: int = Field(2, ge=0, le=16, description="k: regions per image (MRE-MI ships up to 2)")
    regions: Literal["precomputed", "grid"] = Field(
        "precomputed", description="precomputed: a crop dictionary (images_vg.pth); grid: offline saliency boxes"
    )
    region_dict: Path | None = Field(
        None, description="crop dictionary; null: images_vg.pth beside the image folder (MRE-MI layout)"
    )
    region_dir: Path | None = Field(None, description="crop folder; null: images_vg/ beside the crop dictionary")
    region_key: Literal["image", "record"] = Field(
        "image", description="crop dictionary keys: image names (MRE-MI, Twitter) or record ids (MNRE line index)"
    )
    attention_heads: int = Field(
        1, ge=1, description="heads of the cross-modal attention (paper: 1; reference code: 12)"
    )


@dataclass
class ImageRelationOutput(RelationClassificationOutput):
    """RE output of the image models. ``relevance [B, M]``: R of each image slot (0 for padded slots);
    ``region_relevance [B, 2, M, k]``: R of each entity marker and region. None when not computed."""

    relevance: torch.Tensor | None = None
    region_relevance: torch.Tensor | None = None


@dataclass
class PostRegions:
    """Encoded image inputs: ``images [B, M, D]``, ``regions [B, M, k, D]`` and their masks."""

    images: torch.Tensor
    image_mask: torch.Tensor  # [B, M] bool
    regions: torch.Tensor
    region_mask: torch.Tensor  # [B, M, k] bool, False also under every padded image


class ImageRelationModel(MarkedRelationModel):
    """Base of the RE models reading the post's images and k regions per image."""

    config_class: ClassVar[type[ImageRelationConfig]] = ImageRelationConfig
    # Which images the featurizer hands over: every image ("all", up to max_images) or the first one.
    image_layout: ClassVar[Literal["all", "first"]] = "all"

    def __init__(
        self,
        config: ImageRelationConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder,
    ) -> None:
        super().__init__(config, labels, text_encoder)
        self.vision_encoder = vision_encoder
        self.image_dim: int = vision_encoder.hidden_size
        self.dropout = nn.Dropout(config.dropout)

    # ------------------------------------------------------------ what the featurizer reads

    @classmethod
    def image_slots(cls, config: ImageRelationConfig) -> int:
        return 1 if cls.image_layout == "first" else config.max_images

    @classmethod
    def region_cells(cls, config: ImageRelationConfig) -> int:
        return 0  # the featurizer pools no grid: regions are crops (region_features)

    @classmethod
    def regions_per_image(cls, config: ImageRelationConfig) -> int:
        return config.regions_per_image

    # ------------------------------------------------------------------------ building

    @classmethod
    def build_components(cls, config: ImageRelationConfig, component_configs: dict[str, dict] | None = None) -> dict:
        components = super().build_components(config, component_configs)
        vision = (component_configs or {}).get("vision_encoder", {})  # a saved folder's weights overwrite it
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
        config: ImageRelationConfig,
        labels: list[str],
        images: ImageDirs | None = None,
    ) -> Featurizer:
        from mmie.training.region_features import RelationImageFeaturizer

        return RelationImageFeaturizer(super().featurizer(tokenizer, config, labels), cls, config, images)

    def is_head_parameter(self, name: str) -> bool:
        return super().is_head_parameter(name) and not name.startswith(VISION_PREFIX)

    # ------------------------------------------------------------------------- running

    def post_regions(
        self,
        image_mask: torch.Tensor,
        region_mask: torch.Tensor,
        image_features: torch.Tensor | None = None,
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        region_pixel_values: torch.Tensor | None = None,
    ) -> PostRegions:
        """Image and region vectors from whichever inputs the batch has; padded slots are zero."""
        image_mask = image_mask.bool()
        region_mask = region_mask.bool() & image_mask.unsqueeze(-1)  # no region under a padded image
        if pixel_values is not None:
            if region_pixel_values is None:
                raise ValueError(f"{type(self).__name__}: pixel_values need region_pixel_values")
            image_features, region_features = self._encode_pixels(
                pixel_values, image_mask, region_pixel_values, region_mask
            )
        elif image_features is None or region_features is None:
            raise ValueError(f"{type(self).__name__} needs image_features + region_features, or pixel_values")
        images = image_features.masked_fill(~image_mask.unsqueeze(-1), 0.0)
        regions = region_features.masked_fill(~region_mask.unsqueeze(-1), 0.0)
        return PostRegions(images, image_mask, regions, region_mask)

    def _encode_pixels(
        self, pixels: torch.Tensor, image_mask: torch.Tensor, region_pixels: torch.Tensor, region_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode the real images and real crops only, in one call of the (maybe fine-tuned) encoder."""
        real = torch.cat([pixels[image_mask], region_pixels[region_mask]])
        if real.shape[0] == 0:
            dims = (*image_mask.shape, self.image_dim)
            return pixels.new_zeros(dims), pixels.new_zeros((*region_mask.shape, self.image_dim))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.vision_encoder.frozen):
            if torch.is_grad_enabled():
                vectors = self.vision_encoder.encode_pixels(real).global_features
            else:  # no graph to keep (frozen, or inference): chunks keep the activations' memory flat
                chunks = real.split(ENCODE_CHUNK)
                vectors = torch.cat([self.vision_encoder.encode_pixels(chunk).global_features for chunk in chunks])
        n_images = int(image_mask.sum())
        return scatter_to_slots(vectors[:n_images], image_mask), scatter_to_slots(vectors[n_images:], region_mask)

    def marker_vectors(self, hidden: torch.Tensor, head_start: torch.Tensor, tail_start: torch.Tensor) -> torch.Tensor:
        """``[B, 2, d_t]``: the <s> and <o> start-marker vectors (MTB's entity-start representation)."""
        return gather_positions(hidden, torch.stack([head_start, tail_start], dim=1))

    def classify(
        self, hidden: torch.Tensor, markers: torch.Tensor, posts: PostRegions
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
        """The subclass's head: text vectors ``[B, T, d_t]``, start markers ``[B, 2, d_t]`` and the images
        -> logits ``[B, labels]`` and extra outputs (fields of :class:`ImageRelationOutput`)."""
        raise NotImplementedError

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        image_mask: torch.Tensor,
        region_mask: torch.Tensor,
        image_features: torch.Tensor | None = None,
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        region_pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> ImageRelationOutput:
        hidden = self.encode_text(input_ids, attention_mask, token_type_ids)
        markers = self.marker_vectors(hidden, head_start, tail_start)
        posts = self.post_regions(
            image_mask, region_mask, image_features, region_features, pixel_values, region_pixel_values
        )
        logits, extras = self.classify(hidden, markers, posts)
        return ImageRelationOutput(loss=self.loss(logits, labels), logits=logits, **extras)


class GlraConfig(ImageRelationConfig):
    name: str = "glra"
    use_global: bool = Field(True, description="global representations H_[CLS] and C (Table 3: w/o Global)")
    use_local: bool = Field(True, description="local representations H_<s>, H_<o> and U (Table 3: w/o Local)")
    relevance_modulation: bool = Field(
        True, description="R in the attention, eq. 2-4 (Table 3: w/o Relevance Modulation)"
    )


@register_model("glra")
class GlraClassifier(ImageRelationModel):
    """GLRA (MRE-MI paper): relevance-modulated attention of global and local text over images and regions."""

    config_class = GlraConfig

    def __init__(
        self, config: GlraConfig, labels: list[str], text_encoder: PreTrainedModel, vision_encoder: VisionEncoder
    ) -> None:
        super().__init__(config, labels, text_encoder, vision_encoder)
        if not (config.use_global or config.use_local):
            raise ConfigError("model: use_global and use_local are both false; GLRA needs at least one")
        if config.use_local and config.regions_per_image == 0:
            raise ConfigError("model.regions_per_image: the local path needs regions (or set use_local: false)")
        self.attention = RelevanceModulatedAttention(
            self.hidden_size, self.image_dim, config.attention_heads, config.relevance_modulation
        )
        width = 2 * (int(config.use_global) + 2 * int(config.use_local))  # eq. 7: 6 d_t with both paths
        self.classifier = nn.Linear(width * self.hidden_size, len(labels))

    def classify(
        self, hidden: torch.Tensor, markers: torch.Tensor, posts: PostRegions
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
        config = self.model_config
        batch, slots, k = posts.region_mask.shape
        text_parts, image_parts = [], []
        relevance = region_relevance = None
        if config.use_global:
            cls = hidden[:, :1]  # H_[CLS], global text
            out = self.attention(cls, posts.images, posts.image_mask)  # C, eq. 2-6
            text_parts.append(cls)
            image_parts.append(out.context)
            relevance = out.relevance[:, 0] if out.relevance is not None else None  # R_global [B, M]
        if config.use_local:
            regions = posts.regions.reshape(batch, slots * k, -1)  # O = (o_1 .. o_{m*k})
            out = self.attention(markers, regions, posts.region_mask.reshape(batch, slots * k))  # U, eq. 2-6
            text_parts.append(markers)  # [H_<s>; H_<o>], local text
            image_parts.append(out.context)
            if out.relevance is not None:
                region_relevance = out.relevance.reshape(batch, 2, slots, k)
                if relevance is None:  # w/o global: an image's relevance is that of its best region
                    relevance = region_relevance.amax(dim=(1, 3))
        representation = torch.cat(text_parts + image_parts, dim=1).flatten(1)  # eq. 7 order
        logits = self.classifier(self.dropout(representation))
        return logits, {"relevance": relevance, "region_relevance": region_relevance}
