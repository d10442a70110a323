"""MKGformer: Hybrid Transformer with Multi-level Fusion (Chen et al., SIGIR 2022), for relation extraction.

The paper's hybrid Transformer runs a ViT (V-Encoder) and BERT (T-Encoder) side by side; its upper
L_M layers form the M-Encoder, where the two streams meet twice per layer (sec. 3.3; the authors'
``MRE/models/modeling_unimo.py``, layers 9-12 of 12):

    text layers 1 .. L - L_M: BERT as is (T-Encoder)                                       (sec. 3.2)
    for each M-Encoder layer l = L - L_M + 1 .. L:
      PGI, prefix-guided interaction: the visual tokens attend to the previous text layer's keys
      and values as a prefix of their own self-attention                                   (eq. 5-6)
          V^l = VisionLayer(V^{l-1}; prefix = (K_t^{l-1}, V_t^{l-1}))
      CAF, correlation-aware fusion: each token's self-attention output h_i gathers the patches
      it correlates with, and the sum enters the text layer's feed-forward block            (eq. 7-9)
          S = softmax(h V^l^T) over the visual tokens;  a_i = S_i V^l
          FFN(h_i) = LN(h_i + W_2 act(W_1 h_i + b_1 + W_3 a_i) + b_2)
    r = [h^L_<s>; h^L_<o>];  p(y) = softmax(W r + b)        (the reference RE head, UnimoREModel)

"Previous text layer" follows the reference code: vision layer l reads the keys and values text
layer l - 1 computed (from its input); the first M-Encoder vision layer reads those of the last
T-Encoder layer. The text layers below the M-Encoder never see the image (tested).

Text-only switch (``use_images: false``): no vision encoder, no M-Encoder (its vision layers and W_3): the
text encoder runs as is and r = [h^L_<s>; h^L_<o>] -- the reference's RE head over BERT, i.e. MTB.

Deviations, on purpose:

* mmie's vision encoders are frozen feature extractors (the feature cache): a visual token is the
  vector of the whole image or of one of its k crops (:class:`~mmie.models.layers.image_tokens.ImageTokens`),
  not a ViT patch, and the L_M vision layers of the M-Encoder are trained from scratch over them
  (the reference fine-tunes CLIP ViT-B/32's layers 9-12 over its patches). The lower ViT layers are
  the frozen encoder.
* CAF reads the text layer's attention output after its residual and LayerNorm (the reference: the
  context vectors before the output projection), through the layer's own modules.
* Padding is masked: padded text tokens are no prefix, missing crops no visual token (the reference
  attends to both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.errors import ConfigError
from mmie.features.processor import image_relation_processor
from mmie.models.glra.image_relation import ImageRelationModel, ImageRelationOutput, PostRegions
from mmie.models.layers import text_layers
from mmie.models.layers.image_tokens import ImageTokens
from mmie.models.layers.vision_layer import VisionLayer
from mmie.models.mkgformer.configuration import MkgformerConfig
from mmie.models.registry import register_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.encoders.vision import VisionEncoder


@register_model("mkgformer", config=MkgformerConfig, processor=image_relation_processor)
class MkgformerClassifier(ImageRelationModel):
    """MKGformer RE: prefix-guided interaction and correlation-aware fusion in the upper text layers."""

    model_config: MkgformerConfig

    def __init__(
        self,
        config: MkgformerConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        vision_encoder: VisionEncoder | None = None,  # None with the text-only switch
    ) -> None:
        super().__init__(config, labels, text_encoder, vision_encoder)
        if not self.uses_images:  # the text-only switch: no M-Encoder
            self.classifier = nn.Linear(2 * self.hidden_size, len(labels))
            return
        text_config = text_encoder.config
        self.num_layers = len(text_layers.encoder_layers(text_encoder))
        fused = config.fusion_layers or -(-self.num_layers // 3)  # default: the upper third, rounded up
        if fused > self.num_layers:
            raise ConfigError(f"model.fusion_layers: {fused}, but the text encoder has {self.num_layers} layers")
        self.first_fused = self.num_layers - fused  # index of the first M-Encoder layer
        d = self.hidden_size
        self.image_tokens = ImageTokens(self.image_dim, d, config.region_count)
        width = config.vision_intermediate_size or text_config.intermediate_size
        heads = text_config.num_attention_heads
        self.vision_layers = nn.ModuleList(
            VisionLayer(d, heads, width, text_config.attention_probs_dropout_prob) for _ in range(fused)
        )
        # W_3 of eq. 9, one per M-Encoder layer: the gathered patches into the feed-forward block
        self.fusion = nn.ModuleList(nn.Linear(d, text_config.intermediate_size) for _ in range(fused))
        self.classifier = nn.Linear(2 * d, len(labels))

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None,
        posts: PostRegions,
    ) -> list[torch.Tensor]:
        """The text hidden states ``[B, T, d]`` after the embeddings and after every layer (L + 1 of them)."""
        layers = text_layers.encoder_layers(self.text_encoder)
        hidden = text_layers.embed(self.text_encoder, input_ids, token_type_ids)
        mask = text_layers.additive_mask(attention_mask, hidden.dtype)
        tokens, token_mask = self.image_tokens(posts.images, posts.image_mask, posts.regions, posts.region_mask)
        visual = tokens.flatten(1, 2)  # [B, M, 1 + k, d] -> [B, M(1 + k), d]
        visual_mask = token_mask.flatten(1)
        states = [hidden]
        for index, layer in enumerate(layers):
            if index < self.first_fused:  # T-Encoder
                hidden = text_layers.run_layer(layer, hidden, mask)
                states.append(hidden)
                continue
            fused = index - self.first_fused
            # PGI (eq. 5-6): the previous text layer's keys and values as the vision layer's prefix
            prefix = text_layers.keys_values(layers[index - 1], states[index - 1]) if index > 0 else None
            visual = self.vision_layers[fused](visual, visual_mask, prefix, attention_mask if index > 0 else None)
            # CAF (eq. 7-9): token-patch similarity, softmax over the real visual tokens
            attended = text_layers.self_attention(layer, hidden, mask)  # [B, T, d]
            scores = attended @ visual.transpose(1, 2)  # [B, T, M(1 + k)]
            scores = scores.masked_fill(~visual_mask[:, None, :], torch.finfo(scores.dtype).min)
            weights = scores.softmax(dim=-1) * visual_mask[:, None, :].to(scores.dtype)  # 0 without any image
            hidden = text_layers.feed_forward(layer, attended, self.fusion[fused](weights @ visual))
            states.append(hidden)
        return states

    # Runs the text encoder itself (layer by layer), so it overrides the base's forward.
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        image_mask: torch.Tensor | None = None,  # None (and region_mask): the text-only switch's batch
        region_mask: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        region_pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> ImageRelationOutput:
        if not self.uses_images:  # the text-only switch: the text encoder as is, images never read
            hidden = self.encode_text(input_ids, attention_mask, token_type_ids)
        elif image_mask is None or region_mask is None:
            raise ValueError(f"{type(self).__name__} reads images: its batch needs image_mask and region_mask")
        else:
            posts = self.post_regions(
                image_mask, region_mask, image_features, region_features, pixel_values, region_pixel_values
            )
            hidden = self.encode(input_ids, attention_mask, token_type_ids, posts)[-1]
        markers = self.marker_vectors(hidden, head_start, tail_start)  # [B, 2, d]
        logits = self.classifier(self.dropout(markers.flatten(1)))
        return ImageRelationOutput(loss=self.loss(logits, labels), logits=logits)
