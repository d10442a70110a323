"""MAF: a general Matching and Alignment Framework for multimodal NER (Xu et al., WSDM 2022).

Built on UMT's code: BERT over the text, the image as a grid of region vectors, one cross-modal
Transformer layer (CMT, layers/cross_attention.py), a CRF. Numbers (M1)-(M9) are this file's (the
paper is not in shared/papers); the lines follow the paper's modules and the authors' code.

    T = BERT(x) [B, n, d];  t = T_[CLS];  V = W_v U;  u = mean of the regions U            (M1)
  Cross-modal matching (does this image belong to this text?):
    negatives: in a training batch, the last share of the posts with an image swap images
    pairwise (front half <-> back half), so their text meets another post's image          (M2)
    C = CMT(T, V)                          text attends over the (possibly swapped) image   (M3)
    p = softmax(W_c mean_n [T; C])[matched]   matching probability of the pair              (M4)
    loss_match = CE(p, 1 for own images, 0 for swapped ones)                                (M5)
  Cross-modal alignment (contrastive, own pairs only):
    t' = MLP_t(t),  u' = MLP_u(u),  s_ij = cos(t'_i, u'_j) / tau                            (M6)
    loss_align = lambda_c InfoNCE(text -> images) + (1 - lambda_c) InfoNCE(image -> texts)   (M7)
  Gated fusion and decoding:
    C' = p C;   g = sigmoid(W_t T + W_i C');   z = W [T; g * C']                             (M8)
    loss = lambda -log p_CRF(y | z) + (1 - lambda)(loss_match + loss_align)                  (M9)

tau = 0.179, lambda_c = 0.7, lambda = 0.62 (the authors' run script). The swapped posts keep their
swapped image in the NER path too, as in the code: the matching probability must learn to shut out
an image that does not belong. Outside training nothing is swapped.

Text-only switch (``use_images: false``): matching, alignment and the gate all need an image, so none is
built (nor a vision encoder); what is left is BERT-CRF, z = W T, loss = -log p_CRF(y | z) (unweighted:
lambda only balanced it against the image losses).

Deviations: the code's matching classifier reads the flattened states of a fixed 128-token input
(Linear(2d x 128, 2)); here their mean over the real sub-words (Linear(2d, 2)), so any length works.
The code takes 16 negatives from batches of 64; here ``negative_fraction`` (0.25) of the posts with an
image, so small batches get them too, and the images themselves are swapped before the cross-modal
layer (the paper's description; the code swaps the layer's outputs). t is the [CLS] vector, not
BERT's pooler (not every encoder has one). Posts without an image take no part in matching or
alignment, and their visual part is zeroed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import image_ner_processor
from mmie.models.base import gather_positions
from mmie.models.layers.cross_attention import CrossModalLayer
from mmie.models.registry import register_model
from mmie.models.umt.configuration import MafConfig
from mmie.models.umt.image_grid import ImageGridTagger

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder


def swap_images(present: torch.Tensor, fraction: float) -> torch.Tensor:
    """(M2) Whose image each post reads ``[B]``: itself, except the last ``fraction`` of the posts with
    an image, paired front half <-> back half, which read each other's."""
    order = torch.arange(len(present), device=present.device)
    with_image = order[present]
    pairs = int(len(with_image) * fraction) // 2
    if pairs:
        chosen = with_image[len(with_image) - 2 * pairs :]
        front, back = chosen[:pairs], chosen[pairs:]
        order[front], order[back] = back, front
    return order


