"""Records -> per-example feature dicts (model inputs), one featurizer per kind of model input.

A feature dict holds the model's inputs as plain lists/ints (``input_ids``, ``attention_mask``, ...,
``labels`` when asked) plus ``meta``: what decoding needs to map outputs back to the record, never
given to the model. :mod:`mmie.features.collate` pads them into a batch; multimodal featurizers add
keys (``pixel_values``, ...) that pass through collate unchanged.

NER (:class:`NerFeaturizer`): words go through the fast tokenizer pre-split
(``is_split_into_words``); ``word_ids`` maps sub-words to words and each word is represented by its
first sub-word (``word_starts``), which also carries its label. Words past ``max_length`` (rare on
tweets), or that tokenize to nothing (stray control characters), get no position: they are not
trained on and are predicted ``O``.

RE (:class:`RelationFeaturizer`): entity markers, added to the tokenizer as special tokens
(:func:`add_marker_tokens`), are inserted as words around the head and tail
(:func:`insert_entity_markers`, rules below); when the marked text is longer than ``max_length`` it
is cut around the entities (:func:`select_words`), so both start markers are always present.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mmie.data.schema import Post, RelationInstance, Span
from mmie.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase
    from typing_extensions import Self

    from mmie.data.images import InMemoryImages
    from mmie.encoders.cache import FeatureCache

META_KEY = "meta"
# Head start, head end, tail start, tail end ("s" for subject, "o" for object).
DEFAULT_MARKERS = ("<s>", "</s>", "<o>", "</o>")
# Used when the default markers are already special tokens of the tokenizer (RoBERTa's and MPNet's
# <s>, </s> are their start and end tokens).
FALLBACK_MARKERS = ("[E1]", "[/E1]", "[E2]", "[/E2]")
# Tried in order: the first set none of whose markers is a special token of the tokenizer.
MARKER_CANDIDATES = (DEFAULT_MARKERS, FALLBACK_MARKERS, ("<e1>", "</e1>", "<e2>", "</e2>"))
# The levitated entity markers of the one-pass model (text_reads_entities), tried in the same way.
ENTITY_MARKER_CANDIDATES = (("<e>", "</e>"), ("[E]", "[/E]"), ("<ent>", "</ent>"))
# Records tokenized per call of the (Rust, batched) tokenizer.
_TOKENIZER_BATCH = 512


class Featurizer(Protocol):
    """Records -> feature dicts. What it reads besides the text is declared, never probed."""

    reads_images: bool  # the features carry the posts' images
    slots: int  # image slots per example (0: no images)

    @property
    def region_source(self) -> str:
        """Regions the features carry: "none", "grid", "precomputed", a provider's name (read-only)."""

    @property
    def image_side(self) -> int | None:
        """The longer image side worth decoding for these inputs (None: any size, or no images)."""

    def featurize(
        self, records: Sequence[Any], with_labels: bool = True, images: InMemoryImages | None = None
    ) -> list[dict]:
        """``images``: uploaded pictures the records name, for this call only (see ``for_uploads``)."""
        ...

    def for_uploads(self, shared: dict[str, FeatureCache] | None = None) -> Self:
        """The featurizer for uploads: pictures come with each ``featurize`` call, never from a folder."""
        ...


class TextFeaturizer:
    """What the text-only featurizers declare: no images, so uploads change nothing."""

    reads_images = False
    slots = 0
    region_source = "none"
    image_side: int | None = None

    def for_uploads(self, shared: dict[str, FeatureCache] | None = None) -> Self:
        return self


def _encoder_inputs(encoding: Any, index: int) -> dict:
    """The tokenizer outputs the encoder takes (input_ids, attention_mask, token_type_ids if any)."""
    keys = ("input_ids", "attention_mask", "token_type_ids")
    return {key: list(encoding[key][index]) for key in keys if key in encoding}


# ------------------------------------------------------------------------------------ NER


