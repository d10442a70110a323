"""HVFormer (Liu et al., 2024) and HVFormer-MI (MRE-MI paper, sec. 5.1), for relation extraction.

HVFormer encodes the text with BERT and the image with a ViT whose sequence holds the whole image's
patches followed by the patches of its grounding and detector crops (each with its own position
embedding). After both encoders, the last text layer reads every level of the vision stream
(the authors' ``models/bert_vit_inter_base_model.py``, ``Vision2TextLayerWiseAgg``):

    H = BERT(T)                                   the last text hidden states        [B, T, d]
    V^0 .. V^L                                    the vision stream after each layer  [B, N, d]
    C^l = LN(softmax(H W_q (V^l W_k)^T / sqrt(d_h)) V^l W_v W_o)     cross-attention to level l
    experts, three of them over vision levels a = 0, b = middle, c = last, and the text alone:
        E_l = H + W_2^l act(W_1^l [H; C^l])     l in {a, b, c};      E_text = H
    w = softmax(W_r [H; C^a; C^b; C^c])         the router, one weight per expert and token
    H^ = w_text E_text + sum_l w_l E_l         replaces the last hidden state
    r = [H^_<s>; H^_<o>];  p(y) = softmax(W r + b)

HVFormer-MI (no public code; BASELINES.md): each real image of the post is its own vision sequence
(the image and its crops run through the vision layers apart from the other images'), and the
cross-attention reads the tokens of every image at once; padded image slots give no sequence.

Exact shortcut (as in FocalMRE's file): the cross-attention, the experts and the router act on each
text position on its own, and the head reads only the two start markers, so only those two rows of
H^ are computed.

Deviations, on purpose:

* mmie's vision encoders are frozen feature extractors: a vision token is the vector of the whole
  image or of one crop (:class:`~mmie.models.layers.image_tokens.ImageTokens`), not a patch, and the
  vision levels are those of ``vision_layers`` Transformer layers trained over these tokens (the
  reference reads CLIP ViT-B/32's layers 0, 6 and 12 over its patches). The reference detaches the
  vision levels (its ViT learns nothing from this head); trained layers must not be detached.
* One kind of crop (the region provider's); the reference adds 3 detector crops at 64 px.
* Padded images and missing crops are masked in the cross-attention (the reference has no padding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import image_relation_processor
from mmie.models.glra.image_relation import ImageRelationModel, ImageRelationOutput, PostRegions
from mmie.models.hvformer.configuration import HvformerConfig, HvformerMiConfig
from mmie.models.layers.image_tokens import ImageTokens
from mmie.models.layers.vision_layer import VisionLayer
from mmie.models.registry import register_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder

EXPERT_NAMES = ("text", "first level", "middle level", "last level")


@dataclass
class HvformerOutput(ImageRelationOutput):
    """``expert_weights [B, 2, 4]``: the router's weights at <s> and <o> over the text-only expert and
    the experts of the first, middle and last vision level (each row sums to 1)."""

    expert_weights: torch.Tensor | None = None


class CrossAttention(nn.Module):
    """C = LN(MultiHead(text queries, vision keys and values)), masked vision tokens never read."""

    def __init__(self, hidden_size: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden_size // heads
        self.query, self.key, self.value = (nn.Linear(hidden_size, hidden_size) for _ in range(3))
        self.out = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:2], self.heads, self.head_dim).transpose(1, 2)  # [B, L, d] -> [B, H, L, hd]

    def forward(self, text: torch.Tensor, vision: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``text [B, Q, d]``, ``vision [B, N, d]``, ``mask [B, N]`` -> ``[B, Q, d]``."""
        queries, keys, values = (
            self._heads(self.query(text)),
            self._heads(self.key(vision)),
            self._heads(self.value(vision)),
        )
        scores = queries @ keys.transpose(-1, -2) / math.sqrt(self.head_dim)  # [B, H, Q, N]
        scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=-1) * mask[:, None, None, :].to(scores.dtype)  # 0 for a post without images
        return self.norm(self.out((weights @ values).transpose(1, 2).reshape(text.shape)))


