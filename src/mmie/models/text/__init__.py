"""Text models: BERT-softmax and BERT-CRF (NER), BERT [CLS] and MTB (RE)."""

from mmie.models.text import bert_cls, bert_crf, bert_softmax, mtb  # noqa: F401
