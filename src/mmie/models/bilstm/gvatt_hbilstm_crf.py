"""GVATT-HBiLSTM-CRF: visual attention for name tagging in multimodal social media (Lu et al., ACL 2018).

The "GVATT-HBiLSTM-CRF" row of the MNER-MI paper's Table 3 (shared/papers/001_…, sec. 5.1): HBiLSTM-CRF
(Lample et al. 2016, ``bilstm_crf.py``) whose word states are modulated by the part of the post's image
that the sentence points at. Numbers (G1)-(G7) are this file's: the paper is not in shared/papers and
no code of it is public; each line names the paper's section (3.2 visual features, 3.3 visual attention,
3.4 visual modulation gate).

    h_i = BiLSTM([w_i ; r_i])                      the HBiLSTM-CRF's word states [B, n, d], d = 2 x hidden  (G1)
    q   = [->h_n ; <-h_1]                          the sentence: the BiLSTM's two final states [B, d]     (G2)
    v_I = {v_r}, r = 1..R                          the first image's region grid [B, R, D] (sec. 3.2)
    z_r = tanh(W_I v_r + W_Q q + b_Q)              additive attention, q queries every region (sec. 3.3)  (G3)
    alpha = softmax_r(w_P^T z_r)                   weights over the R regions, summing to 1               (G4)
    v_c = sum_r alpha_r v_r                        the visual context of the sentence [B, D]              (G5)
    beta_w = sigmoid(W_w h_i + U_w v_c + b_w)      visual modulation gate (sec. 3.4), per word and unit   (G6)
    beta_v = sigmoid(W_v h_i + U_v v_c + b_v)
    m = tanh(W_m v_c + b_m);  w_m,i = beta_w * h_i + beta_v * m          the modulated word vector [B, n, d]
    P_i = W_o tanh(W_h w_m,i + b_h) + b_o;  CRF as HBiLSTM-CRF's (Lample et al. eq. 1)                     (G7)

Choices the paper's text leaves open, named: the sentence query q is the tagger's own BiLSTM read to
both ends (the paper: the sentence representation; no second encoder is added); the attention is
SAN's additive form with (+) as a broadcast sum (layers/additive_attention.py); its width k is
``attention_dim`` (100, Lample et al.'s LSTM width); the regions enter the attention, the gates and m
as the vision encoder gives them (no extra projection beyond W_I, U_w, U_v, W_m); the tagger's tanh
layer (Lample et al.'s tagger) reads w_m where it read h.

Deviations: any vision encoder's grid pooled to ``region_grid^2`` regions stands for ResNet-152's
7 x 7 map (``region_grid: 7``); a post without an image reads an all-zero grid, gets no attention
(alpha = 0, v_c = 0) and no visual term (w_m = beta_w * h, beta_w from h alone), where the original's
posts all have one; the first image only, as the paper (one image a post).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import word_image_ner_processor
from mmie.models.bilstm.bilstm_crf import HbilstmCrfTagger
from mmie.models.bilstm.configuration import GvattHbilstmCrfConfig
from mmie.models.bilstm.image_bilstm import ImageBilstmTagger
from mmie.models.layers.additive_attention import AdditiveAttention
from mmie.models.registry import register_model

if TYPE_CHECKING:
    from mmie.encoders.vision import VisionEncoder


def sentence_query(hidden: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
    """(G2) ``q = [->h_n ; <-h_1]`` ``[B, d]``: the forward half at each post's last word, the backward
    half at its first (the BiLSTM's final states in both directions)."""
    half = hidden.size(-1) // 2
    last = (word_mask.sum(1) - 1).clamp(min=0)  # [B]
    rows = torch.arange(hidden.size(0), device=hidden.device)
    return torch.cat([hidden[rows, last, :half], hidden[:, 0, half:]], dim=-1)


@register_model("gvatt_hbilstm_crf", config=GvattHbilstmCrfConfig, processor=word_image_ner_processor)
class GvattHbilstmCrfTagger(ImageBilstmTagger, HbilstmCrfTagger):
    """GVATT-HBiLSTM-CRF NER: HBiLSTM-CRF with sentence-guided visual attention and a visual modulation gate."""

    model_config: GvattHbilstmCrfConfig

    def __init__(self, config: GvattHbilstmCrfConfig, labels: list[str], vision_encoder: VisionEncoder) -> None:
        super().__init__(config, labels, vision_encoder)
        d, image_dim = 2 * config.hidden_size, self.image_dim
        self.visual_attention = AdditiveAttention(d, image_dim, config.attention_dim)  # W_Q, W_I, w_P: G3-G4
        self.word_gate_text = nn.Linear(d, d)  # W_w, b_w: G6
        self.word_gate_image = nn.Linear(image_dim, d, bias=False)  # U_w
        self.visual_gate_text = nn.Linear(d, d)  # W_v, b_v
        self.visual_gate_image = nn.Linear(image_dim, d, bias=False)  # U_v
        self.visual_projection = nn.Linear(image_dim, d)  # W_m, b_m

    def visual_context(
        self, query: torch.Tensor, grid: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(G3-G5) ``q [B, d]`` over the regions ``grid [B, R, D]`` -> ``(v_c [B, D], alpha [B, R])``;
        a post without an image (``present`` False) attends nowhere: alpha = 0, v_c = 0."""
        region_mask = present[:, None].expand(-1, grid.size(1))  # [B, R]
        alpha = self.visual_attention(query[:, None, :], grid, region_mask)[:, 0]  # [B, 1, R] -> [B, R]
        context = (alpha[:, :, None] * grid).sum(dim=1)  # [B, D]
        return context, alpha

    def modulate(
        self, hidden: torch.Tensor, context: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(G6) ``h [B, n, d]`` and ``v_c [B, D]`` -> ``(w_m [B, n, d], beta_w, beta_v)``, the gates in (0, 1)."""
        image = context[:, None, :]  # [B, 1, D]: one visual context for every word of the post
        beta_w = torch.sigmoid(self.word_gate_text(hidden) + self.word_gate_image(image))
        beta_v = torch.sigmoid(self.visual_gate_text(hidden) + self.visual_gate_image(image))
        visual = torch.tanh(self.visual_projection(image)) * present[:, None, None].to(hidden.dtype)  # m
        return beta_w * hidden + beta_v * visual, beta_w, beta_v

    def fuse(
        self, hidden: torch.Tensor, word_mask: torch.Tensor, grid: torch.Tensor, present: torch.Tensor
    ) -> torch.Tensor:
        context, _ = self.visual_context(sentence_query(hidden, word_mask), grid, present)  # G2-G5
        modulated, _, _ = self.modulate(hidden, context, present)  # G6
        return self.tag_scores(modulated)  # G7
