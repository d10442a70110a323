"""Levitated entity markers: every candidate pair of a post read from one encoder pass.

The text is encoded once, without markers; the four markers of each pair (head start, head end,
tail start, tail end) are appended after it, each sharing the position id of the sub-word it marks
(Zhong & Chen, 2021, sec. 4.3 "efficient batch computations"; "levitated markers", Ye et al., 2022):

    segment = [CLS] w_1 ... w_n [SEP]  <s>_1 </s>_1 <o>_1 </o>_1  <s>_2 ...   one per post
    pos     = 0     1   ...  n  n+1    hs_1  he_1  ts_1  te_1    hs_2 ...   a marker at its token's position
    mask    text -> text only; a pair's markers -> the text and that pair's four markers

so the text is read as if no marker were there, and a pair's markers see nothing of another pair:
each pair gets exactly the vectors it would get with its post encoded for it alone.

With ``text_reads_entities``, two more markers per entity of the post (``<e>`` ``</e>`` at its first and
last sub-word) sit between the text and the pairs' markers; the text reads them and they read the
text, so the text knows where the post's entities are. The entities are those the post's instances
name in one ``featurize`` call (the featurizer adds them to every feature as ``entity_spans``), so a
pair's vectors do not depend on which other pairs share its batch.

:class:`LevitatedMarkerFeaturizer` makes one feature per relation instance (the text and the pair's
sub-word spans), as every relation featurizer does, so training, evaluation and prediction lines
stay one per instance. :class:`LevitatedMarkerCollator` packs a batch: the instances of one post
(same sub-words) share one segment, so a post is encoded once however many of its pairs the batch
holds, and the segments of several posts share a row up to ``pack_length`` tokens (each reads only
itself), so a batch of short posts is not padded to its longest one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from mmie.errors import DataError
from mmie.features.collate import Collator
from mmie.features.text import (
    META_KEY,
    MarkedText,
    NerFeaturizer,
    RelationFeaturizer,
    relation_label_id,
    with_relation_label,
)

if TYPE_CHECKING:
    from mmie.data.schema import RelationInstance, Span


def post_key(instance: RelationInstance) -> tuple:
    """What makes two relation instances pairs of one post: its tokens and images (ids differ in
    releases with a line per pair, MNRE's)."""
    return tuple(instance.post.tokens), tuple(instance.post.images)


def check_spans(instance: RelationInstance) -> None:
    """A DataError naming the record when its head or tail ends past the post's tokens."""
    for name, span in (("h", instance.head), ("t", instance.tail)):
        if span.end > len(instance.post.tokens):
            raise DataError(
                f"entity span ends past the {len(instance.post.tokens)} tokens of the post",
                field=f"record {instance.id}: {name} pos",
            )


def _by_post(records: Sequence[RelationInstance]) -> dict[tuple, list[int]]:
    """The records' numbers per post (:func:`post_key`), in order."""
    posts: dict[tuple, list[int]] = {}
    for number, record in enumerate(records):
        posts.setdefault(post_key(record), []).append(number)
    return posts


def subword_span(word_ids: Sequence[int | None], span: Span) -> tuple[int, int]:
    """``(first, last)`` sub-word positions of the words ``[span.start, span.end)``. Words cut by
    truncation (or that tokenize to nothing) are left out; a span with none left falls back to the
    last text sub-word, so every pair keeps a marker inside the text."""
    positions = [p for p, word in enumerate(word_ids) if word is not None and span.start <= word < span.end]
    if positions:
        return positions[0], positions[-1]
    last = max(p for p, word in enumerate(word_ids) if word is not None)
    return last, last


class LevitatedMarkerFeaturizer(NerFeaturizer):
    """Relation instances -> the post's plain sub-words (tokenized as an NER input, cut at
    ``max_length``) + the head's and tail's sub-word spans + label; with ``entity_spans``, also the
    sub-word spans of every entity of the post (those its instances in this call name, sorted); with
    ``sides`` (cover packing), a labelled instance also names the side it is read from in training
    (``inverse``: 1 from its tail): the side :func:`subject_cover` gives it among its post's pairs."""

    def __init__(
        self, tokenizer: Any, labels: Sequence[str], max_length: int, entity_spans: bool = False, sides: bool = False
    ) -> None:
        super().__init__(tokenizer, labels, max_length)
        self.entity_spans = entity_spans
        self.sides = sides  # cover packing: a labelled instance names the side it is read from in training

    def featurize(self, records: Sequence[Any], with_labels: bool = True, images: Any = None) -> list[dict]:
        features = super().featurize(records, with_labels, images)
        if self.sides and with_labels:
            # Training reads each pair from the side the cover of its post's pairs reads it in prediction,
            # though a training batch seldom holds all of a post's pairs.
            for indices in _by_post(records).values():
                pairs = {i: (tuple(features[i]["head_span"]), tuple(features[i]["tail_span"])) for i in indices}
                for subject, covered in subject_cover(pairs, {}):
                    for i in covered:
                        features[i]["inverse"] = int(pairs[i][0] != subject)
        if self.entity_spans:
            # A post's entities are the spans its candidate pairs name: the instances of one post
            # (same tokens and images) given together, as the Extractor and the Predictor give them.
            for indices in _by_post(records).values():
                spans = {tuple(features[i][side]) for i in indices for side in ("head_span", "tail_span")}
                for i in indices:
                    features[i]["entity_spans"] = [list(span) for span in sorted(spans)]
        return features

    @staticmethod
    def words(record: Any) -> list[str]:
        return list(record.post.tokens)

    def _feature(self, instance: RelationInstance, encoding: Any, index: int, with_labels: bool) -> dict:  # type: ignore[override]
        word_ids = encoding.word_ids(index)
        if all(word is None for word in word_ids):
            raise DataError("the post's tokens give no sub-word", field=f"record {instance.id}: token")
        check_spans(instance)
        feature: dict[str, Any] = {
            "input_ids": list(encoding["input_ids"][index]),
            "head_span": list(subword_span(word_ids, instance.head)),
            "tail_span": list(subword_span(word_ids, instance.tail)),
        }
        if with_labels and instance.label is not None:
            feature["labels"] = relation_label_id(self.label_ids, instance)
        feature[META_KEY] = {"id": instance.id}
        return feature


class SubjectMarkerFeaturizer(RelationFeaturizer):
    """Relation instances -> the post's sub-words with the head marked in them (``<s> head </s>``, cut
    around the entities like MTB's text when too long) + the head marker's position + the head's and
    tail's sub-word spans + label. The pairs of one head share these sub-words, so the collator gives
    them one segment, the tails' markers levitated after it (PL-Marker's subject-oriented packing)."""

    def _mark(self, instance: RelationInstance) -> MarkedText:
        check_spans(instance)
        tokens, head, tail = instance.post.tokens, instance.head, instance.tail
        head_open, head_close = self.markers[:2]
        words = [*tokens[: head.start], head_open, *tokens[head.start : head.end], head_close, *tokens[head.end :]]
        sources = [*range(head.start), None, *range(head.start, head.end), None, *range(head.end, len(tokens))]
        tail_word = tail.start + (tail.start >= head.start) + (tail.start >= head.end)  # past the markers before it
        return MarkedText(words, head.start, tail_word, (head.start, head.end + 1), tuple(sources))

    def _feature(
        self, instance: RelationInstance, text: MarkedText, encoding: Any, index: int, with_labels: bool
    ) -> dict:
        word_ids = encoding.word_ids(index)
        # the post's token each sub-word comes from (None: a special token or a marker)
        tokens = [None if word is None else text.sources[word] for word in word_ids]
        feature = {
            "input_ids": list(encoding["input_ids"][index]),
            "head_marker": word_ids.index(text.head_marker),
            # the head's end marker (its start marker when a cut removed the end, as MTB's cut may)
            "head_end_marker": word_ids.index(max(text.marker_indices)),
            "head_span": list(subword_span(tokens, instance.head)),
            "tail_span": list(subword_span(tokens, instance.tail)),
        }
        return with_relation_label(feature, self.label_ids, instance, with_labels)


def both_sides(features: list[dict]) -> list[dict]:
    """Cover packing's training views (``cover_training: probe``, its default, and ``both``): each labelled
    pair read from its head (``inverse`` 0, the first classifier) and from its tail (1, the second), so that
    the second classifier learns from every pair, not from the few the cover reads from their tail
    (PL-Marker's training also reads each relation (s, o, r) from o's packed instance, labelled r's inverse)."""
    views = []
    for feature in features:
        if "labels" in feature:
            views += [{**feature, "inverse": 0}, {**feature, "inverse": 1}]
        else:
            views.append(feature)
    return views


def first_fit_decreasing(sizes: Sequence[int], limit: int) -> list[list[int]]:
    """Bin packing: the item numbers of each bin of at most ``limit``, the largest items placed first,
    each in the first bin it fits; in order within a bin."""
    bins: list[list[int]] = []
    fill: list[int] = []
    for number in sorted(range(len(sizes)), key=lambda k: (-sizes[k], k)):
        row = next((r for r, used in enumerate(fill) if used + sizes[number] <= limit), len(bins))
        if row == len(bins):
            bins.append([])
            fill.append(0)
        bins[row].append(number)
        fill[row] += sizes[number]
    return [sorted(numbers) for numbers in bins]


class LevitatedMarkerCollator(Collator):
    """Instance features -> one segment per distinct post, its pairs' markers levitated after its
    text; segments packed into rows of at most ``pack_length`` tokens (``None``: a row each).

    A segment reads only itself: its text reads its text, its pairs' markers its text and their own
    four markers, and its positions start at 0, so packing changes no vector, it only removes the
    padding a batch of short posts beside a long one would carry (sequence packing).

    With ``packing="subject"`` the features' text holds the head's markers (``head_marker``: where its
    start marker is), so a segment is a head's text and each pair levitates only its tail's two markers.
    With ``packing="cover"`` the features hold the plain text and the collator marks an entity in it:
    per post, each entity of :func:`subject_cover` gets a segment, its pairs' other entities levitated
    once each, and a pair read from its tail's segment is flagged (``inverse``).

    With ``entity_marker_ids`` (start, end), the features' ``entity_spans`` get two markers each,
    between the text and the pairs' markers, at their span's first and last sub-word; the text and
    these markers read each other, and every pair's markers read them too. The post's context (its
    text and its entities) is then the same for each of its pairs, whichever of them the batch holds.

    Batch keys: ``input_ids``, ``position_ids``, ``token_type_ids`` (zeros, when the encoder takes
    them) ``[rows, L]``; ``attention_mask`` ``[rows, L, L]`` (True: the query may read the key);
    per instance ``pair_row`` (its post's row), ``head_marker`` / ``tail_marker`` (the positions of
    its head and tail start markers in that row), ``head_end_marker`` / ``tail_end_marker`` (their end
    markers), ``head_token`` / ``tail_token`` (the positions of the
    head's and tail's first text sub-words in that row) and, with cover packing, ``inverse`` (read from
    its tail's segment) ``[pairs]``, and ``labels`` when given.
    """

    def __init__(
        self,
        pad_token_id: int,
        marker_ids: Sequence[int],
        token_type_ids: bool,
        pack_length: int | None = None,
        entity_marker_ids: Sequence[int] | None = None,
        packing: str = "post",
    ) -> None:
        super().__init__(pad_token_id)
        self.pad_token_id = pad_token_id
        self.marker_ids = list(marker_ids)  # head start, head end, tail start, tail end
        self.token_type_ids = token_type_ids
        self.pack_length = pack_length
        self.entity_marker_ids = list(entity_marker_ids) if entity_marker_ids is not None else None
        self.packing = packing
        # post: a pair's four markers levitated; subject, cover: an entity is marked in the text, the other's two are
        self.levitated = self.marker_ids if packing == "post" else self.marker_ids[2:]

    def _rows(self, sizes: list[int]) -> list[list[int]]:
        """Segment numbers per row, from the segments' ``sizes``. A row holds at most ``pack_length``
        tokens (or the longest segment's, when longer: the batch is that wide anyway), packed by first-fit
        decreasing; then the rows are narrowed as far as the same number of rows still holds them, since
        every row is padded to the widest and the encoder's cost grows with rows x width."""
        if not sizes:
            return []
        if self.pack_length is None:
            return [[number] for number in range(len(sizes))]
        count = len(first_fit_decreasing(sizes, max(self.pack_length, *sizes)))
        width = max(*sizes, -(-sum(sizes) // count))  # no narrower packing into `count` rows exists
        while len(rows := first_fit_decreasing(sizes, width)) > count:
            width += 1
        return rows

    def _entities(self, feature: Mapping[str, Any]) -> tuple[tuple[int, int], ...]:
        if self.entity_marker_ids is None:
            return ()
        if "entity_spans" not in feature:
            raise ValueError("text_reads_entities: the features carry no entity_spans (made by another featurizer)")
        return tuple((start, end) for start, end in feature["entity_spans"])

    def _segments(self, features: Sequence[Mapping[str, Any]]) -> list[_Segment]:
        """post / subject: a segment per distinct text (and entities): a post's, or a head's marked post."""
        posts: dict[tuple, list[int]] = {}  # a post's sub-words and entities -> its instances
        for index, feature in enumerate(features):
            posts.setdefault((tuple(feature["input_ids"]), self._entities(feature)), []).append(index)
        segments = []
        for (text, entities), indices in posts.items():
            segment = _Segment(list(text))
            for first, last in entities:
                assert self.entity_marker_ids is not None
                segment.append(self.entity_marker_ids, [first, last])
            segment.context = len(segment.ids)  # the text and its entity markers: what every query reads
            for index in indices:
                head, tail = features[index]["head_span"], features[index]["tail_span"]
                marked = [head[0], head[1], tail[0], tail[1]][-len(self.levitated) :]  # each marker at its sub-word
                start = segment.levitate(self.levitated, marked)
                tail_marker = start + len(self.levitated) - 2
                if self.packing == "post":
                    head_marker, head_end_marker = start, start + 1
                else:  # subject packing: the head's markers are in the text
                    head_marker, head_end_marker = features[index]["head_marker"], features[index]["head_end_marker"]
                segment.pairs.append(
                    _Pair(index, head_marker, tail_marker, head[0], tail[0], head_end_marker, tail_marker + 1)
                )
            segments.append(segment)
        return segments

    def _cover_segments(self, features: Sequence[Mapping[str, Any]]) -> list[_Segment]:
        """cover: per post, a segment per subject of :func:`subject_cover`, the subject marked in the text
        (``<s> subject </s>``, as MTB marks a head) and each of its partners' two markers levitated once,
        for the pairs in both directions. A training batch (labels given) reads each pair from the side
        its feature names (``inverse``: from its tail); a prediction batch lets the cover choose."""
        training = all("labels" in feature for feature in features)
        posts: dict[tuple, list[int]] = {}
        for index, feature in enumerate(features):
            posts.setdefault(tuple(feature["input_ids"]), []).append(index)
        open_marker, close_marker, object_markers = self.marker_ids[0], self.marker_ids[1], self.marker_ids[2:]
        segments = []
        for text, indices in posts.items():
            pairs = {i: (tuple(features[i]["head_span"]), tuple(features[i]["tail_span"])) for i in indices}
            sides = {i: bool(features[i]["inverse"]) for i in indices if training and "inverse" in features[i]}
            for (first, last), covered in subject_cover(pairs, sides):
                segment = _Segment(
                    [*text[:first], open_marker, *text[first : last + 1], close_marker, *text[last + 1 :]]
                )

                def shifted(position: int, first: int = first, last: int = last) -> int:
                    return position + (position >= first) + (position > last)  # past the markers before it

                partners: dict[tuple[int, int], int] = {}  # an entity levitated in this segment -> its start marker
                for index in covered:
                    head, tail = pairs[index]
                    inverse = head != (first, last)
                    partner = head if inverse else tail
                    if partner not in partners:
                        partners[partner] = segment.levitate(object_markers, [shifted(partner[0]), shifted(partner[1])])
                    # the subject's start marker sits where its first sub-word was, its end marker after its last
                    solid, levitated = (first, last + 2), (partners[partner], partners[partner] + 1)
                    (head_marker, head_end), (tail_marker, tail_end) = (
                        (levitated, solid) if inverse else (solid, levitated)
                    )
                    segment.pairs.append(
                        _Pair(
                            index,
                            head_marker,
                            tail_marker,
                            shifted(head[0]),
                            shifted(tail[0]),
                            head_end,
                            tail_end,
                            inverse,
                        )
                    )
                segments.append(segment)
        return segments

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        segments = self._cover_segments(features) if self.packing == "cover" else self._segments(features)
        sizes = [len(segment.ids) for segment in segments]
        rows = self._rows(sizes)
        width = max(sum(sizes[number] for number in row) for row in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width, width), dtype=torch.bool)
        per_pair = {key: torch.zeros(len(features), dtype=torch.long) for key in _Pair.KEYS}
        inverse = torch.zeros(len(features), dtype=torch.bool)
        for row, numbers in enumerate(rows):
            offset = 0
            for number in numbers:
                segment, end = segments[number], offset + sizes[number]
                ids[row, offset:end] = torch.tensor(segment.ids)
                positions[row, offset:end] = torch.tensor(segment.positions)
                # Every query of the segment reads its context; the context reads nothing else, so it never
                # sees a pair's marker nor another post. A group of levitated markers also reads itself.
                mask[row, offset:end, offset : offset + segment.context] = True
                for start, stop in segment.groups:
                    mask[row, offset + start : offset + stop, offset + start : offset + stop] = True
                for pair in segment.pairs:
                    per_pair["pair_row"][pair.index] = row
                    for key in _Pair.KEYS[1:]:
                        per_pair[key][pair.index] = offset + getattr(pair, key)
                    inverse[pair.index] = pair.inverse
                offset = end
            # Padding queries read the first segment's context: no row of the mask without a key.
            mask[row, offset:, : segments[numbers[0]].context] = True
        # Per-instance tensors first: the Trainer reads the batch size off the first tensor.
        batch = dict(per_pair)
        if self.packing == "cover":
            batch["inverse"] = inverse
        if all("labels" in feature for feature in features):
            batch["labels"] = torch.tensor([feature["labels"] for feature in features], dtype=torch.long)
        batch.update(input_ids=ids, position_ids=positions, attention_mask=mask)
        if self.token_type_ids:
            batch["token_type_ids"] = torch.zeros_like(ids)
        return batch


@dataclass
class _Pair:
    """Where one instance reads its vectors in its segment (positions from the segment's start)."""

    KEYS: ClassVar[tuple[str, ...]] = (
        "pair_row",
        "head_marker",
        "tail_marker",
        "head_token",
        "tail_token",
        "head_end_marker",
        "tail_end_marker",
    )
    index: int  # the instance's place in the batch
    head_marker: int  # the head's start marker (in the text or levitated)
    tail_marker: int
    head_token: int  # the head's first text sub-word
    tail_token: int
    head_end_marker: int  # the head's end marker (in the text or levitated)
    tail_end_marker: int
    inverse: bool = False  # cover packing: read from its tail's segment


@dataclass
class _Segment:
    """One segment of a packed row: its context (the text, then any entity markers), which every query
    of the segment reads, then groups of levitated markers, each reading the context and itself."""

    ids: list[int]
    positions: list[int] = field(default_factory=list)
    context: int = 0
    groups: list[tuple[int, int]] = field(default_factory=list)  # [start, stop) of each levitated group
    pairs: list[_Pair] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.positions = self.positions or list(range(len(self.ids)))  # the text's own positions
        self.context = self.context or len(self.ids)

    def append(self, ids: Sequence[int], positions: Sequence[int]) -> int:
        start = len(self.ids)
        self.ids += ids
        self.positions += positions
        return start

    def levitate(self, ids: Sequence[int], positions: Sequence[int]) -> int:
        """A group of markers at the ``positions`` of the sub-words they mark; its start in the segment."""
        start = self.append(ids, positions)
        self.groups.append((start, len(self.ids)))
        return start


SubwordSpan = tuple[int, int]  # an entity's first and last sub-word


def subject_cover(
    pairs: Mapping[int, tuple[SubwordSpan, SubwordSpan]], sides: Mapping[int, bool]
) -> list[tuple[SubwordSpan, list[int]]]:
    """The marked entities (subjects) of one post's segments, each with the pairs it reads.

    ``pairs``: instance -> (head, tail). A pair with a side in ``sides`` is read from its head (False)
    or its tail (True). The others are covered greedily, so few segments read them all: first the
    entity in most of the pairs left, then the one heading most of them, then the first in the text;
    so a post with A->B and B->A is one segment, and a single pair is read from its head."""
    chosen: dict[SubwordSpan, list[int]] = {}
    for index, side in sides.items():
        chosen.setdefault(pairs[index][side], []).append(index)
    left = [index for index in pairs if index not in sides]
    while left:
        counts: dict[SubwordSpan, list[int]] = {}
        for index in left:
            head, tail = pairs[index]
            counts.setdefault(head, [0, 0])[1] += 1
            for entity in {head, tail}:
                counts.setdefault(entity, [0, 0])[0] += 1
        subject = max(counts, key=lambda entity: (*counts[entity], tuple(-p for p in entity)))
        chosen.setdefault(subject, []).extend(index for index in left if subject in pairs[index])
        left = [index for index in left if subject not in pairs[index]]
    return [(subject, sorted(indices)) for subject, indices in sorted(chosen.items())]
