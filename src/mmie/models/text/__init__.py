"""Text models: BERT-softmax and BERT-CRF (NER), BERT [CLS], MTB and one-pass MTB (RE)."""

from mmie.models.text import bert_cls, bert_crf, bert_softmax, mtb, mtb_levitated  # noqa: F401
