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

import torch

from mmie.features.processor import image_ner_processor
from mmie.models.registry import register_model
from mmie.models.tpm_mi.configuration import PrefixAllImagesConfig, PrefixFirstImageConfig, StitchedConfig
from mmie.models.tpm_mi.prefix_tagger import PostImages, VisualPrefixTagger


@register_model("bert_crf_first_image", config=PrefixFirstImageConfig, processor=image_ner_processor)
class FirstImagePrefixTagger(VisualPrefixTagger):
    """BERT-CRF + visual prefix from the first image's pooled regions (HVPNeT-style single-image baseline)."""

    def visual_tokens(self, images: PostImages) -> tuple[torch.Tensor, torch.Tensor]:
        present = images.mask[:, :1]  # [B, 1]: does the post have its (first) image
        if images.region_features is None:
            return images.global_features[:, :1], present  # [B, 1, D]
        regions = images.region_features[:, 0]  # [B, R, D]: the pooled regions of image 1
        return regions, present.expand(-1, regions.shape[1])


@register_model("bert_crf_stitched", config=StitchedConfig, processor=image_ner_processor)
class StitchedPrefixTagger(FirstImagePrefixTagger):
    """BERT-CRF + visual prefix from all images stitched into one 2 x 2 picture (the "-MI" stitched baseline).

    The model is the first-image row's; only its config's ``image_layout`` (stitched) differs."""


@register_model("prefix_all_images", config=PrefixAllImagesConfig, processor=image_ner_processor)
class AllImagesPrefixTagger(VisualPrefixTagger):
    """BERT-CRF + one prefix token per image, without temporal positions or encoder (TPM-MI ablation)."""

    def visual_tokens(self, images: PostImages) -> tuple[torch.Tensor, torch.Tensor]:
        return images.global_features, images.mask  # U = V: [B, M, D]
