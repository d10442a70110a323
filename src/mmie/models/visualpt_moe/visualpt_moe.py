"""VisualPT-MoE for NER (Xu et al., "A Unified Visual Prompt Tuning Framework with Mixture-of-Experts for
Multimodal Information Extraction", DASFAA 2023) and VisualPT-MoE-MI (MNER-MI paper, sec. 5.1).

Five experts turn the image into P prompt tokens each (P = ``prompt_length``; the paper's 16):

    X_image   = the image's multi-scale tokens (4 = 2 x 2 cells x 4 stages), zero-padded to P      (1)
    X_crops   = the k grounding crops' tokens (k x 4 = 12), zero-padded to P                      (1)
    X_tags    = E_w(the image's object tags, sub-words, padded with [PAD] to P)                  (1)
    X_caption = E_w(the image's caption, sub-words, padded with [PAD] to P)                      (1)
    X_random  = P learned embeddings                                                             (1)
    P^l       = the gated mixture of the experts' keys and values of layer l                     (2)-(5)
    H         = BERT with P^l as the past keys/values of every layer l
    p(y_i|H)  = softmax(W h_{first(i)} + b)                  cross-entropy head, no CRF
    loss      = (1 - alpha) CE + alpha B                     B: the balance loss (6), alpha = 1e-4

E_w is the text encoder's own word-embedding table. Eq. 2-6 are :mod:`mmie.models.layers.prefix_experts`;
the image and crop tokens are HVPNeT's (:mod:`mmie.models.hvpnet.prefix_model`); the tags and the
caption come from an image-text file (:mod:`mmie.features.imagetext`). ``model.experts`` says which
experts the model has: tags and caption only with a file, the other three offline.
``visualpt_moe_mi`` is the same model fed the post's images stitched 2 x 2 into one picture.

Deviations (docs/models/visualpt_moe.md):

* The reference embeds tags and captions with a separate, never-trained copy of BERT's word
  embeddings; here the model's own word embeddings embed them, detached (no gradient from this path),
  so the prompt and the text share one table as it is fine-tuned.
* The reference classifies every sub-word and decodes each word's first; here the classifier reads
  each word's first sub-word (the same loss: the reference ignores the other sub-words).
* The crops of the MNER datasets come from a region provider (offline: grid saliency, not grounding).
  VisualPT-MoE-MI's crops and text: the crops are found on the stitched picture (with a crop dictionary,
  which has none for it, the first image's); the tags and captions of all its images share the P tokens
  (P // n each).
* The reference adds the balance loss in training only; here whenever labels are given.
* The image tokens are the 4 pooled cells (as HVPNeT's here), not the reference's view of channel-major
  maps; the prefix does not shift the text's position ids (:func:`encode_with_prefix`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.encoders.multiscale import MultiScaleEncoder
from mmie.features.collate import IGNORE_INDEX
from mmie.features.processor import imagetext_ner_processor
from mmie.models.base import TokenClassificationOutput, gather_positions
from mmie.models.hvpnet.prefix_model import HierarchicalPrefixMixin
from mmie.models.layers.prefix_experts import MixedPrefix, PrefixExperts
from mmie.models.layers.visual_prefix import encode_with_prefix, require_prefix_support
from mmie.models.registry import register_model
from mmie.models.text.bert_softmax import BertSoftmaxTagger
from mmie.models.visualpt_moe.configuration import EXPERTS, VisualptMoeConfig, VisualptMoeMiConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder


@dataclass
class VisualptMoeOutput(TokenClassificationOutput):
    """NER output plus ``expert_weights [B, L, 5]`` (each layer's gate over image, crops, tags, caption,
    random; 0 for an expert the model does not have) and ``balance_loss`` (eq. 6)."""

    expert_weights: torch.Tensor | None = None
    balance_loss: torch.Tensor | None = None


def _pad_tokens(tokens: torch.Tensor, length: int) -> torch.Tensor:
    """``[B, n, D]`` -> ``[B, length, D]``: zero vectors after the n tokens (the reference's padding)."""
    return nn.functional.pad(tokens, (0, 0, 0, length - tokens.shape[1]))


@register_model("visualpt_moe", config=VisualptMoeConfig, processor=imagetext_ner_processor)
class VisualptMoeTagger(HierarchicalPrefixMixin, BertSoftmaxTagger):
    """VisualPT-MoE NER: a per-layer gated mixture of five prefix experts of the image, cross-entropy head."""

    output_class = VisualptMoeOutput
    model_config: VisualptMoeConfig

    def __init__(
        self,
        config: VisualptMoeConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder,
    ) -> None:
        super().__init__(config, labels, text_encoder)
        require_prefix_support(text_encoder)  # the prefix goes in as the encoder's key/value cache
        if not isinstance(vision_encoder, MultiScaleEncoder):
            raise TypeError(f"{type(self).__name__} reads stage features: build it with create_model")
        self.vision_encoder = vision_encoder
        self.experts = config.experts
        self.prompt_length = config.prompt_length
        dims = {"image": self.image_dim, "crops": self.image_dim, "tags": self.hidden_size}
        dims |= {"caption": self.hidden_size, "random": self.hidden_size}
        if "random" in self.experts:  # X_random: P learned prompt embeddings
            self.random_prompts = nn.Embedding(config.prompt_length, self.hidden_size)
        self.prefix_experts = PrefixExperts(
            {name: dims[name] for name in self.experts},
            config.prompt_length,
            text_encoder.config,
            config.expert_bottleneck,
            config.gate_noise,
        )

    def expert_tokens(
        self,
        image_mask: torch.Tensor,
        crop_mask: torch.Tensor,
        region_features: torch.Tensor | None,
        crop_features: torch.Tensor | None,
        pixel_values: torch.Tensor | None,
        crop_pixel_values: torch.Tensor | None,
        tag_ids: torch.Tensor | None,
        caption_ids: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """Eq. 1: each enabled expert's P prompt tokens ``[B, P, d_e]``."""
        tokens: dict[str, torch.Tensor] = {}
        if "image" in self.experts or "crops" in self.experts:
            blocks, _ = self.visual_blocks(  # absent images and crops are zero blocks
                image_mask, crop_mask, region_features, crop_features, pixel_values, crop_pixel_values
            )  # [B, 1 + k, T, D]: the image, then its k crops
            tokens["image"] = _pad_tokens(blocks[:, 0], self.prompt_length)  # [B, T, D] -> [B, P, D]
            # [B, k, T, D] -> [B, k * T, D] -> [B, P, D]
            tokens["crops"] = _pad_tokens(blocks[:, 1:].flatten(1, 2), self.prompt_length)
        words = self.text_encoder.get_input_embeddings()
        for name, ids in (("tags", tag_ids), ("caption", caption_ids)):
            if name in self.experts:
                if ids is None:
                    raise ValueError(f"{type(self).__name__}: the {name} expert needs {name[:3]}_ids")
                tokens[name] = words(ids).detach()  # [B, P] -> [B, P, d]
        if "random" in self.experts:
            batch = image_mask.shape[0]
            positions = torch.arange(self.prompt_length, device=image_mask.device)
            tokens["random"] = self.random_prompts(positions).unsqueeze(0).expand(batch, -1, -1)  # [B, P, d]
        return {name: tokens[name] for name in self.experts}

    def expert_weights(self, mixed: MixedPrefix) -> torch.Tensor:
        """The gate ``[B, L, E]`` over the model's experts -> ``[B, L, 5]`` in the paper's order (0: absent)."""
        weights = mixed.weights.new_zeros((*mixed.weights.shape[:2], len(EXPERTS)))
        columns = [EXPERTS.index(name) for name in self.experts]
        weights[..., columns] = mixed.weights
        return weights

    # Takes the batch of its own processor: the text tagger's inputs plus images, crops, tags, caption.
    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        image_mask: torch.Tensor,
        crop_mask: torch.Tensor,
        image_features: torch.Tensor | None = None,  # the images' mean tokens: not read (the blocks are)
        region_features: torch.Tensor | None = None,
        crop_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        crop_pixel_values: torch.Tensor | None = None,
        tag_ids: torch.Tensor | None = None,
        caption_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> VisualptMoeOutput:
        tokens = self.expert_tokens(
            image_mask, crop_mask, region_features, crop_features, pixel_values, crop_pixel_values, tag_ids, caption_ids
        )
        mixed = self.prefix_experts(tokens)  # eq. 2-6
        hidden = encode_with_prefix(self.text_encoder, input_ids, attention_mask, mixed.prefix, token_type_ids)
        words = gather_positions(hidden.last_hidden_state, word_starts)  # type: ignore[arg-type]
        logits = self.classifier(self.dropout(words))
        loss = None
        if labels is not None:
            # the reference's sum over the labelled words, then (1 - alpha) CE + alpha B
            cross_entropy = nn.functional.cross_entropy(
                logits[word_mask], labels[word_mask], ignore_index=IGNORE_INDEX, reduction="sum"
            )
            alpha = self.model_config.alpha
            loss = (1 - alpha) * cross_entropy + alpha * mixed.balance
        predictions = logits.argmax(-1).masked_fill(~word_mask, IGNORE_INDEX)
        return VisualptMoeOutput(
            loss=loss,
            logits=logits,
            predictions=predictions,
            expert_weights=self.expert_weights(mixed),
            balance_loss=mixed.balance,
        )


@register_model("visualpt_moe_mi", config=VisualptMoeMiConfig, processor=imagetext_ner_processor)
class VisualptMoeMiTagger(VisualptMoeTagger):
    """VisualPT-MoE-MI NER: VisualPT-MoE fed all of the post's images stitched 2 x 2 into one picture.

    The model is VisualPT-MoE's; its config's ``image_layout`` (stitched) makes the picture."""
