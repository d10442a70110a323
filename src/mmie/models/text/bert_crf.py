"""BERT-CRF tagger: BERT-softmax's word scores as the emissions of a linear-chain CRF.

    e_i = W h_{first(i)} + b                                    emissions, as in BERT-softmax
    s(x, y) = start[y_1] + sum_i e_i[y_i] + sum_i T[y_i, y_{i+1}] + end[y_n]
    loss = -log p(y | x) = log sum_y' exp s(x, y') - s(x, y)   (pytorch-crf's forward algorithm)
    y* = argmax over valid BIO sequences of s(x, y)              (constrained Viterbi, layers/crf.py)

The text baseline "BERT-CRF" of the MNER papers (MNER-MI paper, sec. 5.1) and the decoder of
TPM-MI (sec. 4.6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mmie.features.collate import IGNORE_INDEX
from mmie.features.processor import ner_processor
from mmie.models.base import ModelConfig, TokenClassificationOutput
from mmie.models.layers.crf import ConstrainedCRF
from mmie.models.registry import register_model
from mmie.models.text.bert_softmax import BertSoftmaxTagger
from mmie.models.text.configuration import BertCrfConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@register_model("bert_crf", config=BertCrfConfig, processor=ner_processor)
class BertCrfTagger(BertSoftmaxTagger):
    """BERT-CRF NER: word emissions from BERT, BIO-constrained CRF decoding."""

    def __init__(self, config: ModelConfig, labels: list[str], text_encoder: PreTrainedModel) -> None:
        super().__init__(config, labels, text_encoder)
        self.crf = ConstrainedCRF(labels)

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
        emissions = self.classifier(self.dropout(words))
        loss = self.crf(emissions, labels, word_mask) if labels is not None else None
        predictions = None
        if not self.training:  # Viterbi only when the result is used
            predictions = self.decode(emissions, word_mask)
        return TokenClassificationOutput(loss=loss, logits=emissions, predictions=predictions)

    def decode(self, emissions: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """Constrained Viterbi paths as ``[batch, words]`` label ids, -100 past each post's end."""
        return self.crf.decode_padded(emissions, word_mask, IGNORE_INDEX)
