"""PCNN: Piecewise Convolutional Neural Network (Zeng et al., EMNLP 2015, sec. 3), one sentence at a time.

The text row "PCNN" of the MRE-MI paper's Table 2 and the FocalMRE paper's Table 1:

    q_i = [e_w(word_i); e_p1(d(i, e1)); e_p2(d(i, e2))]       word + two position embeddings  (sec. 3.2)
    c_ij = W_j q_{i-w+1 .. i} + b_j      j = 1..n filters, window w, zero-padded ends         (sec. 3.3, eq. 1-2)
    p_jk = max_{i in piece k} c_ij       k = 1, 2, 3: the text cut at the two entities        (sec. 3.3.3, eq. 3)
    g = tanh([p_1; p_2; p_3])            [3n]                                                  (eq. 4)
    o = W_1 (g ∘ r) + b,  r ~ Bernoulli(1 - dropout)                                           (sec. 3.4, eq. 5)
    loss = cross-entropy (one label per pair; no multi-instance bag)

The three pieces (:mod:`mmie.features.word_relations`): up to the end of the entity that comes
first, then up to the end of the second, then the rest; a piece with no word pools to 0.

Deviation, on purpose: the paper trains on bags of sentences of one entity pair (distant
supervision, multi-instance learning, sec. 3.4); MRE data label each sentence, so each pair is its
own bag of one, which is plain cross-entropy. Word vectors: a file by path (``word_vectors``) or
random initialization (nothing is downloaded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.errors import ConfigError
from mmie.features.processor import word_relation_processor
from mmie.models.base import ModelConfig, RelationClassificationOutput
from mmie.models.layers.word_embeddings import fit_word_embeddings
from mmie.models.pcnn.configuration import PcnnConfig
from mmie.models.registry import register_model
from mmie.models.text.relation import MarkedRelationModel

if TYPE_CHECKING:
    from mmie.features.processor import TextVocabulary

PIECES = 3


@register_model("pcnn", config=PcnnConfig, processor=word_relation_processor)
class PcnnClassifier(MarkedRelationModel):
    """PCNN RE: word and position embeddings, a convolution, max pooling over three pieces split at the entities."""

    model_config: PcnnConfig

    def __init__(self, config: PcnnConfig, labels: list[str]) -> None:
        super().__init__(config, labels)
        if config.vocabulary_size is None:
            raise ConfigError(
                "model.vocabulary_size: pcnn takes its vocabulary's size from its processor: "
                "build it from create_processor(...).config (or a saved model's config)"
            )
        self.word_embeddings = nn.Embedding(config.vocabulary_size, config.word_dim, padding_idx=0)
        positions = 2 * config.max_distance + 2  # -D .. D, and 0 for padding
        self.head_positions = nn.Embedding(positions, config.position_dim, padding_idx=0)  # e_p1
        self.tail_positions = nn.Embedding(positions, config.position_dim, padding_idx=0)  # e_p2
        width = config.word_dim + 2 * config.position_dim
        # padding w // 2 each side keeps one output per word for odd windows (the paper pads with zeros)
        self.convolution = nn.Conv1d(width, config.filters, config.window, padding=config.window // 2)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(PIECES * config.filters, len(labels))

    # ------------------------------------------------------------------ building and saving

    @classmethod
    def build_components(cls, config: ModelConfig, component_configs: dict[str, dict] | None = None) -> dict:
        return {}  # nothing pretrained to load: the config has every size, the saved weights the rest

    def component_configs(self) -> dict[str, dict]:
        return {}

    def fit_vocabulary(self, tokenizer: TextVocabulary) -> None:
        config = self.model_config
        fit_word_embeddings(self.word_embeddings, tokenizer, config.word_vectors, config.word_dim, config.name)

    # ------------------------------------------------------------------------- running

    def convolve(
        self, word_ids: torch.Tensor, head_position: torch.Tensor, tail_position: torch.Tensor
    ) -> torch.Tensor:
        """Eq. 1-2: ``c [B, n, filters]``, one vector per word."""
        q = torch.cat(
            [self.word_embeddings(word_ids), self.head_positions(head_position), self.tail_positions(tail_position)],
            dim=-1,
        )  # [B, n, d_w + 2 d_p]
        # Conv1d reads [B, channels, n]: transpose in, transpose back; an even window gives n + 1, cut to n
        return self.convolution(q.transpose(1, 2)).transpose(1, 2)[:, : word_ids.shape[1]]

    @staticmethod
    def piecewise_max(c: torch.Tensor, piece_ids: torch.Tensor) -> torch.Tensor:
        """Eq. 3: ``c [B, n, filters]``, ``piece_ids [B, n]`` (1..3, 0 padding) -> ``p [B, 3, filters]`` (0 for an empty piece)."""
        pooled = []
        for piece in range(1, PIECES + 1):
            inside = (piece_ids == piece).unsqueeze(-1)  # [B, n, 1]
            best = c.masked_fill(~inside, torch.finfo(c.dtype).min).amax(dim=1)  # [B, filters]
            pooled.append(torch.where(inside.any(dim=1), best, torch.zeros_like(best)))
        return torch.stack(pooled, dim=1)

    def forward(
        self,
        word_ids: torch.Tensor,
        head_position: torch.Tensor,
        tail_position: torch.Tensor,
        piece_ids: torch.Tensor,
        word_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> RelationClassificationOutput:
        c = self.convolve(word_ids.long(), head_position.long(), tail_position.long())
        g = torch.tanh(self.piecewise_max(c, piece_ids.long()).flatten(1))  # eq. 4, [B, 3 * filters]
        logits = self.classifier(self.dropout(g))  # eq. 5
        return RelationClassificationOutput(loss=self.loss(logits, labels), logits=logits)
