"""The visual-prefix baselines of the MNER-MI paper's Table 3, built from TPM-MI's pieces.

* ``bert_crf_first_image`` -- the "Text + Single Image" prompt row (HVPNeT, Chen et al. 2022): BERT-CRF
  with a visual prefix made from the post's FIRST image only, as every single-image MNER model does.
  HVPNeT's prompt is a pooled feature map of the image, so the prefix tokens are the vision encoder's
  region features of image 1, average-pooled to a ``region_grid x region_grid`` grid (4 tokens by
  default), each projected per layer (eq. 1, 3). ``first_image_tokens: global`` uses the one global
  vector instead. HVPNeT's object crops and its dynamic gates are left out.
* ``bert_crf_stitched`` -- the "-MI" stitched row (VisualPT-MoE-MI, UMT-MI, ...): the same model fed one
  picture, all the post's images stitched on a 2 x 2 grid (:func:`mmie.data.stitch.stitch_images`).
* ``prefix_all_images`` -- the ablation of TPM-MI without its temporal part: every image's global
  vector projected straight to one prefix token per image (no temporal positions, no Transformer
  encoder over the images). Image order is then invisible to the model.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from mmie.data.schema import MAX_IMAGES
from mmie.models.prefix_tagger import PostImages, PrefixTaggerConfig, VisualPrefixTagger
from mmie.models.registry import register_model


class FirstImageConfig(PrefixTaggerConfig):
    name: str = "bert_crf_first_image"
    first_image_tokens: Literal["regions", "global"] = Field(
        "regions", description="prefix tokens: pooled region features of the image, or its global vector"
    )
    region_grid: int = Field(2, ge=1, le=16, description="regions are pooled to region_grid x region_grid tokens")


class StitchedConfig(FirstImageConfig):
    name: str = "bert_crf_stitched"


class AllImagesConfig(PrefixTaggerConfig):
    name: str = "prefix_all_images"
    max_images: int = Field(MAX_IMAGES, ge=1, le=MAX_IMAGES, description="m: image slots per post")


@register_model("bert_crf_first_image")
class FirstImagePrefixTagger(VisualPrefixTagger):
    """BERT-CRF + visual prefix from the first image's pooled regions (HVPNeT-style single-image baseline)."""

    task = "ner"
    config_class = FirstImageConfig
    image_layout = "first"

    @classmethod
    def region_cells(cls, config: FirstImageConfig) -> int:
        return config.region_grid if config.first_image_tokens == "regions" else 0

    def visual_tokens(self, images: PostImages) -> tuple[torch.Tensor, torch.Tensor]:
        present = images.mask[:, :1]  # [B, 1]: does the post have its (first) image
        if images.region_features is None:
            return images.global_features[:, :1], present  # [B, 1, D]
        regions = images.region_features[:, 0]  # [B, R, D]: the pooled regions of image 1
        return regions, present.expand(-1, regions.shape[1])


@register_model("bert_crf_stitched")
class StitchedPrefixTagger(FirstImagePrefixTagger):
    """BERT-CRF + visual prefix from all images stitched into one 2 x 2 picture (the "-MI" stitched baseline)."""

    config_class = StitchedConfig
    image_layout = "stitched"


@register_model("prefix_all_images")
class AllImagesPrefixTagger(VisualPrefixTagger):
    """BERT-CRF + one prefix token per image, without temporal positions or encoder (TPM-MI ablation)."""

    task = "ner"
    config_class = AllImagesConfig
    image_layout = "all"

    def visual_tokens(self, images: PostImages) -> tuple[torch.Tensor, torch.Tensor]:
        return images.global_features, images.mask  # U = V: [B, M, D]
