"""What GVATT-HBiLSTM-CRF and AdaCAN-CNN-BiLSTM-CRF share: a BiLSTM tagger that also reads the post's
first image as a grid of region vectors (:class:`~mmie.models.image_model.ImageGridMixin`).

The batch is read here (:meth:`ImageBilstmTagger.forward`): the word BiLSTM's states ``h``, the region
grid, then each model's :meth:`~ImageBilstmTagger.fuse` (its method, from ``h`` and the regions to the
CRF's emissions), the CRF's loss and Viterbi decoding as in the text-only taggers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mmie.models.base import TokenClassificationOutput
from mmie.models.bilstm.bilstm_crf import BilstmCrfTagger
from mmie.models.image_model import ImageGridMixin

if TYPE_CHECKING:
    from mmie.encoders.vision import VisionEncoder
    from mmie.models.bilstm.configuration import BilstmCrfConfig


class ImageBilstmTagger(ImageGridMixin, BilstmCrfTagger):
    """Base of the BiLSTM taggers with an image (``class GvattHbilstmCrfTagger(ImageBilstmTagger,
    HbilstmCrfTagger)``): the text tagger's parts, a vision encoder, a forward over both inputs."""

    def __init__(self, config: BilstmCrfConfig, labels: list[str], vision_encoder: VisionEncoder) -> None:
        super().__init__(config, labels)
        self.vision_encoder = vision_encoder

    def fuse(
        self, hidden: torch.Tensor, word_mask: torch.Tensor, grid: torch.Tensor, present: torch.Tensor
    ) -> torch.Tensor:
        """The model's method: word states ``h [B, n, 2 * hidden_size]`` and regions ``grid [B, R, D]``
        (``present [B]``: False = no image, an all-zero grid) -> the CRF's emissions ``[B, n, L]``."""
        raise NotImplementedError

    # Takes the batch of its own processor (word_image_ner_processor): the word inputs and the image's.
    def forward(  # type: ignore[override]
        self,
        word_ids: torch.Tensor,
        char_ids: torch.Tensor,
        word_mask: torch.Tensor,
        image_mask: torch.Tensor,
        image_features: torch.Tensor | None = None,  # the global vectors: unused, both models read the grid
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> TokenClassificationOutput:
        hidden = self.word_states(word_ids.long(), char_ids.long(), word_mask)  # h [B, n, 2 * hidden_size]
        grid, present = self.image_grid(image_mask, region_features, pixel_values)  # [B, R, D], [B]
        return self.crf_output(self.fuse(hidden, word_mask, grid, present), word_mask, labels)
