"""ITA: Image-Text Alignments for multimodal NER (Wang et al., NAACL 2022; Alibaba-NLP/KB-NER, ``ITA/``).

The image is aligned into the textual space: its object tags, its caption and its OCR text (VinVL and
Tesseract in the paper; any provider of :mod:`mmie.imagetext` here) are written as words after the
post, and one pretrained text encoder reads both, so its self-attention relates words to image
text directly. Two views of each post x (built by the processor, :mod:`mmie.features.image_text_words`):

    x' = [CLS] x [SEP] caption [SEP] tags [SEP] ocr [SEP]     image-text view (cross-modal input)
    x  = [CLS] x [SEP]                                        text view
    e'_i = W h'_{first(i)} + b,   e_i = W h_{first(i)} + b    emissions of the post's words only: the
                                                              appended words carry no label
    L_NLL(x') = -log p_CRF(y | x'),  L_NLL(x) = -log p_CRF(y | x)            (one CRF, shared)
    q'_i = softmax((alpha'_i + beta'_i) / T),  q_i = softmax((alpha_i + beta_i) / T)
                                                              CRF marginals (forward-backward) of word i
    L_CVA = T^2 / B * sum_b sum_i KL(stopgrad(q'_i) || q_i)   cross-view alignment: the text view
                                                              learns the image-text view's marginals
    L = L_NLL(x) + (1 - lambda) L_NLL(x') + lambda L_CVA

Prediction decodes the image-text view (``predict_view``; ``text`` decodes the post alone, the
paper's "ITA without images"). The loss weights are the authors' trainer's (``finetune_trainer.py``:
a batch of the image-text corpus costs (1 - multi_view_rate) NLL + multi_view_rate KL, a batch of
the text corpus its NLL; ``multi_view_rate`` 0.5), the KL over marginals their ``distill_posterior``
(``sequence_tagger_model.py``, temperature 2 on Twitter-2017, 4 on Twitter-2015).

Deviations: the two views of a post are in one batch and one loss (the authors concatenate the two
corpora and draw each batch from one of them: the same terms, summed per post instead of per batch);
the paper's encoder is XLM-R large (``model.encoder`` names any); image text longer than the budget
is cut from its end (``longest_first``: the post keeps its words unless it is the longer side).
The paper text was not at hand here: the names of the terms follow the authors' code, not the
paper's equation numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmie.features.processor import appended_text_ner_processor
from mmie.models.base import TokenClassificationOutput
from mmie.models.ita.configuration import ItaConfig
from mmie.models.registry import register_model
from mmie.models.text.bert_crf import BertCrfTagger

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@register_model("ita", config=ItaConfig, processor=appended_text_ner_processor)
class ItaTagger(BertCrfTagger):
    """ITA NER: BERT-CRF over the post with its image text appended, aligned with the text-only view."""

    def __init__(self, config: ItaConfig, labels: list[str], text_encoder: PreTrainedModel) -> None:
        super().__init__(config, labels, text_encoder)  # encoder, dropout, classifier W, b and the CRF
        self.alignment_weight = config.alignment_weight
        self.temperature = config.temperature
        self.predict_view = config.predict_view

    def emissions(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_starts: torch.Tensor,
        token_type_ids: torch.Tensor | None,
    ) -> torch.Tensor:
        """``[batch, words, labels]``: e_i = W h_{first(i)} + b over the post's words of one view."""
        return self.classifier(self.dropout(self.word_vectors(input_ids, attention_mask, word_starts, token_type_ids)))

    def alignment_loss(self, image_text: torch.Tensor, text: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """L_CVA: T^2 / B * sum KL(stopgrad(q') || q) over the CRF marginals of the post's words."""
        temperature = self.temperature
        teacher = (self.crf.marginal_scores(image_text, word_mask).detach() / temperature).softmax(-1)  # q'
        student = (self.crf.marginal_scores(text, word_mask) / temperature).log_softmax(-1)  # log q
        divergence = nn.functional.kl_div(student, teacher, reduction="none").sum(-1)  # [B, words]
        return (divergence * word_mask).sum() * temperature**2 / max(word_mask.size(0), 1)

    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_starts: torch.Tensor,
        word_mask: torch.Tensor,
        text_input_ids: torch.Tensor,
        text_attention_mask: torch.Tensor,
        text_word_starts: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        text_token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> TokenClassificationOutput:
        image_text_view = labels is not None or self.predict_view == "image_text"
        text_view = labels is not None or self.predict_view == "text"
        cross = self.emissions(input_ids, attention_mask, word_starts, token_type_ids) if image_text_view else None
        text = (
            self.emissions(text_input_ids, text_attention_mask, text_word_starts, text_token_type_ids)
            if text_view
            else None
        )
        loss = None
        if labels is not None:
            assert cross is not None and text is not None
            weight = self.alignment_weight
            loss = self.crf(text, labels, word_mask) + (1 - weight) * self.crf(cross, labels, word_mask)
            if weight > 0:
                loss = loss + weight * self.alignment_loss(cross, text, word_mask)
        emissions = cross if self.predict_view == "image_text" else text
        assert emissions is not None
        predictions = None if self.training else self.decode(emissions, word_mask)  # Viterbi when used
        return TokenClassificationOutput(loss=loss, logits=emissions, predictions=predictions)
