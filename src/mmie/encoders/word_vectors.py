"""Pretrained word vectors from a GloVe or word2vec *text* file, for a vocabulary's words only.

    vectors = read_word_vectors("glove.twitter.27B.200d.txt", vocabulary_words, dim=200)
    vectors.rows        {vocabulary index: tensor [dim]} for the words the file has

The file is read line by line (a GloVe file of 1.2M words never sits in memory) and only the
vectors of the wanted words are kept. The formats: one ``word v_1 ... v_dim`` line per word,
separated by spaces; word2vec's text format adds a ``count dim`` header line, which is skipped.
A ``.gz`` file is read through gzip. A word is found as written, else lowercased, else lowercased
with its digits replaced by 0 (the lookup of Lample et al.'s tagger, github.com/glample/tagger), so
a cased vocabulary still finds the vectors of a lowercased file (GloVe).
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mmie.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

_DIGIT = re.compile(r"\d")
# How a vocabulary word may be found in the file, best first.
LOOKUPS = ("as written", "lowercased", "lowercased, digits zeroed")


@dataclass
class WordVectors:
    """The vectors found for a vocabulary: ``rows[index]``, and how many words each lookup found."""

    dim: int
    rows: dict[int, torch.Tensor] = field(default_factory=dict)
    found_by: dict[str, int] = field(default_factory=dict)


def _keys(word: str) -> list[str]:
    lower = word.lower()
    return [word, lower, _DIGIT.sub("0", lower)]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            yield from enumerate(handle, start=1)
    except UnicodeDecodeError as error:
        raise DataError(f"not UTF-8 text: {error}", path=path) from None


def read_word_vectors(path: str | Path, words: Sequence[str], dim: int) -> WordVectors:
    """The vectors of ``words`` (by their index) in the text file ``path``; ``dim``: the size the
    model's word embeddings have, which the file must have too (a ConfigError naming
    ``model.word_dim`` otherwise). Words the file lacks get no row."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model.word_vectors: no such file {path}")
    # key -> [(priority, index)]: which vocabulary words a line of the file would fill
    wanted: dict[str, list[tuple[int, int]]] = {}
    for index, word in enumerate(words):
        for priority, key in enumerate(_keys(word)):
            wanted.setdefault(key, []).append((priority, index))
    best: dict[int, tuple[int, torch.Tensor]] = {}  # index -> (priority, vector)
    file_dim: int | None = None
    for number, line in _lines(path):
        parts = line.rstrip("\n").rstrip(" ").split(" ")
        if number == 1 and len(parts) == 2 and all(part.isdigit() for part in parts):
            file_dim = int(parts[1])  # word2vec's "count dim" header
            _check_dim(path, file_dim, dim)
            continue
        if file_dim is None:
            file_dim = len(parts) - 1
            _check_dim(path, file_dim, dim)
        if len(parts) < file_dim + 1:
            raise DataError(f"expected a word and {file_dim} numbers, got {len(parts)} fields", path=path, line=number)
        # A word with spaces in it (a few in GloVe 840B): everything before the last dim fields.
        word = " ".join(parts[:-file_dim])
        targets = wanted.get(word)
        if not targets:
            continue
        try:
            vector = torch.tensor([float(value) for value in parts[-file_dim:]])
        except ValueError as error:
            raise DataError(f"not a number: {error}", path=path, line=number) from None
        for priority, index in targets:
            if index not in best or priority < best[index][0]:
                best[index] = (priority, vector)
    vectors = WordVectors(dim)
    for index, (priority, vector) in best.items():
        vectors.rows[index] = vector
        vectors.found_by[LOOKUPS[priority]] = vectors.found_by.get(LOOKUPS[priority], 0) + 1
    logger.info(
        "word vectors from %s: %d of %d words found (%s); the others keep their random initialization",
        path,
        len(vectors.rows),
        len(words),
        ", ".join(f"{count} {how}" for how, count in vectors.found_by.items()) or "none",
    )
    return vectors


def _check_dim(path: Path, file_dim: int, dim: int) -> None:
    if file_dim != dim:
        raise ConfigError(
            f"model.word_dim: the word embeddings have {dim} dimensions but the vectors of {path} have "
            f"{file_dim}; set model.word_dim: {file_dim}"
        )
