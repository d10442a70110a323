"""What every mmie model shares: its typed config, its parts, its outputs and its inputs.

A model is an ``nn.Module`` with a text encoder (any Hugging Face ``AutoModel``) and a task head,
or, for the word-level models (the BiLSTM taggers), embeddings of the words of a vocabulary built
from the training split and its own encoder trained from scratch (no ``text_encoder`` part).
Its ``forward`` takes the batch dict built by its processor (:mod:`mmie.features.processor`, bound
to the model's name in :mod:`mmie.models.registry`) as keyword arguments and returns an output
dataclass whose ``loss`` is set only when labels are given. The model never sees files or records.

Multimodal models plug in the same way: they add parts in :meth:`ExtractionModel.build_components`
(and their configs in :meth:`ExtractionModel.component_configs`), and inputs such as
``pixel_values``/``image_mask`` through their processor and ``forward`` arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import Field
from torch import nn
from transformers.utils import ModelOutput

from mmie.encoders.text import (
    DEFAULT_TEXT_ENCODER,
    grow_token_embeddings,
    load_text_encoder,
    text_encoder_from_config,
)
from mmie.features.settings import InputSettings

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mmie.features.processor import TextVocabulary

# Parameters whose names start with this belong to the pretrained text encoder; the rest is the
# task head (trained from scratch, often with a higher learning rate).
TEXT_ENCODER_PREFIX = "text_encoder."


class ModelConfig(InputSettings):
    """Settings every model has (``name`` and ``max_length`` come from :class:`InputSettings`).
    Subclasses add their own and inherit the input settings of their inputs; unknown keys are errors."""

    encoder: str = Field(DEFAULT_TEXT_ENCODER, description="text encoder: alias, Hugging Face id or folder")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout before the task head")


@dataclass
class TokenClassificationOutput(ModelOutput):
    """NER output. ``logits``: word-level scores ``[batch, words, labels]`` (CRF emissions);
    ``predictions``: decoded label ids ``[batch, words]``, -100 past each post's last word."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    predictions: torch.Tensor | None = None


@dataclass
class RelationClassificationOutput(ModelOutput):
    """RE output. ``logits``: ``[batch, relation labels]``."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class ExtractionModel(nn.Module):
    """Base class of every registered model."""

    task: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    registry_name: ClassVar[str]
    # What forward returns, and the field of it that model selection reads: NER models decode in
    # forward ("predictions"), RE models are read from their "logits".
    output_class: ClassVar[type[ModelOutput]]
    selected_output: ClassVar[str] = "logits"
    # An RE model that reads a post once for all its candidate pairs (its collator packs a post's
    # pairs in one row): the Extractor then keeps every post's pairs in one batch.
    reads_post_once: ClassVar[bool] = False
    # The pretrained text encoder and its width; word-level models have neither (no text_encoder).
    text_encoder: PreTrainedModel
    hidden_size: int

    def __init__(self, config: ModelConfig, labels: list[str], text_encoder: PreTrainedModel | None = None) -> None:
        super().__init__()
        # Not `self.config`: transformers' Trainer treats a `config` attribute as a PretrainedConfig.
        self.model_config = config
        self.labels = list(labels)
        if text_encoder is not None:
            self.text_encoder = text_encoder
            self.hidden_size = text_encoder.config.hidden_size

    # ------------------------------------------------------------------ building and saving

    @classmethod
    def build_components(cls, config: ModelConfig, component_configs: dict[str, dict] | None = None) -> dict:
        """The pretrained parts, keyword arguments of ``__init__``: loaded with their weights, or
        built empty from ``component_configs`` (a saved model folder) for its weights to load into."""
        if component_configs is not None:
            return {"text_encoder": text_encoder_from_config(component_configs["text_encoder"])}
        return {"text_encoder": load_text_encoder(config.encoder)}

    def component_configs(self) -> dict[str, dict]:
        """What ``build_components`` needs to rebuild the parts offline, without their weights."""
        return {"text_encoder": self.text_encoder.config.to_dict()}

    def fit_vocabulary(self, tokenizer: TextVocabulary) -> None:
        """Fit the input embeddings to what the inputs are read with (a new model only, not one whose
        weights are loaded after): grow them when the tokenizer gained tokens (entity markers; new
        rows start near the mean). Word-level models fill theirs from pretrained word vectors."""
        vocabulary_size = len(tokenizer)
        if self.text_encoder.get_input_embeddings().num_embeddings != vocabulary_size:
            grow_token_embeddings(self.text_encoder, vocabulary_size)

    # ------------------------------------------------------------------------- running

    def encode_text(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Contextual sub-word vectors ``[batch, tokens, hidden]``."""
        inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        return self.text_encoder(**inputs).last_hidden_state

    def is_head_parameter(self, name: str) -> bool:
        """True for parameters trained from scratch (not part of a pretrained encoder)."""
        return not name.startswith(TEXT_ENCODER_PREFIX)


def gather_positions(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``hidden[b, positions[b, i]]``: ``[batch, tokens, d]`` x ``[batch, n]`` -> ``[batch, n, d]``."""
    index = positions.unsqueeze(-1).expand(-1, -1, hidden.size(-1))
    return hidden.gather(1, index)
