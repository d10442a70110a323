"""BERT-softmax tagger (Devlin et al., 2019, sec. 5.3): a linear layer over each word's first sub-word.

    e_i = W h_{first(i)} + b          word i's label scores from its first sub-word vector
    y_i = argmax_y e_i[y]             independent decisions, no constraint between labels

Labels live on words, not sub-words: the processor gives each word's first sub-word position
(``word_starts``), the model gathers those vectors, so loss, predictions and metrics are per word.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.collate import IGNORE_INDEX
from mmie.features.processor import ner_processor
from mmie.models.base import ExtractionModel, ModelConfig, TokenClassificationOutput, gather_positions
from mmie.models.registry import register_model
from mmie.models.text.configuration import BertSoftmaxConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@register_model("bert_softmax", config=BertSoftmaxConfig, processor=ner_processor)
class BertSoftmaxTagger(ExtractionModel):
    """BERT-softmax NER: a linear classifier over each word's first sub-word."""

    task = "ner"
    output_class = TokenClassificationOutput
    selected_output = "predictions"

    def __init__(self, config: ModelConfig, labels: list[str], text_encoder: PreTrainedModel) -> None:
        super().__init__(config, labels, text_encoder)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(self.hidden_size, len(labels))

    def word_vectors(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_starts: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[batch, words, hidden]``: each word's first sub-word vector."""
        hidden = self.encode_text(input_ids, attention_mask, token_type_ids)
        return gather_positions(hidden, word_starts)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> TokenClassificationOutput:
        words = self.word_vectors(input_ids, attention_mask, word_starts, token_type_ids)
        logits = self.classifier(self.dropout(words))
        loss = None
        if labels is not None:
            # sum / count rather than mean: a batch of posts without any word gives 0, not NaN
            losses = nn.functional.cross_entropy(
                logits[word_mask], labels[word_mask], ignore_index=IGNORE_INDEX, reduction="sum"
            )
            loss = losses / (labels[word_mask] != IGNORE_INDEX).sum().clamp(min=1)
        predictions = logits.argmax(-1).masked_fill(~word_mask, IGNORE_INDEX)
        return TokenClassificationOutput(loss=loss, logits=logits, predictions=predictions)
