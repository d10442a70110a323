"""promptMNER: "PromptMNER: Prompt-Based Entity-Related Visual Clue Extraction and Integration for Multimodal
Named Entity Recognition" (Wang et al., DASFAA 2022).

A pretrained vision-language model (CLIP, Radford et al. 2021) is asked, zero-shot, which entity types the
image shows: each type is written into a prompt ("a photo of a person", "... location", ...), CLIP scores
every prompt against the image, and the resulting distribution over the types, the *entity-related visual
clues*, is integrated into a BERT-CRF tagger, each word attending to the clues:

    t_k = W_t CLIP_text(prompt_k)[EOS] / ||.||,  k = 1..K        the K type prompts, embedded      (P1)
    v   = W_i CLIP_vision(I)[CLS] / ||.||                        the post's (first) image          (P2)
    p_k = softmax_k(tau * v . t_k),  tau = exp(logit_scale)      the visual clues: sum_k p_k = 1   (P3)
    c_k = p_k * W_c t_k                                          each clue, its type, weighted     (P4)
    H = [h_first(1) .. h_first(n)] = BERT(x)                     the words of the post             (P5)
    a_ik = softmax_k((W_q h_i) . c_k / sqrt(d));  z_i = sum_k a_ik c_k     word -> clue attention  (P6)
    g_i = sigmoid(W_g [h_i ; z_i] + b_g);  f_i = g_i * z_i       gated clue feature (0: no image)  (P7)
    e_i = W [h_i ; f_i] + b;  CRF over e                         emissions, BIO-constrained        (P8)

(P1)-(P8) are this file's numbers. The paper's text is not in shared/papers and no code of its authors was
found (the search corpora hold its abstract only: "entity-related prompts for extracting proper visual clues
with a pre-trained vision-language model", "a modality-aware attention mechanism for better cross-modal
fusion"); this follows that abstract and the brief of mmie's issue #22. The choices, each named:

* prompts: ``model.prompt_template`` filled with each of ``model.entity_types`` (default "a photo of a
  {type}" over person / location / organization / miscellaneous), embedded by CLIP's text tower at its
  end-of-text token (the last real token of the row) and ``text_projection``, as CLIP's zero-shot
  classifier; the prompt token ids are made once, when the model is built, by CLIP's tokenizer, and saved
  with the model's component configs (a saved folder needs no tokenizer of CLIP);
* clues (P3): CLIP's own zero-shot probabilities (cosine similarity scaled by CLIP's learnt temperature);
  ``clues`` of the output holds them, ``[B, K]``;
* image: the FIRST image of the post (the paper evaluates on the single-image Twitter sets); CLIP's vision
  tower reads it from pixels (``freeze_vision: false``) or as the cached pooled [CLS] of the same checkpoint
  (``vision_encoder`` must name ``clip_model``: its default);
* CLIP is the frozen clue extractor: its text tower (reading fixed prompts) is never trained, its vision
  tower only with ``freeze_vision: false``;
* integration (P4)-(P7) stands for the paper's "modality-aware attention", whose equations are not at hand:
  each word attends over the K clue vectors (the projected prompt embeddings scaled by their
  probabilities), and a per-dimension gate decides how much of the result it keeps (as OCSGA's gate);
* a post without an image gets the neutral clue: a uniform ``p`` (1/K each, reported) and ``f_i = 0``,
  so its emissions are those of the words alone.

Deviations (named in docs/models/promptmner.md): the integration is mmie's reading of the abstract, not
the paper's equations; no prompts are built from the post's candidate entity words (no description of
such prompts was found); one image per post.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from mmie.encoders.text import load_text_encoder, load_tokenizer, text_encoder_from_config
from mmie.encoders.vision import scatter_to_slots
from mmie.errors import ConfigError
from mmie.features.processor import image_ner_processor
from mmie.models.base import TokenClassificationOutput
from mmie.models.promptmner.configuration import PromptMnerConfig
from mmie.models.registry import register_model
from mmie.models.text.bert_crf import BertCrfTagger

if TYPE_CHECKING:
    from transformers import CLIPModel, CLIPTextConfig, PreTrainedModel

    from mmie.models.base import ModelConfig

# Parameters of the wrapped CLIPModel (both towers and both projections) start with this.
CLIP_PREFIX = "clip."


@dataclass
class PromptMnerOutput(TokenClassificationOutput):
    """NER output plus ``clues`` ``[batch, K]``: P3, each post's distribution over the entity-type prompts
    (uniform for a post without an image), in the order of ``model.entity_types``."""

    clues: torch.Tensor | None = None


@register_model("promptmner", config=PromptMnerConfig, processor=image_ner_processor)
class PromptMnerTagger(BertCrfTagger):
    """promptMNER: CLIP's scores of entity-type prompts against the image, attended by each word, gated, CRF."""

    output_class = PromptMnerOutput
    clip: CLIPModel  # both towers and both projections (the ``clip`` part)
    prompt_ids: torch.Tensor  # [K, L] the prompts' CLIP token ids, 0 past each prompt's end
    prompt_mask: torch.Tensor  # [K, L]

    def __init__(
        self,
        config: PromptMnerConfig,
        labels: list[str],
        text_encoder: PreTrainedModel,
        clip: PreTrainedModel,
        prompt_ids: list[list[int]],
    ) -> None:
        from transformers import CLIPModel

        if not isinstance(clip, CLIPModel):
            raise ConfigError(f"model.clip_model: promptmner needs a CLIP checkpoint, got a {type(clip).__name__}")
        if len(prompt_ids) != len(config.entity_types):
            raise ConfigError(
                f"model.entity_types: {len(config.entity_types)} types but {len(prompt_ids)} tokenized prompts"
            )
        super().__init__(config, labels, text_encoder)  # BERT, dropout and the CRF
        self.clip = clip
        for parameter in clip.text_model.parameters():  # the prompts are fixed: the text tower is not trained
            parameter.requires_grad_(False)
        clip.text_projection.requires_grad_(False)
        clip.logit_scale.requires_grad_(False)
        if config.freeze_vision:  # the tower that made the cached features is not trained either
            clip.vision_model.requires_grad_(False)
            clip.visual_projection.requires_grad_(False)
        self.prompt_ids_list = [list(ids) for ids in prompt_ids]
        width = max(len(ids) for ids in prompt_ids)
        ids = torch.zeros(len(prompt_ids), width, dtype=torch.long)  # [K, L]: padded past each prompt's end
        mask = torch.zeros(len(prompt_ids), width, dtype=torch.long)
        for k, row in enumerate(prompt_ids):
            ids[k, : len(row)] = torch.tensor(row)
            mask[k, : len(row)] = 1
        self.register_buffer("prompt_ids", ids, persistent=False)  # rebuilt from the component config
        self.register_buffer("prompt_mask", mask, persistent=False)
        # P1 depends only on the frozen text tower and the fixed prompts: computed once per device and
        # dtype, and again after weights are loaded (the one way a frozen tower's weights change).
        self._prompt_cache: tuple[tuple[torch.device, torch.dtype], torch.Tensor] | None = None
        self.register_load_state_dict_post_hook(lambda module, _keys: module.forget_prompt_embeddings())
        projection_dim = clip.text_projection.out_features  # d_p
        self.clue_projection = nn.Linear(projection_dim, self.hidden_size)  # P4: W_c
        self.clue_query = nn.Linear(self.hidden_size, self.hidden_size)  # P6: W_q
        self.gate = nn.Linear(2 * self.hidden_size, self.hidden_size)  # P7: W_g
        self.classifier = nn.Linear(2 * self.hidden_size, len(labels))  # P8: over [h_i ; f_i]

    # ------------------------------------------------------------------------- parts

    @classmethod
    def build_components(cls, config: ModelConfig, component_configs: dict[str, dict] | None = None) -> dict:
        from transformers import CLIPModel

        assert isinstance(config, PromptMnerConfig)
        if config.vision_encoder != config.clip_model:
            raise ConfigError(
                f"model.vision_encoder: promptmner reads images with CLIP's own vision tower, so it must name the "
                f"checkpoint of model.clip_model ({config.clip_model!r}), got {config.vision_encoder!r}"
            )
        components: dict[str, Any] = super().build_components(config, component_configs)  # the text encoder
        if component_configs is not None:  # a saved folder: CLIP rebuilt empty, the prompts as they were tokenized
            saved = component_configs.get("clip")
            if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
                raise ConfigError("components.clip: the saved model has no CLIP config")
            prompt_ids = saved.get("prompt_ids")
            if not isinstance(prompt_ids, list) or not all(
                isinstance(row, list) and row and all(isinstance(i, int) for i in row) for row in prompt_ids
            ):
                raise ConfigError("components.clip.prompt_ids: a list of token-id lists, one per entity type")
            components["clip"] = text_encoder_from_config(saved["config"])
            components["prompt_ids"] = prompt_ids
            return components
        clip = load_text_encoder(config.clip_model)  # a CLIPModel: both towers
        if not isinstance(clip, CLIPModel):
            raise ConfigError(f"model.clip_model: promptmner needs a CLIP checkpoint, got a {type(clip).__name__}")
        components["clip"] = clip
        positions = cast(
            "CLIPTextConfig", clip.config.text_config
        ).max_position_embeddings  # the prompts are cut at CLIP's 77
        encoded = load_tokenizer(config.clip_model)(config.prompts, truncation=True, max_length=positions)
        components["prompt_ids"] = [list(row) for row in encoded["input_ids"]]
        return components

    def component_configs(self) -> dict[str, dict]:
        clip = {"config": self.clip.config.to_dict(), "prompt_ids": self.prompt_ids_list}
        return {**super().component_configs(), "clip": clip}

    def is_head_parameter(self, name: str) -> bool:
        return super().is_head_parameter(name) and not name.startswith(CLIP_PREFIX)

    # ------------------------------------------------------------------------- running

    def prompt_embeddings(self) -> torch.Tensor:
        """P1: ``t [K, d_p]``, the unit embeddings of the K prompts (CLIP's text tower, frozen), computed
        on the first call and reused while the device, dtype and weights stay the same."""
        clip = self.clip
        key = (self.prompt_ids.device, clip.text_projection.weight.dtype)
        if self._prompt_cache is not None and self._prompt_cache[0] == key:
            return self._prompt_cache[1]
        with torch.no_grad():
            hidden = clip.text_model(input_ids=self.prompt_ids, attention_mask=self.prompt_mask).last_hidden_state
            end = self.prompt_mask.sum(dim=1) - 1  # [K]: the end-of-text token, each prompt's last real token
            pooled = hidden[torch.arange(len(hidden), device=hidden.device), end]  # [K, d_text]
            embedded = clip.text_projection(pooled)  # [K, d_p]
            embedded = embedded / embedded.norm(dim=-1, keepdim=True)
        self._prompt_cache = (key, embedded)
        return embedded

    def forget_prompt_embeddings(self) -> None:
        """Drop the cached P1 (called after a state dict is loaded)."""
        self._prompt_cache = None

    def image_embedding(
        self, present: torch.Tensor, image_features: torch.Tensor | None, pixel_values: torch.Tensor | None
    ) -> torch.Tensor:
        """P2: ``v [B, d_p]``, the unit embedding of each post's first image (rows of posts without one: 0)."""
        clip = self.clip
        if pixel_values is not None:
            real = pixel_values[:, 0][present]  # [N, 3, H, W]: the real images only
            pooled = scatter_to_slots(clip.vision_model(pixel_values=real).pooler_output, present)  # [B, D]
        elif image_features is not None:
            pooled = image_features[:, 0]  # [B, D]: the cached pooled [CLS] of CLIP's vision tower
        else:
            raise ValueError(f"{type(self).__name__} needs image_features or pixel_values")
        embedded = clip.visual_projection(pooled.to(clip.visual_projection.weight.dtype))  # [B, d_p]
        embedded = embedded / embedded.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        return embedded * present.unsqueeze(-1).to(embedded.dtype)

    def visual_clues(
        self, image_mask: torch.Tensor, image_features: torch.Tensor | None, pixel_values: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """P1-P3: the clue distribution ``p [B, K]`` (uniform without an image), the prompt embeddings
        ``t [K, d_p]`` and ``present [B]`` (the post has an image)."""
        present = image_mask.bool()[:, 0]  # [B]: the one slot of the "first" layout
        prompts = self.prompt_embeddings()  # P1
        image = self.image_embedding(present, image_features, pixel_values)  # P2
        scale = self.clip.logit_scale.exp()
        similarity = scale * image @ prompts.to(image.dtype).T  # [B, K]
        clues = similarity.softmax(dim=-1)  # P3 (a zero image row gives the uniform, neutral clue)
        neutral = torch.full_like(clues, 1.0 / clues.size(-1))
        return torch.where(present.unsqueeze(-1), clues, neutral), prompts, present

    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        image_mask: torch.Tensor,
        image_features: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> PromptMnerOutput:
        clues, prompts, present = self.visual_clues(image_mask, image_features, pixel_values)  # P1-P3: [B, K]
        types = self.clue_projection(prompts.to(self.clue_projection.weight.dtype))  # [K, d]
        clue_vectors = clues.unsqueeze(-1) * types.unsqueeze(0)  # P4: [B, K, d]
        words = self.word_vectors(input_ids, attention_mask, word_starts, token_type_ids)  # P5: [B, n, d]
        scores = self.clue_query(words) @ clue_vectors.transpose(1, 2) / math.sqrt(self.hidden_size)  # [B, n, K]
        attended = scores.softmax(dim=-1) @ clue_vectors  # P6: [B, n, d]
        gate = torch.sigmoid(self.gate(torch.cat([words, attended], dim=-1)))  # P7
        fused = gate * attended * present[:, None, None].to(attended.dtype)  # no image: f_i = 0
        emissions = self.classifier(self.dropout(torch.cat([words, fused], dim=-1)))  # P8
        loss = self.crf(emissions, labels, word_mask) if labels is not None else None
        predictions = None if self.training else self.decode(emissions, word_mask)  # Viterbi when used
        return PromptMnerOutput(loss=loss, logits=emissions, predictions=predictions, clues=clues)
