"""VisualBERT as a relation-extraction baseline (single-stream; MRE-MI paper Table 2, FocalMRE paper Table 1).

VisualBERT (Li et al., 2019, sec. 3) runs ONE Transformer over the text tokens and a set of visual
embeddings; self-attention aligns words and image regions implicitly. Each visual embedding is the sum

    f = f_o W_proj + f_s + f_p                                         (sec. 3.1, "visual embeddings")

of a region's CNN feature ``f_o`` projected to the hidden size (``visual_projection`` of Hugging Face's
``VisualBertModel``, from ``visual_embedding_dim``), a segment embedding ``f_s`` saying "image" (visual
token type 1) and a position embedding ``f_p`` (no word-region alignment here: position 0 for all).

The MRE papers give no detail of how they ran it for RE; the choices here, each named:

* text: the post with entity markers ``<s> head </s> ... <o> tail </o>`` (as MTB and every RE model here);
* visual tokens: the FIRST image ("Text + One Image" block of Table 2): its global vector and its k
  regions (visual-grounding crops or grid cells) from the configured vision encoder, masked where absent,
  linearly mapped ``D -> visual_embedding_dim`` (the feature size the VisualBERT config declares: 2048
  Detectron features for the uclanlp checkpoints) before VisualBERT's own projection;
* head: MTB's, a linear classifier over the start-marker states ``[h_<s>; h_<o>]`` of the joint sequence
  (VisualBERT's own classification heads read the pooled [CLS]; MTB's is the strongest RE head of the
  tables and the one the brief asks for).

Deviations, on purpose: the paper's visual features are Faster R-CNN detector regions; mmie feeds the
configured encoder's global vector and regions instead. A BERT-layout encoder (``minilm``, ``bert-*``)
is turned into a VisualBERT by VisualBERT's own recipe (sec. 3.3: initialised from BERT, the visual
segment and position embeddings copied from the text ones), without VisualBERT's task-agnostic
pre-training on COCO: that is the offline variant's model, not the paper's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.errors import ConfigError
from mmie.features.processor import image_relation_processor
from mmie.models.glra.image_relation import ImageRelationModel, PostRegions
from mmie.models.pretrained_vl.configuration import VisualBertReConfig
from mmie.models.registry import register_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder
    from mmie.models.base import ModelConfig

# The segment id VisualBERT gives visual tokens (text tokens are 0): f_s of sec. 3.1.
VISUAL_TOKEN_TYPE = 1


def as_visual_bert(encoder: PreTrainedModel) -> PreTrainedModel:
    """The encoder as a ``VisualBertModel``: a VisualBERT checkpoint as it is; a BERT-layout one (same
    embeddings, layers and pooler) initialised from BERT as VisualBERT was (sec. 3.3), the visual
    segment and position embeddings copied from the text ones; anything else is a ConfigError."""
    from transformers import BertModel, VisualBertConfig, VisualBertModel

    if isinstance(encoder, VisualBertModel):
        return encoder
    if not isinstance(encoder, BertModel):
        raise ConfigError(
            f"model.encoder: visualbert_re needs a VisualBERT checkpoint or a BERT-layout encoder to start "
            f"VisualBERT from, got a {type(encoder).__name__}"
        )
    settings = {k: v for k, v in encoder.config.to_dict().items() if k not in ("model_type", "architectures")}
    visual_bert = VisualBertModel(VisualBertConfig(**settings))
    loaded = visual_bert.load_state_dict(encoder.state_dict(), strict=False)
    assert not loaded.unexpected_keys, loaded.unexpected_keys  # BERT's every weight has its place
    embeddings = visual_bert.embeddings
    with torch.no_grad():  # VisualBERT's special_visual_initialize, on the loaded text embeddings
        embeddings.visual_token_type_embeddings.weight.copy_(embeddings.token_type_embeddings.weight)
        embeddings.visual_position_embeddings.weight.copy_(embeddings.position_embeddings.weight)
    return visual_bert


@register_model("visualbert_re", config=VisualBertReConfig, processor=image_relation_processor)
class VisualBertRelationClassifier(ImageRelationModel):
    """VisualBERT RE: marked text + the first image's visual tokens in one Transformer, [h_<s>; h_<o>] classified."""

    def __init__(
        self,
        config: VisualBertReConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder,
    ) -> None:
        super().__init__(config, labels, as_visual_bert(text_encoder), vision_encoder)
        # f_o: the encoder's D-dim image and region vectors in the feature size VisualBERT declares
        self.visual_input = nn.Linear(self.image_dim, self.text_encoder.config.visual_embedding_dim)
        self.classifier = nn.Linear(2 * self.hidden_size, len(labels))

    @classmethod
    def build_components(cls, config: ModelConfig, component_configs: dict[str, dict] | None = None) -> dict:
        components = super().build_components(config, component_configs)
        components["text_encoder"] = as_visual_bert(components["text_encoder"])
        return components

    def visual_inputs(self, posts: PostRegions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``visual_embeds [B, 1 + k, visual_embedding_dim]`` (the first image's global vector, then its
        regions), ``visual_attention_mask [B, 1 + k]`` and ``visual_token_type_ids [B, 1 + k]`` (all 1)."""
        tokens = torch.cat([posts.images, posts.regions.flatten(1, 2)], dim=1)  # [B, M + M*k, D], M = 1
        mask = torch.cat([posts.image_mask, posts.region_mask.flatten(1, 2)], dim=1)  # [B, M + M*k]
        token_types = torch.full_like(mask, VISUAL_TOKEN_TYPE, dtype=torch.long)
        return self.visual_input(tokens), mask, token_types

    def encode_marked_text(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None,
        posts: PostRegions,
    ) -> torch.Tensor:
        """One Transformer over [text; visual] (sec. 3.1): every text token attends to the visual tokens.
        ``[B, T, d]``: the text positions of the joint sequence (they come first)."""
        visual_embeds, visual_mask, visual_token_types = self.visual_inputs(posts)
        hidden = self.text_encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            visual_embeds=visual_embeds,
            visual_attention_mask=visual_mask.to(attention_mask.dtype),
            visual_token_type_ids=visual_token_types,
        ).last_hidden_state  # [B, T + 1 + k, d]
        return hidden[:, : input_ids.shape[1]]

    def classify(
        self, hidden: torch.Tensor, markers: torch.Tensor, posts: PostRegions
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
        """MTB's head over the start-marker states ``[h_<s>; h_<o>]`` of the joint sequence."""
        return self.classifier(self.dropout(markers.flatten(1))), {}
