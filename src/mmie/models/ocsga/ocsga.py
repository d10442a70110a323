"""OCSGA: "Multimodal Representation with Embedded Visual Guiding Objects for Named Entity Recognition
in Social Media Posts" (Wu et al., ACM MM 2020).

The image enters as the labels of the objects a detector finds in it ("visual guiding objects"),
embedded in the same space as the words, and a dense co-attention lets the words attend to them:

    H = [h_first(1) .. h_first(n)] = BERT(x)                   words of the post            (O1)
    o_k = mean_t BERT(label_k)_t,  k = 1..K                     each object label, as text   (O2)
    X^0 = H, Y^0 = O;  X^l, Y^l, A^l = DCA(X^{l-1}, Y^{l-1})    dense co-attention           (O3)
                                   (layers/co_attention.py: object SA, word SA, words -> objects)
    g_i = sigmoid(W_g [h_i ; x_i^L] + b_g)                      gate per word                (O4)
    f_i = g_i * x_i^L  (0 for a post without objects)           gated visual-guided features (O5)
    e_i = W [h_i ; f_i] + b;  CRF over e                        emissions, BIO-constrained   (O6)

(O1)-(O6) are this file's numbers: the paper is not in shared/papers and no code of its authors was
found, so this follows its description as the MNER-MI paper summarises it (sec. 5.1: "uses an object
detector to extract the objects in the image and use the text labels of these objects as the image
representation") and the brief of mmie's issue: object labels as text, dense co-attention, gated
fusion, CRF. The labels come from the provider of ``model.image_text`` (its ``tags``), read by the
processor, the first image's by default (the MNER-MI paper runs OCSGA on the first image only).

Deviations: the original tagger is a BiLSTM over word and character embeddings and embeds the labels
with the same word embeddings; here the text encoder (``model.encoder``) embeds both, each label as
the mean of its sub-word vectors; the number of objects (``max_objects``) and of co-attention layers
(``co_attention_layers``) are mmie's defaults, not the paper's (not at hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import object_label_ner_processor
from mmie.models.base import TokenClassificationOutput
from mmie.models.layers.co_attention import DenseCoAttention
from mmie.models.ocsga.configuration import OcsgaConfig
from mmie.models.registry import register_model
from mmie.models.text.bert_crf import BertCrfTagger

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class OcsgaOutput(TokenClassificationOutput):
    """NER output plus ``object_attention`` ``[batch, heads, words, objects]``: the last co-attention
    layer's word-to-object weights A^L (0 on padded objects; a post without objects reads none)."""

    object_attention: torch.Tensor | None = None


@register_model("ocsga", config=OcsgaConfig, processor=object_label_ner_processor)
class OcsgaTagger(BertCrfTagger):
    """OCSGA NER: words guided by the image's object labels (as text) through dense co-attention, gated, CRF."""

    output_class = OcsgaOutput

    def __init__(self, config: OcsgaConfig, labels: list[str], text_encoder: PreTrainedModel) -> None:
        super().__init__(config, labels, text_encoder)  # encoder, dropout and the CRF
        self.co_attention = DenseCoAttention(text_encoder.config, config.co_attention_layers)  # O3
        self.gate = nn.Linear(2 * self.hidden_size, self.hidden_size)  # O4
        self.classifier = nn.Linear(2 * self.hidden_size, len(labels))  # O6: over [h_i ; f_i]

    def embed_objects(self, object_ids: torch.Tensor, object_attention_mask: torch.Tensor) -> torch.Tensor:
        """O2: ``[B, K, T]`` label sub-words -> ``[B, K, d]``, each label the mean of its sub-word vectors."""
        batch, objects, tokens = object_ids.shape
        flat_mask = object_attention_mask.reshape(batch * objects, tokens)  # [B*K, T]
        hidden = self.encode_text(object_ids.reshape(batch * objects, tokens), flat_mask)  # [B*K, T, d]
        weights = flat_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # [B*K, d]
        return pooled.reshape(batch, objects, -1)  # [B, K, d]

    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        object_ids: torch.Tensor,
        object_attention_mask: torch.Tensor,
        object_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> OcsgaOutput:
        words = self.word_vectors(input_ids, attention_mask, word_starts, token_type_ids)  # O1: [B, n, d]
        objects = self.embed_objects(object_ids, object_attention_mask)  # O2: [B, K, d]
        guided, attention = self.co_attention(words, word_mask, objects, object_mask)  # O3
        gate = torch.sigmoid(self.gate(torch.cat([words, guided], dim=-1)))  # O4
        has_objects = object_mask.bool().any(dim=1)[:, None, None].to(guided.dtype)  # [B, 1, 1]
        fused = gate * guided * has_objects  # O5
        emissions = self.classifier(self.dropout(torch.cat([words, fused], dim=-1)))  # O6
        loss = self.crf(emissions, labels, word_mask) if labels is not None else None
        predictions = None if self.training else self.decode(emissions, word_mask)  # Viterbi when used
        attention = attention * object_mask.bool()[:, None, None, :] * has_objects[..., None]
        return OcsgaOutput(loss=loss, logits=emissions, predictions=predictions, object_attention=attention)
