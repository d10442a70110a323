"""Configs of the text models: BERT-softmax and BERT-CRF (NER), BERT [CLS], MTB and one-pass MTB (RE)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mmie.features.settings import LevitatedInputs, MarkerInputs
from mmie.models.base import ModelConfig


class BertSoftmaxConfig(ModelConfig):
    name: str = "bert_softmax"


class BertCrfConfig(ModelConfig):
    name: str = "bert_crf"


class RelationModelConfig(ModelConfig, MarkerInputs):
    """Every relation model reads the text with entity markers (``markers``, see MarkerInputs)."""


class BertClsConfig(RelationModelConfig):
    name: str = "bert_cls"


class MtbConfig(RelationModelConfig):
    name: str = "mtb"
    post_layer: Literal["linear", "layer_norm"] = Field(
        "linear", description="after the Transformer: the classifier alone, or a layer norm of r before it"
    )


class MtbLevitatedConfig(MtbConfig, LevitatedInputs):
    """MTB's head over levitated markers: every pair of a post from one encoder pass."""

    name: str = "mtb_levitated"
    pair_representation: Literal["markers", "markers_and_entities", "start_and_end_markers"] = Field(
        "markers",
        description="r_k: the pair's head and tail start markers (MTB's); or those and the head's and tail's "
        "first text sub-words (the entities as the post reads them, PURE's entity-span start); or the head's "
        "and tail's start and end markers (PL-Marker's)",
    )
