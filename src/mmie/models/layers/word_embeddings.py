"""The word-embedding table of the word-level models (BiLSTM taggers, PCNN), fitted to their vocabulary.

The table has one row per word of the training split's :class:`~mmie.features.words.WordVocabulary`;
the rows of the words a GloVe / word2vec text file has (``model.word_vectors``) are filled from it,
the others keep their random initialization, and padding stays zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmie.encoders.word_vectors import read_word_vectors
from mmie.errors import ConfigError
from mmie.features.words import PAD_ID, WordVocabulary


def fit_word_embeddings(
    embeddings: nn.Embedding, tokenizer: Any, word_vectors: Path | None, word_dim: int, model_name: str
) -> None:
    """Check ``embeddings`` covers ``tokenizer`` (a WordVocabulary) and fill its rows from ``word_vectors``."""
    if not isinstance(tokenizer, WordVocabulary):
        raise TypeError(f"{model_name} reads words: it needs a WordVocabulary, not a {type(tokenizer)}")
    if len(tokenizer) != embeddings.num_embeddings:
        raise ConfigError(
            f"model.vocabulary_size: {embeddings.num_embeddings}, but the vocabulary has "
            f"{len(tokenizer)} words (build the model from the processor's config)"
        )
    if word_vectors is None:
        return
    vectors = read_word_vectors(word_vectors, tokenizer.words, word_dim)
    with torch.no_grad():
        for index, vector in vectors.rows.items():
            if index != PAD_ID:  # padding stays zero
                embeddings.weight[index] = vector