class NerFeaturizer(TextFeaturizer):
    """Posts -> sub-word inputs + first-sub-word positions of the words + word labels."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], max_length: int) -> None:
        self.tokenizer = tokenizer
        self.label_ids = {label: index for index, label in enumerate(labels)}
        self.max_length = max_length

    def featurize(
        self, records: Sequence[Post], with_labels: bool = True, images: InMemoryImages | None = None
    ) -> list[dict]:
        features = []
        for offset in range(0, len(records), _TOKENIZER_BATCH):
            chunk = records[offset : offset + _TOKENIZER_BATCH]
            encoding = self.tokenizer(
                [self.words(record) for record in chunk],
                is_split_into_words=True,
                truncation=True,
                max_length=self.max_length,
            )
            for index, record in enumerate(chunk):
                features.append(self._feature(record, encoding, index, with_labels))
        return features

    @staticmethod
    def words(record: Any) -> list[str]:
        """The words of a record that the tokenizer reads (a post's tokens)."""
        return list(record.tokens)

    def _feature(self, post: Post, encoding: Any, index: int, with_labels: bool) -> dict:
        word_starts, words = first_subwords(encoding.word_ids(index))
        feature = {**_encoder_inputs(encoding, index), "word_starts": word_starts}
        if with_labels and post.tags is not None:
            feature["labels"] = [word_label_id(self.label_ids, post, word) for word in words]
        feature[META_KEY] = {"words": words, "n_words": len(post.tokens)}
        return feature


def word_label_id(label_ids: dict[str, int], post: Post, word: int) -> int:
    """The label id of the tag of ``post``'s word ``word``; a DataError naming the record when the
    model's label set lacks it."""
    tag = post.tags[word]  # type: ignore[index]
    if tag not in label_ids:
        raise DataError(
            f"tag {tag!r} of token {word} is not in the model's label set {sorted(label_ids)}",
            field=f"record {post.id}: tags",
        )
    return label_ids[tag]


def relation_label_id(label_ids: dict[str, int], instance: RelationInstance) -> int:
    """The label id of a labelled relation instance; a DataError naming the record when the model's
    label set lacks it."""
    if instance.label not in label_ids:
        raise DataError(
            f"relation {instance.label!r} is not in the model's label set", field=f"record {instance.id}: relation"
        )
    return label_ids[instance.label]


def first_subwords(word_ids: Sequence[int | None]) -> tuple[list[int], list[int]]:
    """``(positions, words)``: the position of each word's first sub-word, and which word it is."""
    positions, words = [], []
    previous = None
    for position, word in enumerate(word_ids):
        if word is not None and word != previous:
            positions.append(position)
            words.append(word)
        previous = word
    return positions, words


# ----------------------------------------------------------------------------- RE markers


def choose_markers(
    tokenizer: PreTrainedTokenizerBase,
    candidates: Sequence[tuple[str, ...]] = MARKER_CANDIDATES,
    setting: str = "model.markers",
) -> tuple[str, ...]:
    """The first of ``candidates`` that shares no token with the tokenizer's own special tokens (its
    start, end, padding, unknown and mask tokens): BERT keeps ``<s> </s> <o> </o>``."""
    taken = set(tokenizer.all_special_tokens)
    for candidate in candidates:
        if not taken.intersection(candidate):
            return candidate
    raise ConfigError(f"{setting}: every default marker set collides with the tokenizer's {sorted(taken)}: set them")


def add_marker_tokens(tokenizer: PreTrainedTokenizerBase, markers: Sequence[str] | None) -> tuple[str, str, str, str]:
    """Add the entity markers to ``tokenizer`` as special tokens; returns the markers used.

    ``markers=None`` chooses them for the tokenizer (:func:`choose_markers`); a saved model folder
    passes the ones it was trained with (its tokenizer already holds them as added tokens). A marker
    that is one of the tokenizer's own special tokens (start, end, ...) is refused: the model could not
    tell the entity from the text's boundary.
    """
    chosen = _add_markers(tokenizer, markers, MARKER_CANDIDATES, "model.markers")
    return chosen[0], chosen[1], chosen[2], chosen[3]


def add_entity_marker_tokens(tokenizer: PreTrainedTokenizerBase, markers: Sequence[str] | None) -> tuple[str, str]:
    """:func:`add_marker_tokens` for the two entity markers (start, end) of ``text_reads_entities``."""
    chosen = _add_markers(tokenizer, markers, ENTITY_MARKER_CANDIDATES, "model.entity_markers")
    return chosen[0], chosen[1]


def _add_markers(
    tokenizer: PreTrainedTokenizerBase,
    markers: Sequence[str] | None,
    candidates: Sequence[tuple[str, ...]],
    setting: str,
) -> tuple[str, ...]:
    chosen = tuple(markers) if markers is not None else choose_markers(tokenizer, candidates, setting)
    count = len(candidates[0])
    if len(chosen) != count or len(set(chosen)) != count:
        number = {2: "two", 4: "four"}.get(count, str(count))
        raise ConfigError(f"{setting}: {number} different markers are needed, got {list(chosen)}")
    collisions = [marker for marker in chosen if marker in set(tokenizer.all_special_tokens)]
    if collisions:
        raise ConfigError(
            f"{setting}: {collisions} already are special tokens of the tokenizer "
            f"({sorted(tokenizer.all_special_tokens)}); choose other markers or leave {setting} unset"
        )
    tokenizer.add_tokens(list(chosen), special_tokens=True)
    for marker in chosen:
        marker_id = tokenizer.convert_tokens_to_ids(marker)  # one token in, one id out
        if len(tokenizer.tokenize(marker)) != 1 or marker_id == tokenizer.unk_token_id:
            raise ConfigError(f"{setting}: {marker!r} does not become one token of the tokenizer")
    return chosen


@dataclass(frozen=True)
class MarkedText:
    """Words with markers inserted; ``head_marker``/``tail_marker``: indices of the start markers."""

    words: list[str]
    head_marker: int
    tail_marker: int
    marker_indices: tuple[int, ...]  # every marker word, start and end
    sources: tuple[int | None, ...] = ()  # each word's index among the post's tokens (None: a marker)


def insert_entity_markers(tokens: Sequence[str], head: Span, tail: Span, markers: Sequence[str]) -> MarkedText:
    """Insert ``markers`` = (head start, head end, tail start, tail end) around the two spans.

    The rule, deterministic and always well-formed (every marker pair closes inside the pair
    around it):

    * disjoint spans: each span is wrapped in its own markers;
    * nested spans (one inside the other, ``SAP SE`` / ``SAP``): markers go in by position; at one
      position closing markers come before opening ones, the outer (longer) span opens first and
      closes last; identical spans: the head is the outer one;
    * partial overlap (``A [B C) D]`` style crossing): the span that starts later is closed where
      the earlier one ends and reopened right after, ``<s> A <o> B </o> </s> <o> C </o>``; its
      first start marker is the one the models read.
    """
    head_open, head_close, tail_open, tail_close = markers
    # Pieces: (start, end, open marker, close marker, is the entity's first piece, which entity).
    pieces = [(head.start, head.end, head_open, head_close, True, "head")]
    first, second = (head, tail) if (head.start, -head.end) <= (tail.start, -tail.end) else (tail, head)
    tail_pieces = [(tail.start, tail.end)]
    if first.start < second.start < first.end < second.end:  # crossing: split the later span
        split = [(second.start, first.end), (first.end, second.end)]
        if second is tail:
            tail_pieces = split
        else:
            pieces = [(s, e, head_open, head_close, i == 0, "head") for i, (s, e) in enumerate(split)]
    pieces += [(s, e, tail_open, tail_close, i == 0, "tail") for i, (s, e) in enumerate(tail_pieces)]

    words: list[str] = []
    starts: dict[str, int] = {}
    marker_indices: list[int] = []
    stack: list[tuple] = []

    def emit(marker: str) -> None:
        marker_indices.append(len(words))
        words.append(marker)

    for position in range(len(tokens) + 1):
        while stack and stack[-1][1] == position:  # close inner pieces first
            emit(stack.pop()[3])
        # Open longer pieces first; on a tie the head (listed first) opens first.
        for piece in sorted((p for p in pieces if p[0] == position), key=lambda p: -(p[1] - p[0])):
            if piece[4]:
                starts[piece[5]] = len(words)
            emit(piece[2])
            stack.append(piece)
        if position < len(tokens):
            words.append(tokens[position])
    if stack:
        raise DataError(f"entity span ends past the {len(tokens)} tokens of the post", field="h/t pos")
    markers_at = set(marker_indices)
    sources: list[int | None] = []  # the post's token index of each word, None for the markers
    for index in range(len(words)):
        sources.append(None if index in markers_at else index - sum(1 for s in sources if s is None))
    return MarkedText(words, starts["head"], starts["tail"], tuple(marker_indices), tuple(sources))


def select_words(lengths: Sequence[int], anchors: Sequence[int], markers: Sequence[int], budget: int) -> list[int]:
    """Indices of the words to keep (in order) so their sub-word ``lengths`` fit in ``budget``.

    Priority: the ``anchors`` (the two start markers) first, then the other ``markers``, then words
    by distance to the nearest anchor (left first on ties): the text is cut around the entities,
    from both ends, never blindly from the right. Words too long for what is left are skipped.
    """
    first = {index: rank for rank, index in enumerate(anchors)}
    second = set(markers) - set(anchors)

    def priority(index: int) -> tuple[int, int, int]:
        if index in first:
            return (0, first[index], index)
        if index in second:
            return (1, 0, index)
        return (2, min(abs(index - anchor) for anchor in anchors), index)

    kept, used = [], 0
    for index in sorted(range(len(lengths)), key=priority):
        if used + lengths[index] <= budget:
            kept.append(index)
            used += lengths[index]
    return sorted(kept)


def with_relation_label(
    feature: dict, label_ids: dict[str, int], instance: RelationInstance, with_labels: bool
) -> dict:
    """``feature`` with the instance's label id (when asked and known) and its meta; a DataError naming
    the record when the model's label set lacks its relation."""
    if with_labels and instance.label is not None:
        feature["labels"] = relation_label_id(label_ids, instance)
    feature[META_KEY] = {"id": instance.id}
    return feature


class RelationFeaturizer(TextFeaturizer):
    """Relation instances -> marked sub-word inputs + start-marker positions + label."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        labels: Sequence[str],
        max_length: int,
        markers: Sequence[str],
    ) -> None:
        self.tokenizer = tokenizer
        self.label_ids = {label: index for index, label in enumerate(labels)}
        self.max_length = max_length
        self.markers = tuple(markers)
        self.budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
        if self.budget < 6:  # the markers alone (up to six with a reopened span) must fit
            raise ConfigError(f"model.max_length: {max_length} leaves no room for the entity markers")

    def featurize(
        self, records: Sequence[RelationInstance], with_labels: bool = True, images: InMemoryImages | None = None
    ) -> list[dict]:
        features = []
        for offset in range(0, len(records), _TOKENIZER_BATCH):
            chunk = records[offset : offset + _TOKENIZER_BATCH]
            marked = [self._mark(instance) for instance in chunk]
            encoding = self.tokenizer([m.words for m in marked], is_split_into_words=True)
            for index, (instance, text) in enumerate(zip(chunk, marked)):
                if len(encoding["input_ids"][index]) > self.max_length:
                    features.append(self._truncated(instance, text, encoding.word_ids(index), with_labels))
                else:
                    features.append(self._feature(instance, text, encoding, index, with_labels))
        return features

    def _mark(self, instance: RelationInstance) -> MarkedText:
        try:
            return insert_entity_markers(instance.post.tokens, instance.head, instance.tail, self.markers)
        except DataError as error:
            raise DataError(error.message, field=f"record {instance.id}: {error.field}") from None

    def _feature(
        self, instance: RelationInstance, text: MarkedText, encoding: Any, index: int, with_labels: bool
    ) -> dict:
        word_ids = encoding.word_ids(index)
        feature = {
            **_encoder_inputs(encoding, index),
            "head_start": word_ids.index(text.head_marker),
            "tail_start": word_ids.index(text.tail_marker),
        }
        return with_relation_label(feature, self.label_ids, instance, with_labels)

    def _truncated(
        self, instance: RelationInstance, text: MarkedText, word_ids: Sequence[int | None], with_labels: bool
    ) -> dict:
        lengths = [0] * len(text.words)
        for word in word_ids:
            if word is not None:
                lengths[word] += 1
        kept = select_words(lengths, [text.head_marker, text.tail_marker], text.marker_indices, self.budget)
        new_index = {old: new for new, old in enumerate(kept)}
        shortened = MarkedText(
            [text.words[i] for i in kept],
            new_index[text.head_marker],
            new_index[text.tail_marker],
            tuple(new_index[i] for i in text.marker_indices if i in new_index),
            tuple(text.sources[i] for i in kept) if text.sources else (),
        )
        encoding = self.tokenizer([shortened.words], is_split_into_words=True)
        return self._feature(instance, shortened, encoding, 0, with_labels)
