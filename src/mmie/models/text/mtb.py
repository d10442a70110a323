"""MTB, "Matching the Blanks" (Baldini Soares et al., 2019, sec. 3.3 "entity start" variant).

    x = "... <s> head words </s> ... <o> tail words </o> ..."   entity markers (mmie.features.text)
    r = [h_<s> ; h_<o>]                                         the two start-marker vectors (2d)
    r = LayerNorm(r)                                            optional (``post_layer: layer_norm``)
    p(r | x) = softmax(W r + b)

The paper puts either a plain linear layer or a layer normalization after the Transformer and
treats that choice as a hyper-parameter per task; ``post_layer`` is that choice (default linear).

The strongest text baseline of the MRE tables (MRE-MI paper, sec. 5.1, Table 2; FocalMRE, sec. 4).
The processor guarantees both start markers are in the input, truncation included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import relation_processor
from mmie.models.base import RelationClassificationOutput
from mmie.models.registry import register_model
from mmie.models.text.configuration import MtbConfig
from mmie.models.text.relation import MarkedRelationModel

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@register_model("mtb", config=MtbConfig, processor=relation_processor)
class MtbClassifier(MarkedRelationModel):
    """MTB RE: a linear classifier over the concatenated head and tail start-marker vectors."""

    def __init__(self, config: MtbConfig, labels: list[str], text_encoder: PreTrainedModel) -> None:
        super().__init__(config, labels, text_encoder)
        self.dropout = nn.Dropout(config.dropout)
        self.post_layer = nn.LayerNorm(2 * self.hidden_size) if config.post_layer == "layer_norm" else nn.Identity()
        self.classifier = nn.Linear(2 * self.hidden_size, len(labels))

    def entity_starts(self, hidden: torch.Tensor, head_start: torch.Tensor, tail_start: torch.Tensor) -> torch.Tensor:
        """``[batch, 2 * hidden]``: the head and tail start-marker vectors side by side."""
        return self.marker_vectors(hidden, head_start, tail_start).flatten(1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_start: torch.Tensor,
        tail_start: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> RelationClassificationOutput:
        hidden = self.encode_text(input_ids, attention_mask, token_type_ids)
        relation = self.post_layer(self.entity_starts(hidden, head_start, tail_start))  # [batch, 2 * hidden]
        logits = self.classifier(self.dropout(relation))
        return RelationClassificationOutput(loss=self.loss(logits, labels), logits=logits)
