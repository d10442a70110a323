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
from typing import TYPE_CHECKING, Any

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
    sub-word spans of every entity of the post (those its instances in this call name, sorted)."""

    def __init__(self, tokenizer: Any, labels: Sequence[str], max_length: int, entity_spans: bool = False) -> None:
        super().__init__(tokenizer, labels, max_length)
        self.entity_spans = entity_spans

    def featurize(self, records: Sequence[Any], with_labels: bool = True, images: Any = None) -> list[dict]:
        features = super().featurize(records, with_labels, images)
        if self.entity_spans:
            # A post's entities are the spans its candidate pairs name: the instances of one post
            # (same tokens and images) given together, as the Extractor and the Predictor give them.
            posts: dict[tuple, set[tuple[int, int]]] = {}
            keys = [post_key(record) for record in records]
            for key, feature in zip(keys, features):
                posts.setdefault(key, set()).update({tuple(feature["head_span"]), tuple(feature["tail_span"])})
            for key, feature in zip(keys, features):
                feature["entity_spans"] = [list(span) for span in sorted(posts[key])]
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
            "head_span": list(subword_span(tokens, instance.head)),
            "tail_span": list(subword_span(tokens, instance.tail)),
        }
        return with_relation_label(feature, self.label_ids, instance, with_labels)


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

    With ``entity_marker_ids`` (start, end), the features' ``entity_spans`` get two markers each,
    between the text and the pairs' markers, at their span's first and last sub-word; the text and
    these markers read each other, and every pair's markers read them too. The post's context (its
    text and its entities) is then the same for each of its pairs, whichever of them the batch holds.

    Batch keys: ``input_ids``, ``position_ids``, ``token_type_ids`` (zeros, when the encoder takes
    them) ``[rows, L]``; ``attention_mask`` ``[rows, L, L]`` (True: the query may read the key);
    per instance ``pair_row`` (its post's row), ``head_marker`` / ``tail_marker`` (the positions of
    its head and tail start markers in that row), ``head_token`` / ``tail_token`` (the positions of the
    head's and tail's first text sub-words in that row) ``[pairs]``, and ``labels`` when given.
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
        # post: a pair's four markers levitated; subject: its head is marked in the text, its tail's two are
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

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        posts: dict[tuple, list[int]] = {}  # a post's sub-words and entities -> its instances
        for index, feature in enumerate(features):
            posts.setdefault((tuple(feature["input_ids"]), self._entities(feature)), []).append(index)
        segments = list(posts.items())
        # the text, 2 markers an entity, 4 (or 2) markers a pair
        per_pair = len(self.levitated)
        sizes = [len(text) + 2 * len(entities) + per_pair * len(pairs) for (text, entities), pairs in segments]
        rows = self._rows(sizes)
        width = max(sum(sizes[number] for number in row) for row in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width, width), dtype=torch.bool)
        pair_row = torch.zeros(len(features), dtype=torch.long)
        head_marker = torch.zeros(len(features), dtype=torch.long)
        tail_marker = torch.zeros(len(features), dtype=torch.long)
        head_token = torch.zeros(len(features), dtype=torch.long)
        tail_token = torch.zeros(len(features), dtype=torch.long)
        for row, numbers in enumerate(rows):
            offset = 0
            for number in numbers:
                (text, entities), pairs = segments[number]
                n, end = len(text), offset + sizes[number]
                ids[row, offset : offset + n] = torch.tensor(text)
                positions[row, offset : offset + n] = torch.arange(n)
                for e, (first, last) in enumerate(entities):
                    at = offset + n + 2 * e  # this entity's start and end markers: [at, at + 2)
                    ids[row, at : at + 2] = torch.tensor(self.entity_marker_ids)
                    positions[row, at : at + 2] = torch.tensor([first, last])
                context = n + 2 * len(entities)
                # The segment's queries read its context (the text and its entity markers); the context
                # reads nothing else, so it never sees a pair's marker nor another post.
                mask[row, offset:end, offset : offset + context] = True
                for k, index in enumerate(pairs):
                    start = offset + context + per_pair * k  # this pair's markers: [start, start + per_pair)
                    head, tail = features[index]["head_span"], features[index]["tail_span"]
                    ids[row, start : start + per_pair] = torch.tensor(self.levitated)
                    marked = [head[0], head[1], tail[0], tail[1]][-per_pair:]  # each marker at its sub-word
                    positions[row, start : start + per_pair] = torch.tensor(marked)
                    mask[row, start : start + per_pair, start : start + per_pair] = True
                    pair_row[index], tail_marker[index] = row, start + per_pair - 2
                    # the head's start marker: levitated, or (subject packing) where the text holds it
                    head_marker[index] = start if per_pair == 4 else offset + features[index]["head_marker"]
                    head_token[index], tail_token[index] = offset + head[0], offset + tail[0]
                offset = end
            # Padding queries read the first segment's text: no row of the mask without a key.
            mask[row, offset:, : len(segments[numbers[0]][0][0])] = True
        # Per-instance tensors first: the Trainer reads the batch size off the first tensor.
        batch = {
            "pair_row": pair_row,
            "head_marker": head_marker,
            "tail_marker": tail_marker,
            "head_token": head_token,
            "tail_token": tail_token,
        }
        if all("labels" in feature for feature in features):
            batch["labels"] = torch.tensor([feature["labels"] for feature in features], dtype=torch.long)
        batch.update(input_ids=ids, position_ids=positions, attention_mask=mask)
        if self.token_type_ids:
            batch["token_type_ids"] = torch.zeros_like(ids)
        return batch
