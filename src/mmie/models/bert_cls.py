"""BERT [CLS] relation classifier over text with entity markers (the "BERT" row of the MRE tables).

    x = "... <s> head words </s> ... <o> tail words </o> ..."   entity markers (features.py)
    p(r | x) = softmax(W h_[CLS] + b)

The markers tell the encoder which pair is meant (a post often holds several); without them a
[CLS] classifier could not tell two pairs of one post apart (OpenNRE's BERT encoder marks them the
same way). The markers are added to the tokenizer as special tokens and the embeddings resized.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pydantic import Field
from torch import nn

from mmie.errors import ConfigError
from mmie.models.base import ExtractionModel, ModelConfig, RelationClassificationOutput
from mmie.models.registry import register_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from mmie.data.images import ImageDirs
    from mmie.training.features import Featurizer

# Head start, head end, tail start, tail end ("s" for subject, "o" for object).
DEFAULT_MARKERS = ("<s>", "</s>", "<o>", "</o>")
# Used when the default markers are already special tokens of the tokenizer (RoBERTa's <s>, </s>).
FALLBACK_MARKERS = ("[E1]", "[/E1]", "[E2]", "[/E2]")


class RelationModelConfig(ModelConfig):
    markers: tuple[str, str, str, str] | None = Field(
        None,
        description="head start, head end, tail start, tail end markers; default <s> </s> <o> </o> "
        "(or [E1] [/E1] [E2] [/E2] when the tokenizer already uses <s>/</s>)",
    )


class BertClsConfig(RelationModelConfig):
    name: str = "bert_cls"


def add_marker_tokens(tokenizer: PreTrainedTokenizerBase, markers: tuple[str, ...] | None) -> tuple[str, ...]:
    """Add the entity markers to ``tokenizer`` as special tokens; returns the markers used."""
    if markers is None:
        taken = set(tokenizer.all_special_tokens)
        markers = FALLBACK_MARKERS if taken.intersection(DEFAULT_MARKERS) else DEFAULT_MARKERS
    markers = tuple(markers)
    if len(set(markers)) != 4:
        raise ConfigError(f"model.markers: four different markers are needed, got {list(markers)}")
    tokenizer.add_tokens(list(markers), special_tokens=True)
    for marker in markers:
        ids = tokenizer.convert_tokens_to_ids([marker])
        if len(tokenizer.tokenize(marker)) != 1 or ids[0] == tokenizer.unk_token_id:
            raise ConfigError(f"model.markers: {marker!r} does not become one token of the tokenizer")
    return markers


class MarkedRelationModel(ExtractionModel):
    """Shared by the relation models: entity markers in the tokenizer and the featurizer."""

    task = "re"
    config_class = RelationModelConfig

    @classmethod
    def prepare_tokenizer(cls, tokenizer: PreTrainedTokenizerBase, config: ModelConfig) -> ModelConfig:
        markers = add_marker_tokens(tokenizer, config.markers)
        return config.model_copy(update={"markers": markers})

    @classmethod
    def featurizer(
        cls,
        tokenizer: PreTrainedTokenizerBase,
        config: ModelConfig,
        labels: list[str],
        images: ImageDirs | None = None,
    ) -> Featurizer:
        from mmie.training.features import RelationFeaturizer

        if config.markers is None:
            raise ConfigError("model.markers: not set (prepare_tokenizer was not called)")
        return RelationFeaturizer(tokenizer, labels, max_length=config.max_length, markers=config.markers)

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        return None if labels is None else nn.functional.cross_entropy(logits, labels)


@register_model("bert_cls")
class BertClsClassifier(MarkedRelationModel):
    """BERT [CLS] RE: a linear classifier over the [CLS] vector of the marked text."""

    config_class = BertClsConfig

    def __init__(self, config: ModelConfig, labels: list[str], text_encoder: PreTrainedModel) -> None:
        super().__init__(config, labels, text_encoder)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(self.hidden_size, len(labels))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> RelationClassificationOutput:
        # head_start / tail_start are part of every relation batch; this model reads only [CLS].
        hidden = self.encode_text(input_ids, attention_mask, token_type_ids)
        logits = self.classifier(self.dropout(hidden[:, 0]))
        return RelationClassificationOutput(loss=self.loss(logits, labels), logits=logits)
