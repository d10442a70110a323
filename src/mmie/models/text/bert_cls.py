"""BERT [CLS] relation classifier over text with entity markers (the "BERT" row of the MRE tables).

    x = "... <s> head words </s> ... <o> tail words </o> ..."   entity markers (mmie.features.text)
    p(r | x) = softmax(W h_[CLS] + b)

The markers tell the encoder which pair is meant (a post often holds several); without them a
[CLS] classifier could not tell two pairs of one post apart (OpenNRE's BERT encoder marks them the
same way). The markers are added to the tokenizer as special tokens and the embeddings resized.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import relation_processor
from mmie.models.base import RelationClassificationOutput
from mmie.models.registry import register_model
from mmie.models.text.configuration import BertClsConfig
from mmie.models.text.relation import MarkedRelationModel

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@register_model("bert_cls", config=BertClsConfig, processor=relation_processor)
class BertClsClassifier(MarkedRelationModel):
    """BERT [CLS] RE: a linear classifier over the [CLS] vector of the marked text."""

    def __init__(self, config: BertClsConfig, labels: list[str], text_encoder: PreTrainedModel) -> None:
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
