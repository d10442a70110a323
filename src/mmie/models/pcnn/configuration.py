"""PCNN's config (Zeng et al., EMNLP 2015, sec. 3 and Table 1): the text row "PCNN" of the MRE tables.

It reads words (:class:`~mmie.features.settings.WordInputs`): its vocabulary is built from the
training split and it has no pretrained text encoder (``encoder: none``); pretrained word vectors
come from a GloVe / word2vec text file named by ``word_vectors`` (the paper: 50-d word2vec), else
the embeddings start random. Defaults are the paper's Table 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from mmie.features.settings import WordInputs
from mmie.models.base import ModelConfig


# WordInputs first: its max_length (words per post) must win over the sub-word one of ModelConfig's base.
class PcnnConfig(WordInputs, ModelConfig):
    name: str = "pcnn"
    encoder: Literal["none"] = Field(
        "none", description="no pretrained text encoder: word and position embeddings and a CNN, trained from scratch"
    )
    lowercase: bool = Field(True, description="look words up lowercased (word2vec / GloVe vectors are)")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="dropout before the classifier (Table 1: 0.5)")
    word_dim: int = Field(50, ge=1, description="word embedding size (Table 1: 50; the word_vectors file must have it)")
    word_vectors: Path | None = Field(
        None, description="GloVe / word2vec text file initializing the word embeddings; null: random initialization"
    )
    position_dim: int = Field(5, ge=1, description="size of each of the two position embeddings (Table 1: 5)")
    max_distance: int = Field(
        60, ge=1, description="relative distances are clipped to +-max_distance (one embedding each)"
    )
    filters: int = Field(230, ge=1, description="convolution filters n (Table 1: 230)")
    window: int = Field(3, ge=1, description="convolution window w, in words (Table 1: 3)")
