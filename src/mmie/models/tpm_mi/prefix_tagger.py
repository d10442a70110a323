"""What the visual-prefix models share: a text encoder whose every self-attention layer also attends to
tokens made from the post's images (HVPNeT-style prefix, :mod:`mmie.models.layers.visual_prefix`);
:class:`VisualPrefixMixin` is that visual side (also TPM-MI's relation classifier), :class:`VisualPrefixTagger`
the BERT-CRF tagger around it.

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
from typing import TYPE_CHECKING

import torch

from mmie.encoders.vision import VisionEncoder, pool_regions, scatter_to_slots
from mmie.models.base import TokenClassificationOutput, gather_positions
from mmie.models.image_model import ImageModelMixin
from mmie.models.layers.visual_prefix import Prefix, VisualPrefix, encode_with_prefix, require_prefix_support
from mmie.models.text.bert_crf import BertCrfTagger
from mmie.models.tpm_mi.configuration import PrefixTaggerConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class PostImages:
    """The images of B posts in M slots: ``global_features [B, M, D]``, ``region_features [B, M, R, D]`` or None."""

    global_features: torch.Tensor
    region_features: torch.Tensor | None
    mask: torch.Tensor  # [B, M] bool


class VisualPrefixMixin(ImageModelMixin):
    """The visual side of the visual-prefix models, taggers and relation classifiers alike (a mixin
    before the text model's base class); subclasses say which visual tokens become the prefix."""

    model_config: PrefixTaggerConfig
    visual_prefix: VisualPrefix

    def build_visual_prefix(
        self, config: PrefixTaggerConfig, text_encoder: PreTrainedModel, vision_encoder: VisionEncoder
    ) -> None:
        self.vision_encoder = vision_encoder
        require_prefix_support(text_encoder)
        self.visual_prefix = VisualPrefix(self.visual_token_dim(), text_encoder.config, config.prefix_dropout)

    # ---------------------------------------------------------------- what a subclass provides

    def visual_tokens(self, images: PostImages) -> tuple[torch.Tensor, torch.Tensor]:
        """The prefix's visual tokens ``[B, P, D]`` and their mask ``[B, P]``."""
        raise NotImplementedError

    def visual_token_dim(self) -> int:
        """D of :meth:`visual_tokens` (read from the config and ``image_dim`` only: called while building)."""
        return self.image_dim

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
        cells = self.model_config.region_cells
        if pixel_values is not None and not mask.any():  # no real image in the batch: nothing to encode
            image_features = pixel_values.new_zeros(*mask.shape, self.image_dim)
            region_features = pixel_values.new_zeros(*mask.shape, cells * cells, self.image_dim) if cells else None
        elif pixel_values is not None:
            # [B, M, 3, H, W] -> the real images only [N, 3, H, W]: padded slots cost no compute
            out = self.encode_images(pixel_values[mask])
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

    def image_prefix(
        self,
        image_mask: torch.Tensor,
        image_features: torch.Tensor | None = None,
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
    ) -> Prefix:
        """The post's images -> visual tokens -> per-layer prefix keys and values (eq. 1 and 3)."""
        images = self.post_images(image_mask, image_features, region_features, pixel_values)
        tokens, token_mask = self.visual_tokens(images)
        return self.visual_prefix(tokens, token_mask)  # eq. 1 and 3, every layer


class VisualPrefixTagger(VisualPrefixMixin, BertCrfTagger):
    """Base of the visual-prefix NER models; subclasses say which visual tokens become the prefix."""

    model_config: PrefixTaggerConfig

    def __init__(
        self,
        config: PrefixTaggerConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder,
    ) -> None:
        super().__init__(config, labels, text_encoder)
        self.build_visual_prefix(config, text_encoder, vision_encoder)

    # Takes the batch of its own processor, which adds the image inputs to the text tagger's.
    def forward(  # type: ignore[override]
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
        prefix = self.image_prefix(image_mask, image_features, region_features, pixel_values)  # eq. 1 and 3
        hidden = encode_with_prefix(self.text_encoder, input_ids, attention_mask, prefix, token_type_ids)
        # H^L at each word's first sub-word. transformers types every ModelOutput field Optional; the encoder sets it.
        words = gather_positions(hidden.last_hidden_state, word_starts)  # type: ignore[arg-type]
        emissions = self.classifier(self.dropout(words))
        loss = self.crf(emissions, labels, word_mask) if labels is not None else None  # eq. 7
        predictions = None if self.training else self.decode(emissions, word_mask)
        return TokenClassificationOutput(loss=loss, logits=emissions, predictions=predictions)
