"""CLIP as a relation-extraction baseline (dual-stream; MRE-MI paper Table 2).

CLIP (Radford et al., 2021, sec. 2.3-2.4) encodes text and image in two separate towers and maps each
into one joint space by a linear projection:

    t = W_t h_[EOS]          the text tower's state at the end-of-text token, projected (text_projection)
    v = W_i ViT([CLS])       the image tower's post-layernorm [CLS], projected (visual_projection)

The MRE papers give no detail of how they ran it for RE ("a dual-stream multimodal pretrained model",
MRE-MI sec. 5.1); the choices here, each named:

* text: CLIP's tokenizer over the post with entity markers ``<s> head </s> ... <o> tail </o>`` (added to
  its vocabulary as for every RE model), at most CLIP's 77 positions (``max_length``);
* entity states: the start-marker states ``h_<s>``, ``h_<o>`` of the text tower's last layer (after its
  final layer norm). CLIP's text tower is causal, so each sees the text up to itself only;
* pooled text: the state at the end-of-text token, the last real token of the row (read by position,
  not by CLIP's legacy ``argmax(input_ids)``, which the added marker ids would win), then ``W_t``;
* image: the FIRST image ("Text + One Image" block of Table 2), through CLIP's own vision tower:
  pixels when the vision is fine-tuned, or the cached pooled [CLS] of the same checkpoint
  (``vision_encoder`` must name it: the default), then ``W_i``; a post without an image gives zeros;
* fusion: the concatenation ``z = [h_<s>; h_<o>; t; v]`` (2 d_text + 2 d_proj) of the raw projected
  embeddings (what ``get_text_features`` / ``get_image_features`` return), then dropout and one linear
  classifier (the "fused for classification" of BASELINES.md). Not L2-normalised as CLIP's contrastive
  logits are: unit vectors beside the marker states (norm ~ sqrt(d_text)) left the image block learning
  far slower than the text under AdamW (tests/test_pretrained_vl.py, the learning test).

Deviations, none from a described method (there is none): no region features (CLIP sees whole images).
There are no CLIP weights offline: this model has no offline variant (docs/models/pretrained_vl.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from mmie.encoders.text import grow_token_embeddings
from mmie.encoders.vision import scatter_to_slots
from mmie.errors import ConfigError
from mmie.features.processor import image_relation_processor
from mmie.models.glra.image_relation import ImageRelationOutput
from mmie.models.pretrained_vl.configuration import ClipReConfig
from mmie.models.registry import register_model
from mmie.models.text.relation import MarkedRelationModel

if TYPE_CHECKING:
    from transformers import CLIPModel, CLIPTextConfig, PreTrainedModel

    from mmie.features.processor import TextVocabulary
    from mmie.models.base import ModelConfig

# Parameters of CLIP's vision tower (inside the wrapped CLIPModel): frozen when freeze_vision is set.
VISION_TOWER = "vision_model"


@register_model("clip_re", config=ClipReConfig, processor=image_relation_processor)
class ClipRelationClassifier(MarkedRelationModel):
    """CLIP RE: [h_<s>; h_<o>; text embedding; image embedding of the first image] classified."""

    output_class = ImageRelationOutput

    def __init__(self, config: ClipReConfig, labels: list[str], text_encoder: PreTrainedModel) -> None:
        from transformers import CLIPModel

        if not isinstance(text_encoder, CLIPModel):
            raise ConfigError(f"model.encoder: clip_re needs a CLIP checkpoint, got a {type(text_encoder).__name__}")
        super().__init__(config, labels)  # a CLIPConfig has no hidden_size of its own: the towers' are inside
        self.text_encoder = text_encoder
        text_config = cast("CLIPTextConfig", text_encoder.config.text_config)
        self.hidden_size = text_config.hidden_size  # d_text: the text tower's width
        if config.max_length > text_config.max_position_embeddings:
            raise ConfigError(
                f"model.max_length: {config.max_length} sub-words, but CLIP's text tower has "
                f"{text_config.max_position_embeddings} positions"
            )
        if config.freeze_vision:  # the tower that made the cached features is not trained
            for parameter in text_encoder.get_submodule(VISION_TOWER).parameters():
                parameter.requires_grad_(False)
        self.dropout = nn.Dropout(config.dropout)
        self.fused_size = 2 * self.hidden_size + 2 * text_encoder.text_projection.out_features  # 2 d_text + 2 d_proj
        self.classifier = nn.Linear(self.fused_size, len(labels))

    @property
    def clip(self) -> CLIPModel:
        """The wrapped CLIPModel (the ``text_encoder`` part: both towers and both projections)."""
        return cast("CLIPModel", self.text_encoder)

    @classmethod
    def build_components(cls, config: ModelConfig, component_configs: dict[str, dict] | None = None) -> dict:
        assert isinstance(config, ClipReConfig)
        if config.vision_encoder != config.encoder:
            raise ConfigError(
                f"model.vision_encoder: clip_re reads images with CLIP's own vision tower, so it must name the "
                f"checkpoint of model.encoder ({config.encoder!r}), got {config.vision_encoder!r}"
            )
        return super().build_components(config, component_configs)

    def fit_vocabulary(self, tokenizer: TextVocabulary) -> None:
        """Grow the text tower's token embeddings by the entity markers (the input embeddings of a
        CLIPModel are its text tower's), and say so in the saved CLIPConfig's ``text_config``."""
        vocabulary_size = len(tokenizer)
        text_model = self.clip.text_model
        if text_model.get_input_embeddings().num_embeddings != vocabulary_size:
            grow_token_embeddings(text_model, vocabulary_size)
            cast("CLIPTextConfig", self.clip.config.text_config).vocab_size = vocabulary_size

    # ------------------------------------------------------------------------- running

    def text_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The text tower's last states ``[B, T, d_text]`` and the projected text embedding ``t [B, d_proj]``."""
        hidden = self.clip.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        end = attention_mask.sum(dim=1) - 1  # [B]: the end-of-text token, the row's last real token
        pooled = hidden[torch.arange(len(hidden), device=hidden.device), end]  # [B, d_text]
        return hidden, self.clip.text_projection(pooled)

    def image_embedding(
        self,
        image_mask: torch.Tensor,
        image_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``v [B, d_proj]``: the projected embedding of the first image (zeros for a post without one)."""
        image_mask = image_mask.bool()[:, 0]  # [B]: the one slot of the "first" layout
        if pixel_values is not None:
            real = pixel_values[:, 0][image_mask]  # [N, 3, H, W]: the real images only
            pooled = self.clip.vision_model(pixel_values=real).pooler_output  # [N, D]
            pooled = scatter_to_slots(pooled, image_mask)  # [B, D]
        elif image_features is not None:
            pooled = image_features[:, 0]  # [B, D]: the cached pooled [CLS] of CLIP's vision tower
        else:
            raise ValueError(f"{type(self).__name__} needs image_features or pixel_values")
        projection = self.clip.visual_projection
        embedding = projection(pooled.to(projection.weight.dtype))
        return embedding.masked_fill(~image_mask.unsqueeze(-1), 0.0)

    def fuse(self, markers: torch.Tensor, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """``z = [h_<s>; h_<o>; t; v]``, ``[B, 2 d_text + 2 d_proj]``."""
        return torch.cat([markers.flatten(1), text, image], dim=1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        image_mask: torch.Tensor,
        region_mask: torch.Tensor | None = None,  # CLIP reads no regions (region_count 0)
        image_features: torch.Tensor | None = None,
        region_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        region_pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> ImageRelationOutput:
        hidden, text = self.text_states(input_ids, attention_mask)
        markers = self.marker_vectors(hidden, head_start, tail_start)  # [B, 2, d_text]
        image = self.image_embedding(image_mask, image_features, pixel_values)
        logits = self.classifier(self.dropout(self.fuse(markers, text, image)))
        return ImageRelationOutput(loss=self.loss(logits, labels), logits=logits)
