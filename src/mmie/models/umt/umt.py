"""UMT: Unified Multimodal Transformer with auxiliary entity span detection (Yu et al., ACL 2020), and UMT-MI.

The post's text goes through BERT; its image is read as a grid of region vectors (ResNet-152's 7 x 7 in
the paper, any vision encoder pooled to ``region_grid^2`` here). Numbers (U1)-(U10) are this file's:
the paper is not in shared/papers, so its own equation numbers are not quoted; each line names its section.

    T = BERT(x)                            sub-word vectors [B, n, d]                      (U1, sec. 3.1)
    V = W_u U,  V' = W_u' U                two projections of the regions U to d           (U2, sec. 3.1)
  Auxiliary entity span detection (ESD, sec. 3.3):
    T_s = SelfAttn_s(T);   z_s = W_s T_s    span emissions over {O, B, I}                  (U3)
    loss_ESD = -log p_CRF_s(span labels | z_s)   span labels: each word's B / I / O        (U4)
  Multimodal interaction module (MMI, sec. 3.2; interaction.py, shared with UMT-RE), CMT = cross-modal
  Transformer layer (layers/cross_attention.py):
    T_m = SelfAttn_m(T)                                                                    (U5)
    A = CMT(T_m, V)                         word-aware visual representation [B, n, d]     (U6)
    Q = CMT(V', T_m);  H = CMT(T_m, Q)      image-aware word representation [B, n, d]     (U7)
    g = sigmoid(W_g [H; A]);  B = g * A     visual gate                                    (U8)
  Unified decoding (sec. 3.3):
    z_m = W_m [H; B];   z = alpha z_m + (1 - alpha) z_s M     M: the conversion matrix     (U9)
    loss = -log p_CRF(y | z) + beta loss_ESD          alpha = beta = 0.5 (authors' code)   (U10)

The conversion matrix M [3, L] maps the span scores onto the main labels: O -> O, B -> every B-X
and I -> every I-X with weight 1/K for K entity types (0.25 for the four of Twitter, as the code's
fixed ``trans_matrix``; not learnt). The span labels are derived from the main labels, never read.

Text-only switch (``use_images: false``): the multimodal interaction module (U2, U5-U8) is not built and
no vision encoder is loaded; the auxiliary span task stays. The main emissions are BERT-CRF's over T:

    z_m = W_m T;   z = alpha z_m + (1 - alpha) z_s M;   loss as (U10)                       (U9')

i.e. BERT-CRF with UMT's entity span detection (the UMT paper's text-only multi-task row, MT-BERT-CRF,
is this idea; its exact layers are not in shared/papers, so W_m reads T directly, width d).

UMT-MI (MNER-MI paper, sec. 5.1) is this model fed one picture with all of the post's images
stitched 2 x 2 (its config's ``image_layout``). Deviations: the layers run over sub-words and the
CRF over each word's first sub-word (the code labels the rest ``X``); a post without an image reads
a zero grid and its gated visual part B is zeroed (the code substitutes a stock picture).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import image_ner_processor
from mmie.models.base import gather_positions
from mmie.models.layers.crf import ConstrainedCRF
from mmie.models.layers.cross_attention import CrossModalLayer
from mmie.models.registry import register_model
from mmie.models.umt.configuration import UmtConfig, UmtMiConfig
from mmie.models.umt.image_grid import ImageGridTagger
from mmie.models.umt.interaction import MultimodalInteractionMixin

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder

SPAN_LABELS = ("O", "B", "I")


def span_label_ids(labels: list[str]) -> torch.Tensor:
    """Each main label's span label id ``[L]``: B-X -> B, I-X -> I, anything else -> O."""
    return torch.tensor([SPAN_LABELS.index(label[0]) if label[:2] in ("B-", "I-") else 0 for label in labels])


def conversion_matrix(labels: list[str]) -> torch.Tensor:
    """M ``[3, L]`` of (U9): O -> the non-entity labels, B / I -> each B-X / I-X with weight 1 / K."""
    span_of = span_label_ids(labels)
    matrix = torch.zeros(len(SPAN_LABELS), len(labels))
    for span in range(len(SPAN_LABELS)):
        targets = span_of == span
        matrix[span, targets] = 1.0 if span == 0 else 1.0 / max(int(targets.sum()), 1)
    return matrix


