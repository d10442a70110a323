"""AdaCAN-CNN-BiLSTM-CRF: adaptive co-attention network for NER in tweets (Zhang et al., AAAI 2018).

The "AdaCAN-CNN-BiLSTM-CRF" row of the MNER-MI paper's Table 3 (shared/papers/001_…, sec. 5.1):
CNN-BiLSTM-CRF (Ma & Hovy 2016, ``bilstm_crf.py``) whose word states meet the post's image in the
adaptive co-attention network before the CRF. Numbers (A1)-(A7) are this file's (the paper is not in
shared/papers); each line names the paper's module.

    h_t = BiLSTM([w_t ; r_t])                       CNN-BiLSTM-CRF's word states [B, n, d], d = 2 x hidden  (A1)
    v_i = tanh(W_I v~_i + b_I)                      the first image's regions projected to d [B, R, d]    (A2)
  Word-guided visual attention (each word queries the regions):
    z_ti = tanh(W_v v_i + W_h h_t + b_h);  alpha_t = softmax_i(w_alpha^T z_ti)                              (A3)
    v^_t = sum_i alpha_ti v_i                       the word's visual context [B, n, d]
  Image-guided textual attention (the word's visual context queries the words):
    z'_tj = tanh(W_x h_j + W_x' v^_t + b_x');  beta_t = softmax_j(w_beta^T z'_tj) over the post's words    (A4)
    h^_t = sum_j beta_tj h_j                        the word's textual context [B, n, d]
  Gated multimodal fusion:
    hv_t = tanh(W_1 v^_t + b_1);  hh_t = tanh(W_2 h^_t + b_2);  g_t = sigmoid(W_g [hv_t ; hh_t])         (A5)
    m_t = g_t * hv_t + (1 - g_t) * hh_t             the multimodal vector [B, n, k]
  Filtration gate (the text is kept whole, the multimodal part filtered):
    s_t = sigmoid(W_s h_t + W_s' m_t + b_s);  u_t = s_t * tanh(W_m m_t + b_m)                              (A6)
    P_t = W_o [h_t ; u_t] + b_o;  CRF as CNN-BiLSTM-CRF's                                                  (A7)

Every attention is SAN's additive form with the papers' (+) read as a broadcast sum
(layers/additive_attention.py). Read as a concatenation (the letter of the paper's shapes, 2k, and
what the authors' Keras code, github.com/jinlanfu/NERmultimodal, computes), the query's share of the
score is the same for every key, and the softmax forgets the query: no word would guide the visual
attention, no image the textual one. The widths k of the attentions, of m_t and u_t are
``attention_dim`` (200, the code's). The gates are vectors (one value per unit, as the gated
multimodal unit the fusion follows); the code's are scalars (Dense(1)). The filtration gate's (+)
is a sum as well (the code sums too). W_o [h ; u] goes straight to the tag scores (the code's last
Dense before its CRF); the paper calls it m^_t.

Deviations: the code stacks a word BiLSTM, a 3-layer character CNN and a second BiLSTM; here the
row's text model is CNN-BiLSTM-CRF's (Ma & Hovy, as the MNER-MI paper's row name says). Any vision
encoder's grid pooled to ``region_grid^2`` regions stands for VGG-16's 7 x 7 map. A post without an
image attends nowhere (alpha = 0, so v^ = 0) and its filtered part u_t is zeroed: it is tagged from
h_t alone, as the text model. Attention over padding words is masked (the code attends to them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import word_image_ner_processor
from mmie.models.bilstm.bilstm_crf import CnnBilstmCrfTagger
from mmie.models.bilstm.configuration import AdacanCnnBilstmCrfConfig
from mmie.models.bilstm.image_bilstm import ImageBilstmTagger
from mmie.models.layers.additive_attention import AdditiveAttention
from mmie.models.registry import register_model

if TYPE_CHECKING:
    from mmie.encoders.vision import VisionEncoder


@register_model("adacan_cnn_bilstm_crf", config=AdacanCnnBilstmCrfConfig, processor=word_image_ner_processor)
class AdacanCnnBilstmCrfTagger(ImageBilstmTagger, CnnBilstmCrfTagger):
    """AdaCAN-CNN-BiLSTM-CRF NER: CNN-BiLSTM-CRF with co-attention both ways, gated fusion and a filtration gate."""

    model_config: AdacanCnnBilstmCrfConfig

    def __init__(self, config: AdacanCnnBilstmCrfConfig, labels: list[str], vision_encoder: VisionEncoder) -> None:
        super().__init__(config, labels, vision_encoder)
        d, k = 2 * config.hidden_size, config.attention_dim
        self.image_projection = nn.Linear(self.image_dim, d)  # W_I, b_I: A2
        self.visual_attention = AdditiveAttention(d, d, k)  # W_h, W_v, w_alpha: A3
        self.textual_attention = AdditiveAttention(d, d, k)  # W_x', W_x, w_beta: A4
        self.fusion_visual = nn.Linear(d, k)  # W_1: A5
        self.fusion_textual = nn.Linear(d, k)  # W_2
        self.fusion_gate = nn.Linear(2 * k, k, bias=False)  # W_g
        self.filtration_text = nn.Linear(d, k, bias=False)  # W_s: A6
        self.filtration_fused = nn.Linear(k, k)  # W_s', b_s
        self.filtration_projection = nn.Linear(k, k)  # W_m, b_m
        self.classifier = nn.Linear(d + k, len(labels))  # W_o over [h ; u]: A7

    def co_attention(
        self, hidden: torch.Tensor, word_mask: torch.Tensor, regions: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(A3-A4) ``h [B, n, d]``, projected regions ``v [B, R, d]`` -> ``(v^ [B, n, d], h^ [B, n, d],
        alpha [B, n, R], beta [B, n, n])``: each word's visual context, then the words its visual
        context points at."""
        region_mask = present[:, None].expand(-1, regions.size(1))  # [B, R]: no image, no region
        alpha = self.visual_attention(hidden, regions, region_mask)  # [B, n, R]
        visual = alpha @ regions  # v^ [B, n, d]
        beta = self.textual_attention(visual, hidden, word_mask)  # [B, n, n]: query word t, key word j
        textual = beta @ hidden  # h^ [B, n, d]
        return visual, textual, alpha, beta

    def fusion(self, visual: torch.Tensor, textual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(A5) gated multimodal fusion -> ``(m [B, n, k], g [B, n, k])``."""
        image, text = torch.tanh(self.fusion_visual(visual)), torch.tanh(self.fusion_textual(textual))
        gate = torch.sigmoid(self.fusion_gate(torch.cat([image, text], dim=-1)))  # g_t
        return gate * image + (1 - gate) * text, gate

    def filtration(self, hidden: torch.Tensor, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(A6) filtration gate -> ``(u [B, n, k], s [B, n, k])``."""
        gate = torch.sigmoid(self.filtration_text(hidden) + self.filtration_fused(fused))  # s_t
        return gate * torch.tanh(self.filtration_projection(fused)), gate

    def fuse(
        self, hidden: torch.Tensor, word_mask: torch.Tensor, grid: torch.Tensor, present: torch.Tensor
    ) -> torch.Tensor:
        regions = torch.tanh(self.image_projection(grid))  # v [B, R, d], A2
        visual, textual, _, _ = self.co_attention(hidden, word_mask, regions, present)  # A3-A4
        fused, _ = self.fusion(visual, textual)  # m, A5
        filtered, _ = self.filtration(hidden, fused)  # u, A6
        filtered = filtered * present[:, None, None].to(filtered.dtype)  # no image: the text alone
        return self.classifier(torch.cat([hidden, filtered], dim=-1))  # A7
