"""What UMT and MAF share: the BERT-CRF tagger around a vision encoder read as a grid of region
vectors (:class:`ImageGridTagger`; UMT's relation classifier reads the same grid).

The image inputs are read as the grid of :class:`~mmie.models.image_model.ImageGridMixin`: the
frozen vision encoder's grid pooled to ``region_grid^2`` regions (feature cache), or pixels encoded
by the model's own encoder. A post without an image gets an all-zero grid (the originals substitute
a fixed stock picture), and its visual branch is switched off in the fusion by each model (``present``).

The batch is read here (:meth:`ImageGridTagger.forward`); each model's :meth:`~ImageGridTagger.tag`
holds its method, from the text's sub-word vectors and the region grid to the CRF's emissions and loss.

The text-only switch (``use_images: false``): no vision encoder, no image layers, and the batch is a text
tagger's; each model's :meth:`~ImageGridTagger.tag_text` holds what its method is without the image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mmie.models.base import TokenClassificationOutput
from mmie.models.image_model import ImageGridMixin
from mmie.models.text.bert_crf import BertCrfTagger
from mmie.models.umt.configuration import ImageGridConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder


class ImageGridTagger(ImageGridMixin, BertCrfTagger):
    """Base of UMT and MAF: the text encoder, the CRF and a vision encoder read as a region grid."""

    model_config: ImageGridConfig

    def __init__(
        self,
        config: ImageGridConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder | None = None,  # None with the text-only switch
    ) -> None:
        super().__init__(config, labels, text_encoder)
        self.attach_vision_encoder(vision_encoder)

    def tag(
        self,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        grid: torch.Tensor,
        present: torch.Tensor,
        labels: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The model's method: sub-words ``text [B, n, d]`` (``text_mask [B, n]``) and regions ``grid
        [B, R, D]`` -> the CRF's emissions ``[B, w, L]`` and, with ``labels``, the loss."""
        raise NotImplementedError

    def tag_text(
        self,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        labels: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The model's method without the image (``use_images: false``): emissions and, with labels, the loss."""
        raise NotImplementedError

    # Takes the batch of its own processor, which adds the image inputs to the text tagger's.
    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        image_mask: torch.Tensor | None = None,  # None: the text-only switch's batch
        image_features: torch.Tensor | None = None,  # the global vectors: unused, both models read the grid
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> TokenClassificationOutput:
        text = self.dropout(
            self.encode_text(input_ids, attention_mask, token_type_ids)
        )  # BERT(x), dropout as the codes
        if self.uses_images:
            if image_mask is None:
                raise ValueError(f"{type(self).__name__} reads images: its batch needs image_mask")
            grid, present = self.image_grid(image_mask, region_features, pixel_values)
            emissions, loss = self.tag(text, attention_mask.bool(), word_starts, word_mask, grid, present, labels)
        else:  # the text-only switch: images are never read, even when given
            emissions, loss = self.tag_text(text, attention_mask.bool(), word_starts, word_mask, labels)
        predictions = None if self.training else self.decode(emissions, word_mask)
        return TokenClassificationOutput(loss=loss, logits=emissions, predictions=predictions)
