"""MTB, "Matching the Blanks" (Baldini Soares et al., 2019, sec. 3.3 "entity start" variant).

    x = "... <s> head words </s> ... <o> tail words </o> ..."   entity markers (features.py)
    r = [h_<s> ; h_<o>]                                         the two start-marker vectors (2d)
    r = LayerNorm(r)                                            optional (``post_layer: layer_norm``)
    p(r | x) = softmax(W r + b)

The paper puts either a plain linear layer or a layer normalization after the Transformer and
treats that choice as a hyper-parameter per task; ``post_layer`` is that choice (default linear).

The strongest text baseline of the MRE tables (MRE-MI paper, sec. 5.1, Table 2; FocalMRE, sec. 4).
The featurizer guarantees both start markers are in the input, truncation included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from pydantic import Field
from torch import nn

from mmie.models.base import ModelConfig, RelationClassificationOutput, gather_positions
from mmie.models.bert_cls import MarkedRelationModel, RelationModelConfig
from mmie.models.registry import register_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class MtbConfig(RelationModelConfig):
    name: str = "mtb"
    post_layer: Literal["linear", "layer_norm"] = Field(
        "linear", description="after the Transformer: the classifier alone, or a layer norm of r before it"
    )


@register_model("mtb")
class MtbClassifier(MarkedRelationModel):
    """MTB RE: a linear classifier over the concatenated head and tail start-marker vectors."""

    config_class = MtbConfig

    def __init__(self, config: ModelConfig, labels: list[str], text_encoder: PreTrainedModel) -> None:
        super().__init__(config, labels, text_encoder)
        self.dropout = nn.Dropout(config.dropout)
        self.post_layer = nn.LayerNorm(2 * self.hidden_size) if config.post_layer == "layer_norm" else nn.Identity()
        self.classifier = nn.Linear(2 * self.hidden_size, len(labels))

    def entity_starts(
        self, hidden: torch.Tensor, head_start: torch.Tensor, tail_start: torch.Tensor
    ) -> torch.Tensor:
        """``[batch, 2 * hidden]``: the head and tail start-marker vectors side by side."""
        starts = gather_positions(hidden, torch.stack([head_start, tail_start], dim=1))
        return starts.flatten(1)

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