class LevelMixture(nn.Module):
    """The mixture of experts over the text and three vision levels, with its softmax router."""

    def __init__(self, hidden_size: int, levels: int = 3) -> None:
        super().__init__()
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))
            for _ in range(levels)
        )
        self.router = nn.Linear((1 + levels) * hidden_size, 1 + levels)  # W_r

    def forward(self, text: torch.Tensor, contexts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``text [B, Q, d]``, one context ``[B, Q, d]`` per level -> (H^ ``[B, Q, d]``, w ``[B, Q, 1 + levels]``)."""
        weights = self.router(torch.cat([text, *contexts], dim=-1)).softmax(dim=-1)
        outputs = [text] + [text + expert(torch.cat([text, c], dim=-1)) for expert, c in zip(self.experts, contexts)]
        mixed = (torch.stack(outputs, dim=2) * weights.unsqueeze(-1)).sum(dim=2)  # sum over experts
        return mixed, weights


@register_model("hvformer", config=HvformerConfig, processor=image_relation_processor)
class HvformerClassifier(ImageRelationModel):
    """HVFormer RE: the last text layer reads every vision level; a routed mixture of experts mixes them."""

    output_class = HvformerOutput
    model_config: HvformerConfig

    def __init__(
        self, config: HvformerConfig, labels: list[str], text_encoder: PreTrainedModel, vision_encoder: VisionEncoder
    ) -> None:
        super().__init__(config, labels, text_encoder, vision_encoder)
        text_config = text_encoder.config
        d, heads = self.hidden_size, text_config.num_attention_heads
        self.image_tokens = ImageTokens(self.image_dim, d, config.region_count)
        width = config.vision_intermediate_size or text_config.intermediate_size
        self.vision_layers = nn.ModuleList(
            VisionLayer(d, heads, width, text_config.attention_probs_dropout_prob) for _ in range(config.vision_layers)
        )
        last = config.vision_layers
        self.levels = (0, (last + 1) // 2, last)  # the reference: ViT levels 0, 6, 12 of 12
        self.cross_attention = nn.ModuleList(CrossAttention(d, heads) for _ in self.levels)
        self.mixture = LevelMixture(d, len(self.levels))
        self.classifier = nn.Linear(2 * d, len(labels))

    def vision_sequences(self, posts: PostRegions) -> tuple[torch.Tensor, torch.Tensor]:
        """One sequence per real image: the image token and its crops' ``[N_real, 1 + k, d]`` and their mask."""
        tokens, mask = self.image_tokens(posts.images, posts.image_mask, posts.regions, posts.region_mask)
        return tokens[posts.image_mask], mask[posts.image_mask]  # padded slots give no sequence

    def vision_levels(self, posts: PostRegions) -> tuple[list[torch.Tensor], torch.Tensor]:
        """V^0 .. V^L of every post, ``[B, M(1 + k), d]`` each (zeros at padding), and their mask."""
        sequences, mask = self.vision_sequences(posts)
        batch, slots = posts.image_mask.shape
        levels = [sequences]
        for layer in self.vision_layers:
            levels.append(layer(levels[-1], mask))
        full_mask = mask.new_zeros(batch, slots, mask.shape[-1])
        full_mask[posts.image_mask] = mask

        def to_posts(level: torch.Tensor) -> torch.Tensor:  # [N_real, 1 + k, d] -> [B, M(1 + k), d]
            full = level.new_zeros(batch, slots, *level.shape[1:])
            full[posts.image_mask] = level
            return full.flatten(1, 2)

        return [to_posts(level) for level in levels], full_mask.flatten(1)

    def classify(
        self, hidden: torch.Tensor, markers: torch.Tensor, posts: PostRegions
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
        levels, mask = self.vision_levels(posts)
        contexts = [attend(markers, levels[level], mask) for attend, level in zip(self.cross_attention, self.levels)]
        mixed, weights = self.mixture(markers, contexts)  # H^ at <s>, <o>: [B, 2, d]
        logits = self.classifier(self.dropout(mixed.flatten(1)))
        return logits, {"expert_weights": weights}

    def forward(  # the base's forward, declaring the output it builds (``output_class``)
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        image_mask: torch.Tensor | None = None,  # always given: HVFormer has no text-only switch (the base's types)
        region_mask: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        region_pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> HvformerOutput:
        output = super().forward(
            input_ids, attention_mask, head_start, tail_start, image_mask, region_mask, image_features,
            region_features, pixel_values, region_pixel_values, token_type_ids, labels,
        )  # fmt: skip
        assert isinstance(output, HvformerOutput)
        return output


@register_model("hvformer_mi", config=HvformerMiConfig, processor=image_relation_processor)
class HvformerMiClassifier(HvformerClassifier):
    """HVFormer-MI RE: HVFormer over every image of the post, one vision sequence per real image."""
