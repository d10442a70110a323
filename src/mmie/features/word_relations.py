"""Relation instances -> word-level inputs of PCNN (Zeng et al., 2015): word ids, the two position
features and the piece each word falls in.

    word_ids       [n]   each word's id in the training split's WordVocabulary (words, no markers)
    head_position  [n]   the word's distance to the head, clipped to +-max_distance, shifted to 1..2D+1
    tail_position  [n]   the same for the tail (0 is padding)
    piece_ids      [n]   1: up to the end of the entity that comes first; 2: after it, up to the end of
                         the second; 3: the rest (0 is padding). PCNN max-pools each piece apart.

A distance is 0 inside the entity, negative before it and positive after it (Zeng et al. sec. 3.2:
"relative distances of the current word to e1 and e2"). Posts longer than ``max_length`` words are
cut around the two entities (:func:`~mmie.features.text.select_words`, both entities kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mmie.data.schema import RelationInstance, Span
from mmie.errors import DataError
from mmie.features.text import TextFeaturizer, select_words, with_relation_label
from mmie.features.words import WordVocabulary

if TYPE_CHECKING:
    from mmie.data.images import InMemoryImages


def distance(index: int, span: Span) -> int:
    """The signed distance of word ``index`` to ``span``: 0 inside, negative before, positive after."""
    if index < span.start:
        return index - span.start
    return max(0, index - (span.end - 1))


def piece_of(index: int, first: Span, second: Span) -> int:
    """1, 2 or 3: the piece of word ``index`` when the text is cut after ``first`` and after ``second``."""
    if index < first.end:
        return 1
    return 2 if index < max(first.end, second.end) else 3


class WordRelationFeaturizer(TextFeaturizer):
    def __init__(self, vocabulary: WordVocabulary, labels: Sequence[str], max_length: int, max_distance: int) -> None:
        self.vocabulary = vocabulary
        self.label_ids = {label: index for index, label in enumerate(labels)}
        self.max_length = max_length
        self.max_distance = max_distance

    def featurize(
        self, records: Sequence[RelationInstance], with_labels: bool = True, images: InMemoryImages | None = None
    ) -> list[dict]:
        return [self._feature(instance, with_labels) for instance in records]

    def position_id(self, value: int) -> int:
        return max(-self.max_distance, min(self.max_distance, value)) + self.max_distance + 1

    def _feature(self, instance: RelationInstance, with_labels: bool) -> dict:
        tokens, head, tail = instance.post.tokens, instance.head, instance.tail
        if max(head.end, tail.end) > len(tokens):
            raise DataError(
                f"entity span ends past the {len(tokens)} tokens of the post", field=f"record {instance.id}: h/t pos"
            )
        kept = list(range(len(tokens)))
        if len(tokens) > self.max_length:  # keep the words nearest the entities, the entities first
            anchors = [*range(head.start, head.end), *range(tail.start, tail.end)]
            kept = select_words([1] * len(tokens), anchors[: self.max_length], [], self.max_length)
        first, second = (head, tail) if (head.start, head.end) <= (tail.start, tail.end) else (tail, head)
        feature: dict = {
            "word_ids": [self.vocabulary.word_id(tokens[i]) for i in kept],
            "head_position": [self.position_id(distance(i, head)) for i in kept],
            "tail_position": [self.position_id(distance(i, tail)) for i in kept],
            "piece_ids": [piece_of(i, first, second) for i in kept],
        }
        return with_relation_label(feature, self.label_ids, instance, with_labels)