@register_model("umt", config=UmtConfig, processor=image_ner_processor)
class UmtTagger(MultimodalInteractionMixin, ImageGridTagger):
    """UMT: cross-modal attention both ways, a visual gate and an auxiliary entity-span CRF (first image)."""

    model_config: UmtConfig
    span_of_label: torch.Tensor  # buffers, from the label set
    conversion: torch.Tensor

    def __init__(
        self,
        config: UmtConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder | None = None,  # None with the text-only switch
    ) -> None:
        super().__init__(config, labels, text_encoder, vision_encoder)
        d = self.hidden_size
        if self.uses_images:
            self.build_interaction(text_encoder.config, self.image_dim)  # U2, U5-U8 (interaction.py)
        self.span_attention = CrossModalLayer.like_encoder(text_encoder.config)  # U3
        self.span_classifier = nn.Linear(d, len(SPAN_LABELS))  # W_s, U3
        self.span_crf = ConstrainedCRF(list(SPAN_LABELS))  # U4
        self.classifier = nn.Linear((2 if self.uses_images else 1) * d, len(labels))  # W_m, U9 (U9': d)
        # Not persistent: both follow from the label set, which the model folder saves.
        self.register_buffer("span_of_label", span_label_ids(self.labels), persistent=False)
        self.register_buffer("conversion", conversion_matrix(self.labels), persistent=False)

    def span_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """The auxiliary task's labels ``[B, w]`` (0/1/2 = O/B/I) from the main labels; padding stays -100."""
        return torch.where(labels >= 0, self.span_of_label[labels.clamp(min=0)], labels)

    def tag(
        self,
        text: torch.Tensor,  # T [B, n, d], U1
        text_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        grid: torch.Tensor,  # U [B, R, D]
        present: torch.Tensor,
        labels: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        span_emissions = self.span_emissions(text, text_mask, word_starts)  # z_s, U3

        image_aware, visual = self.interact(text, text_mask, grid, present)  # H, B: U5-U8

        fused = gather_positions(torch.cat([image_aware, visual], dim=-1), word_starts)  # [H; B] at each word
        return self.unified_decoding(self.classifier(fused), span_emissions, word_mask, labels)

    def tag_text(
        self,
        text: torch.Tensor,  # T [B, n, d], U1
        text_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        labels: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        span_emissions = self.span_emissions(text, text_mask, word_starts)  # z_s, U3
        main = self.classifier(gather_positions(text, word_starts))  # z_m = W_m T, U9'
        return self.unified_decoding(main, span_emissions, word_mask, labels)

    def span_emissions(self, text: torch.Tensor, text_mask: torch.Tensor, word_starts: torch.Tensor) -> torch.Tensor:
        """z_s ``[B, w, 3]`` (U3): the span task's own self-attention layer, scored at each word."""
        span_hidden = self.span_attention(text, text, text_mask)  # T_s
        return self.span_classifier(gather_positions(span_hidden, word_starts))

    def unified_decoding(
        self,
        main: torch.Tensor,  # z_m [B, w, L]
        span_emissions: torch.Tensor,  # z_s [B, w, 3]
        word_mask: torch.Tensor,
        labels: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        alpha = self.model_config.span_mix
        emissions = alpha * main + (1 - alpha) * span_emissions @ self.conversion  # z, U9
        loss = None
        if labels is not None:  # U10
            span_loss = self.span_crf(span_emissions, self.span_labels(labels), word_mask)
            loss = self.crf(emissions, labels, word_mask) + self.model_config.span_weight * span_loss
        return emissions, loss


@register_model("umt_mi", config=UmtMiConfig, processor=image_ner_processor)
class UmtMiTagger(UmtTagger):
    """UMT-MI: UMT fed all of the post's images stitched 2 x 2 into one picture (MNER-MI paper, sec. 5.1).

    The model is UMT's; only its config's ``image_layout`` (stitched) differs."""
