"""One-pass MTB: every candidate pair of a post classified from a single encoder pass.

The approximation of PURE's relation model (Zhong & Chen, "A Frustratingly Easy Approach for Entity
and Relation Extraction", NAACL 2021, sec. 4.3 "Efficient batch computations"), with the markers
PL-Marker calls "levitated" (Ye et al., "Packed Levitated Marker for Entity and Relation
Extraction", ACL 2022, sec. 3.2):

    row  = x ; m_1 ; ... ; m_K            the post x once, then the markers of its K pairs
    m_k  = <s> </s> <o> </o>              pair k's head start/end, tail start/end (4 tokens)
    pos(m_k) = (hs_k, he_k, ts_k, te_k)   each marker shares the position id of the sub-word it
                                          marks (its entity's first / last sub-word)
    A[q, k] = 1  iff  k in x, or q and k are markers of the same pair     (attention mask)
    H = Encoder(row, pos, A)                                             one pass per post
    r_k = [H_<s>_k ; H_<o>_k]             MTB's entity-start representation (Baldini Soares et al.)
    r_k = [H_<s>_k ; H_<o>_k ; H_hs_k ; H_ts_k]   ``pair_representation: markers_and_entities``: and
                                          the head's and tail's first text sub-words, the entities as
                                          the post reads them (the start of PURE's span vector)
    r_k = [H_<s>_k ; H_</s>_k ; H_<o>_k ; H_</o>_k]   ``pair_representation: start_and_end_markers``:
                                          each entity's start and end markers, PL-Marker's pair vector
                                          (its relation model concatenates both markers of the subject
                                          and of the object)
    r_k = LayerNorm(r_k)                  optional (``post_layer: layer_norm``), as in MTB
    p(r | x, pair k) = softmax(W r_k + b)

With ``packing: subject`` the text is read once per head entity instead (PL-Marker's
subject-oriented packing): the head is marked in the text as MTB marks it, each of its tails
levitates its two markers, and r_k = [H_<s> ; H_<o>_k] takes the head's marker from the text:

    row  = x_h ; o_1 ; ... ; o_K          x_h: the post with <s> head </s>; o_k = <o> </o> at tail k

With ``packing: cover`` (an mmie extension of subject packing) a pair may also be read from its tail's
segment, the tail marked in the text and the head levitated, by a second classifier:

    p(r | x, pair k) = softmax(W' r_k + b')   r_k = [H_head_k ; H_tail_k], one of them in the text

and a post's segments are those of a few entities that cover its pairs (the collator's greedy
cover), so A->B and B->A are one segment, their partner's two markers levitated once. Training reads
each pair from both sides; under ``cover_training: probe`` (the default) the tail-side reads reach W'
only (stop-gradient on r_k), so the encoder is tuned by head-side reads as under subject packing and
W' fits on its vectors (``both``: the tail-side reads train the encoder too).

With ``text_reads_entities`` the post's entities (the spans its candidate pairs name) get markers of
their own, which the text reads (an mmie extension, PL-Marker's solid markers made levitated):

    row  = x ; e_1 ; ... ; e_E ; m_1 ; ... ; m_K     e_j = <e> </e>, at entity j's first / last sub-word
    A[q, k] = 1  iff  k in x or k in some e_j, or q and k are markers of the same pair

so the text knows where the entities are, not which pair is meant, and every pair of the post still
reads the same context: the post is read once, and a pair scores the same in any batch.

Text queries read only the text, so x is encoded as without markers; a pair's markers read the
text and each other, never another pair's: each r_k is what the post encoded for pair k alone would
give, at the cost of one pass (PURE reports 8.7x faster relation inference for ~1 point of F1).
Several posts share a row (``pack_length`` tokens, the collator's sequence packing), each reading
only itself with its own positions, so a row changes no vector: it only saves the padding.
The marker embeddings are MTB's (the same special tokens, added to the tokenizer). The packing is
done by the collator (:mod:`mmie.features.levitated`); this module reads its batch.

Deviation: a post longer than ``max_length`` sub-words is cut at the end (its pairs share one
text), and an entity cut off is marked at the last sub-word kept; MTB cuts around each pair instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from mmie.features.processor import levitated_relation_processor
from mmie.models.base import RelationClassificationOutput
from mmie.models.layers.positions import encode_at_positions
from mmie.models.registry import register_model
from mmie.models.text.configuration import MtbLevitatedConfig
from mmie.models.text.relation import MarkedRelationModel

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@register_model("mtb_levitated", config=MtbLevitatedConfig, processor=levitated_relation_processor)
class MtbLevitatedClassifier(MarkedRelationModel):
    """One-pass MTB RE: start markers of every pair levitated after the post, one encoder pass per post."""

    reads_post_once: ClassVar[bool] = True

    def __init__(self, config: MtbLevitatedConfig, labels: list[str], text_encoder: PreTrainedModel) -> None:
        super().__init__(config, labels, text_encoder)
        self.pair_representation = config.pair_representation
        width = (2 if self.pair_representation == "markers" else 4) * self.hidden_size
        self.dropout = nn.Dropout(config.dropout)
        self.post_layer = nn.LayerNorm(width) if config.post_layer == "layer_norm" else nn.Identity()
        self.classifier = nn.Linear(width, len(labels))
        # cover packing: a pair read from its tail's segment (tail marked, head levitated) gets its own
        # classifier, W' of the module docstring; r keeps the order [head ; tail] either way
        self.inverse_classifier = nn.Linear(width, len(labels)) if config.packing == "cover" else None
        # cover_training: probe (the default): W' learns from the encoder's vectors without changing them
        self.inverse_reads_train_encoder = config.cover_rule != "probe"

    def encode_rows(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[posts, L, hidden]``: one pass over the packed rows, under the mask A of the collator."""
        dtype = self.text_encoder.dtype
        # A [posts, L, L] (True: may read) -> the additive mask [posts, 1, L, L] HF takes as given
        # (0 where allowed, the dtype's minimum elsewhere; a 4-D mask is not rebuilt from padding).
        blocked = ~attention_mask[:, None].bool()
        additive = torch.zeros(blocked.shape, dtype=dtype, device=blocked.device)
        additive = additive.masked_fill(blocked, torch.finfo(dtype).min)
        return encode_at_positions(self.text_encoder, input_ids, additive, position_ids, token_type_ids)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        pair_row: torch.Tensor,
        head_marker: torch.Tensor,
        tail_marker: torch.Tensor,
        head_token: torch.Tensor,
        tail_token: torch.Tensor,
        head_end_marker: torch.Tensor | None = None,
        tail_end_marker: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inverse: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> RelationClassificationOutput:
        hidden = self.encode_rows(input_ids, attention_mask, position_ids, token_type_ids)  # [posts, L, d]
        parts = [hidden[pair_row, head_marker], hidden[pair_row, tail_marker]]  # [pairs, d] each: H_<s>_k, H_<o>_k
        if self.pair_representation == "markers_and_entities":
            parts += [hidden[pair_row, head_token], hidden[pair_row, tail_token]]  # H_hs_k, H_ts_k
        elif self.pair_representation == "start_and_end_markers":
            if head_end_marker is None or tail_end_marker is None:
                raise ValueError("start_and_end_markers needs the batch's end markers (the levitated collator's)")
            ends = [hidden[pair_row, head_end_marker], hidden[pair_row, tail_end_marker]]  # H_</s>_k, H_</o>_k
            parts = [parts[0], ends[0], parts[1], ends[1]]
        relation = self.post_layer(torch.cat(parts, dim=-1))  # [pairs, 2d] or [pairs, 4d]
        relation = self.dropout(relation)
        logits = self.classifier(relation)
        if self.inverse_classifier is not None:
            if inverse is None:
                raise ValueError("packing: cover needs the batch's inverse flags (the cover collator's)")
            inverse_input = relation if self.inverse_reads_train_encoder else relation.detach()
            logits = torch.where(inverse[:, None], self.inverse_classifier(inverse_input), logits)  # [pairs, labels]
        return RelationClassificationOutput(loss=self.loss(logits, labels), logits=logits)