def info_nce(scores: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Per-row -log softmax of the diagonal over the real columns ``[B]`` (rows of absent posts: 0)."""
    masked = scores.masked_fill(~present[None, :], torch.finfo(scores.dtype).min)
    return -masked.log_softmax(dim=-1).diagonal() * present.to(scores.dtype)


def mlp(in_dim: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, dim), nn.ReLU(), nn.Linear(dim, dim))


@register_model("maf", config=MafConfig, processor=image_ner_processor)
class MafTagger(ImageGridTagger):
    """MAF: text-image matching with in-batch negatives, contrastive alignment, matching-gated visual features."""

    model_config: MafConfig

    def __init__(
        self,
        config: MafConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder | None = None,  # None with the text-only switch
    ) -> None:
        super().__init__(config, labels, text_encoder, vision_encoder)
        d = self.hidden_size
        if not self.uses_images:  # the text-only switch: BERT-CRF's own classifier W [d, L] over T
            return
        self.image_projection = nn.Linear(self.image_dim, d)  # W_v, M1
        self.text_to_image = CrossModalLayer.like_encoder(text_encoder.config)  # M3
        self.matcher = nn.Linear(2 * d, 2)  # W_c, M4
        self.text_alignment = mlp(d, d)  # MLP_t, M6
        self.image_alignment = mlp(self.image_dim, d)  # MLP_u, M6
        self.gate_text = nn.Linear(d, d)  # W_t, M8
        self.gate_image = nn.Linear(d, d)  # W_i, M8
        self.classifier = nn.Linear(2 * d, len(labels))  # W, M8

    def alignment_loss(self, text: torch.Tensor, image: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(M6-M7) over the posts with an image, their own pairs; ``text`` t [B, d], ``image`` u [B, D]."""
        t = nn.functional.normalize(self.text_alignment(text), dim=-1)
        u = nn.functional.normalize(self.image_alignment(image), dim=-1)
        scores = t @ u.T / self.model_config.temperature  # s_ij [B, B]
        weight = self.model_config.text_to_image_weight
        losses = weight * info_nce(scores, present) + (1 - weight) * info_nce(scores.T, present)
        return losses.sum() / present.sum().clamp(min=1)

    def tag(
        self,
        text: torch.Tensor,  # T [B, n, d], M1
        text_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        grid: torch.Tensor,  # U [B, R, D]
        present: torch.Tensor,
        labels: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        order = torch.arange(len(present), device=present.device)
        if labels is not None and self.training:  # M2: negatives only when training
            order = swap_images(present, self.model_config.negative_fraction)
        cross = self.text_to_image(text, self.image_projection(grid[order]))  # C, M3

        token_mask = text_mask.unsqueeze(-1).to(text.dtype)
        pooled = (torch.cat([text, cross], dim=-1) * token_mask).sum(1) / token_mask.sum(1).clamp(min=1)
        match_logits = self.matcher(pooled)  # M4
        matched = match_logits.softmax(dim=-1)[:, 1]  # p
        scaled = matched[:, None, None] * cross * present[:, None, None].to(cross.dtype)  # C'
        gate = torch.sigmoid(self.gate_text(text) + self.gate_image(scaled))  # g, M8
        fused = gather_positions(torch.cat([text, gate * scaled], dim=-1), word_starts)
        emissions = self.classifier(fused)  # z, M8

        loss = None
        if labels is not None:
            own = (order == torch.arange(len(order), device=order.device)).long()
            weights = present.to(text.dtype)  # posts with an image only
            match_loss = (nn.functional.cross_entropy(match_logits, own, reduction="none") * weights).sum()
            match_loss = match_loss / weights.sum().clamp(min=1)  # M5
            align_loss = self.alignment_loss(text[:, 0], grid.mean(dim=1), present)  # M7, own pairs
            lam = self.model_config.ner_weight
            loss = lam * self.crf(emissions, labels, word_mask) + (1 - lam) * (match_loss + align_loss)  # M9
        return emissions, loss

    def tag_text(
        self,
        text: torch.Tensor,  # T [B, n, d], M1
        text_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        labels: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        emissions = self.classifier(gather_positions(text, word_starts))  # z = W T (M8 without C')
        return emissions, self.crf(emissions, labels, word_mask) if labels is not None else None
