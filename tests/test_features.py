"""Records -> features: word/sub-word alignment (NER), entity markers and truncation (RE), collate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmie.data import read_dataset
from mmie.data.schema import Post, RelationInstance, Span
from mmie.encoders.text import load_tokenizer
from mmie.features.collate import Collator
from mmie.features.text import (
    DEFAULT_MARKERS,
    META_KEY,
    NerFeaturizer,
    RelationFeaturizer,
    add_marker_tokens,
    insert_entity_markers,
    select_words,
)
from mmie.inference.predict import ner_tags

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# The real data lies beside the repository (shared/data); a clone elsewhere skips what reads it, as
# tests/test_formats.py does.
needs_shared = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
HEAD_OPEN, HEAD_CLOSE, TAIL_OPEN, TAIL_CLOSE = DEFAULT_MARKERS


@pytest.fixture(scope="module")
def minilm_tokenizer():
    return load_tokenizer("minilm")


@pytest.fixture(scope="module")
def marker_tokenizer(tiny_bert):
    tokenizer = load_tokenizer(tiny_bert)
    add_marker_tokens(tokenizer, None)
    return tokenizer


@pytest.fixture(scope="module")
def mnre_train():
    return read_dataset(DATA / "mnre" / "mnre_train.txt", format="mnre").records


# ----------------------------------------------------------------------------------- NER


@needs_shared
def test_labels_sit_on_first_subwords_of_real_tweets(minilm_tokenizer):
    posts = read_dataset(DATA / "twitter2017" / "valid.txt", format="twitter").records[:200]
    features = NerFeaturizer(minilm_tokenizer, LABELS, max_length=128).featurize(posts)
    split_words = 0
    for post, feature in zip(posts, features):
        words = feature[META_KEY]["words"]
        assert len(feature["word_starts"]) == len(feature["labels"]) == len(words)
        pieces = minilm_tokenizer.convert_ids_to_tokens(feature["input_ids"])
        for word, start, label in zip(words, feature["word_starts"], feature["labels"]):
            assert LABELS[label] == post.tags[word]
            assert not pieces[start].startswith("##")  # a first sub-word
            expected = minilm_tokenizer.tokenize(post.tokens[word])
            assert pieces[start : start + len(expected)] == expected
            split_words += len(expected) > 1
    assert split_words > 100  # the real data exercises multi-piece words


def test_words_without_subwords_and_past_max_length_are_predicted_O(minilm_tokenizer):
    post = Post(
        id="x",
        tokens=["RT", "Kawhi", "\u200b", "Leonard", "wins", "in", "Toronto", "tonight"],
        tags=["O", "B-PER", "O", "I-PER", "O", "O", "B-LOC", "O"],
    )
    feature = NerFeaturizer(minilm_tokenizer, LABELS, max_length=8).featurize([post])[0]
    words = feature[META_KEY]["words"]
    assert 2 not in words  # the zero-width space has no sub-word
    assert len(feature["input_ids"]) == 8 and words[-1] < 7  # truncated
    tags = ner_tags([LABELS.index("B-PER")] * len(words), feature[META_KEY], LABELS)
    assert len(tags) == len(post.tokens)
    assert tags[2] == "O" and tags[7] == "O" and tags[1] == "B-PER"


# ------------------------------------------------------------------------------ markers


def parse_marked(words: list[str]) -> dict[str, list[str]]:
    """Check the markers nest properly; return the words inside the head and the tail markers."""
    pairs = {HEAD_OPEN: HEAD_CLOSE, TAIL_OPEN: TAIL_CLOSE}
    stack: list[str] = []
    inside: dict[str, list[str]] = {HEAD_OPEN: [], TAIL_OPEN: []}
    for word in words:
        if word in pairs:
            stack.append(word)
        elif word in pairs.values():
            assert stack and pairs[stack.pop()] == word, f"badly nested markers in {words}"
        else:
            for opened in set(stack):
                inside[opened].append(word)
    assert not stack
    return {"head": inside[HEAD_OPEN], "tail": inside[TAIL_OPEN]}


@needs_shared
def test_nested_spans_of_real_mnre_stay_well_formed(mnre_train, marker_tokenizer):
    nested = [r for r in mnre_train if r.head.overlaps(r.tail)]
    assert len(nested) == 59
    for instance in nested:
        tokens = instance.post.tokens
        marked = insert_entity_markers(tokens, instance.head, instance.tail, DEFAULT_MARKERS)
        inside = parse_marked(marked.words)
        assert inside["head"] == tokens[instance.head.start : instance.head.end]
        assert inside["tail"] == tokens[instance.tail.start : instance.tail.end]
        assert marked.words[marked.head_marker] == HEAD_OPEN and marked.words[marked.tail_marker] == TAIL_OPEN
        assert [w for w in marked.words if w not in DEFAULT_MARKERS] == tokens
    # the outer span opens first: "SAP SE"-style head around its tail
    example = next(r for r in nested if r.head.start == r.tail.start and r.head.end > r.tail.end)
    marked = insert_entity_markers(example.post.tokens, example.head, example.tail, DEFAULT_MARKERS)
    assert marked.words[marked.head_marker + 1] == TAIL_OPEN
    featurizer = RelationFeaturizer(marker_tokenizer, ["None"], 128, DEFAULT_MARKERS)
    features = featurizer.featurize(nested, with_labels=False)
    head_id, tail_id = marker_tokenizer.convert_tokens_to_ids([HEAD_OPEN, TAIL_OPEN])
    for feature in features:
        assert feature["input_ids"][feature["head_start"]] == head_id
        assert feature["input_ids"][feature["tail_start"]] == tail_id


def test_identical_and_crossing_spans():
    tokens = ["a", "b", "c", "d", "e"]
    same = insert_entity_markers(tokens, Span(1, 3), Span(1, 3), DEFAULT_MARKERS)
    assert same.words == ["a", "<s>", "<o>", "b", "c", "</o>", "</s>", "d", "e"]
    crossing = insert_entity_markers(tokens, Span(0, 3), Span(2, 5), DEFAULT_MARKERS)
    # the later span is closed where the earlier ends and reopened right after
    assert crossing.words == ["<s>", "a", "b", "<o>", "c", "</o>", "</s>", "<o>", "d", "e", "</o>"]
    assert (crossing.head_marker, crossing.tail_marker) == (0, 3)
    assert parse_marked(crossing.words) == {"head": ["a", "b", "c"], "tail": ["c", "d", "e"]}
    tail_first = insert_entity_markers(tokens, Span(2, 5), Span(0, 3), DEFAULT_MARKERS)
    assert tail_first.words == ["<o>", "a", "b", "<s>", "c", "</s>", "</o>", "<s>", "d", "e", "</s>"]
    assert (tail_first.head_marker, tail_first.tail_marker) == (3, 0)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_pair_of_spans_gives_well_formed_markers(data):
    length = data.draw(st.integers(1, 8))
    spans = []
    for _ in range(2):
        start = data.draw(st.integers(0, length - 1))
        spans.append(Span(start, data.draw(st.integers(start + 1, length))))
    tokens = [f"w{i}" for i in range(length)]
    marked = insert_entity_markers(tokens, spans[0], spans[1], DEFAULT_MARKERS)
    inside = parse_marked(marked.words)
    assert inside["head"] == tokens[spans[0].start : spans[0].end]
    assert inside["tail"] == tokens[spans[1].start : spans[1].end]
    assert marked.words[marked.head_marker] == HEAD_OPEN and marked.words[marked.tail_marker] == TAIL_OPEN


# ---------------------------------------------------------------------------- truncation


def test_truncation_cuts_around_the_entities_and_keeps_both_start_markers(marker_tokenizer):
    tokens = ["alice"] + ["the"] * 40 + ["visited"] + ["today"] * 30 + ["paris"] + ["news"] * 20
    instance = RelationInstance(post=Post(id="long", tokens=tokens), head=Span(0, 1), tail=Span(72, 73), label="None")
    featurizer = RelationFeaturizer(marker_tokenizer, ["None"], max_length=20, markers=DEFAULT_MARKERS)
    feature = featurizer.featurize([instance])[0]
    pieces = marker_tokenizer.convert_ids_to_tokens(feature["input_ids"])
    assert len(pieces) == 20
    assert pieces[feature["head_start"]] == HEAD_OPEN and pieces[feature["tail_start"]] == TAIL_OPEN
    assert {"</s>", "</o>", "alice", "paris"} <= set(pieces)  # entities and end markers kept
    # context around the tail from both sides, not the first words of the post only
    assert pieces[feature["tail_start"] - 1] == "today" and pieces[-2] == "news"


@needs_shared
def test_truncation_keeps_start_markers_on_all_real_mnre_val(marker_tokenizer):
    instances = read_dataset(DATA / "mnre" / "mnre_val.txt", format="mnre").records
    features = RelationFeaturizer(marker_tokenizer, ["None"], 16, DEFAULT_MARKERS).featurize(
        instances, with_labels=False
    )
    head_id, tail_id = marker_tokenizer.convert_tokens_to_ids([HEAD_OPEN, TAIL_OPEN])
    truncated = 0
    for feature in features:
        assert len(feature["input_ids"]) <= 16
        assert feature["input_ids"][feature["head_start"]] == head_id
        assert feature["input_ids"][feature["tail_start"]] == tail_id
        truncated += len(feature["input_ids"]) == 16
    assert truncated > len(features) // 2


def test_select_words_prefers_anchors_then_markers_then_nearest_words():
    lengths = [1, 3, 1, 1, 1, 1, 1, 1]
    assert select_words(lengths, anchors=[4], markers=[4, 6], budget=4) == [3, 4, 5, 6]
    assert select_words(lengths, anchors=[0, 7], markers=[0, 7], budget=2) == [0, 7]
    assert select_words(lengths, anchors=[2], markers=[2], budget=3) == [0, 2, 3]  # word 1 too long


# --------------------------------------------------------------------------------- collate


def test_collate_pads_per_batch_and_passes_extra_keys_through():
    features = [
        {
            "input_ids": [101, 5, 102],
            "attention_mask": [1, 1, 1],
            "word_starts": [1],
            "labels": [2],
            "pixel_values": torch.ones(1, 3, 2, 2),
            META_KEY: {"words": [0]},
        },
        {
            "input_ids": [101, 5, 6, 7, 102],
            "attention_mask": [1] * 5,
            "word_starts": [1, 2, 3],
            "labels": [1, 0, 0],
            "pixel_values": torch.ones(3, 3, 2, 2),
            META_KEY: {"words": [0, 1, 2]},
        },
    ]
    batch = Collator(pad_token_id=0, length_masks={"word_starts": "word_mask", "pixel_values": "image_mask"})(features)
    assert META_KEY not in batch
    assert batch["input_ids"].tolist() == [[101, 5, 102, 0, 0], [101, 5, 6, 7, 102]]  # longest of the batch
    assert batch["labels"].tolist() == [[2, -100, -100], [1, 0, 0]]
    assert batch["word_mask"].tolist() == [[True, False, False], [True, True, True]]
    assert batch["pixel_values"].shape == (2, 3, 3, 2, 2)
    assert batch["image_mask"].tolist() == [[True, False, False], [True, True, True]]
    scalar = Collator(pad_token_id=0)([{"input_ids": [1, 2], "labels": 3}, {"input_ids": [1], "labels": 0}])
    assert scalar["labels"].tolist() == [3, 0] and scalar["input_ids"].tolist() == [[1, 2], [1, 0]]
