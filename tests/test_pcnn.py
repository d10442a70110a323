"""PCNN: its word-level relation inputs (positions, the three pieces) and its piecewise max pooling,
checked against hand computations; the vocabulary of relation instances; it learns on a tiny task."""

from __future__ import annotations

import torch

from conftest import make_re_instances
from mmie.data.schema import Post, RelationInstance, Span
from mmie.features.words import WordVocabulary
from mmie.models.pcnn.pcnn import PcnnClassifier
from mmie.models.registry import create_model, create_processor, create_vocabulary
from mmie.training.engine import label_set


def instance(tokens: str, head: tuple[int, int], tail: tuple[int, int], label: str = "None") -> RelationInstance:
    words = tokens.split()
    post = Post(id=tokens, tokens=words)
    return RelationInstance(
        post, Span(*head, " ".join(words[slice(*head)])), Span(*tail, " ".join(words[slice(*tail)])), label
    )


def build(records: list[RelationInstance], **settings):
    config = {"name": "pcnn", "filters": 8, "window": 3, "max_distance": 4, **settings}
    vocabulary = create_vocabulary(config, records)
    labels = label_set("re", records)
    processor = create_processor(config, vocabulary, labels)
    torch.manual_seed(0)
    return create_model(processor.config, labels, tokenizer=vocabulary), processor, labels


def test_inputs_give_each_word_its_distances_and_its_piece():
    # a [b] c d [e f] g: head "b" (1, 2), tail "e f" (4, 6)
    record = instance("a b c d e f g", (1, 2), (4, 6))
    _, processor, _ = build([record])
    feature = processor.featurize([record])[0]
    shift = 4 + 1  # max_distance + 1: distance 0 -> id 5
    assert [p - shift for p in feature["head_position"]] == [-1, 0, 1, 2, 3, 4, 4]  # clipped at +-4
    assert [p - shift for p in feature["tail_position"]] == [-4, -3, -2, -1, 0, 0, 1]
    assert feature["piece_ids"] == [1, 1, 2, 2, 2, 2, 3]
    # the tail first: the pieces follow the text, not the roles
    swapped = processor.featurize([instance("a b c d e f g", (4, 6), (1, 2))])[0]
    assert swapped["piece_ids"] == [1, 1, 2, 2, 2, 2, 3]
    # entities at the ends: piece 3 is empty; a long post is cut around the entities, both kept
    assert processor.featurize([instance("x y z", (0, 1), (2, 3))])[0]["piece_ids"] == [1, 2, 2]
    long = instance(" ".join(f"w{i}" for i in range(300)), (5, 6), (250, 251))
    kept = processor.featurize([long])[0]
    assert len(kept["word_ids"]) == 128 and sorted(set(kept["piece_ids"])) == [1, 2, 3]
    assert kept["head_position"].count(shift) == 1 and kept["tail_position"].count(shift) == 1


def test_piecewise_max_pools_the_three_pieces_split_at_the_entities():
    # c for 7 words (2 filters), pieces [1, 1, 2, 2, 2, 2, 3], and a post with an empty third piece + padding
    c = torch.tensor(
        [
            [[1.0, -1.0], [5.0, -2.0], [2.0, -3.0], [7.0, -9.0], [3.0, -4.0], [0.0, -5.0], [4.0, -6.0]],
            [[-1.0, 2.0], [-3.0, 8.0], [-2.0, 1.0], [9.0, 9.0], [9.0, 9.0], [9.0, 9.0], [9.0, 9.0]],
        ]
    )
    pieces = torch.tensor([[1, 1, 2, 2, 2, 2, 3], [1, 2, 2, 0, 0, 0, 0]])
    pooled = PcnnClassifier.piecewise_max(c, pieces)
    expected = torch.tensor([[[5.0, -1.0], [7.0, -3.0], [4.0, -6.0]], [[-1.0, 2.0], [-2.0, 8.0], [0.0, 0.0]]])
    assert torch.equal(pooled, expected)  # padding (9s) never pooled; an empty piece is 0


def test_forward_is_tanh_of_the_pooled_pieces_then_the_classifier():
    records = [instance("a b c d e f g", (1, 2), (4, 6), "X"), instance("h a b", (0, 1), (2, 3), "None")]
    model, processor, _ = build(records)
    model.eval()
    batch = processor(records)
    with torch.no_grad():
        c = model.convolve(batch["word_ids"], batch["head_position"], batch["tail_position"])
        by_hand = []
        for row, pieces in enumerate(batch["piece_ids"].tolist()):
            parts = []
            for piece in (1, 2, 3):
                rows = [i for i, p in enumerate(pieces) if p == piece]
                parts.append(c[row, rows].amax(0) if rows else torch.zeros(c.shape[-1]))
            by_hand.append(torch.tanh(torch.cat(parts)))
        expected = model.classifier(torch.stack(by_hand))
        assert torch.allclose(model(**batch).logits, expected, atol=1e-6)


def test_vocabulary_of_relation_instances_counts_each_post_once():
    post = Post(id="p", tokens=["alice", "met", "bob"])
    pairs = [RelationInstance(post, Span(0, 1, "alice"), Span(2, 3, "bob"), "None") for _ in range(3)]
    vocabulary = WordVocabulary.build(pairs)
    assert vocabulary.singletons_from == 2  # every word seen once, though the post has three pairs
    assert vocabulary.word_id("bob") > 1


def test_pcnn_learns_a_relation_its_words_decide():
    records = make_re_instances(40, seed=1)
    model, processor, labels = build(records, filters=32, dropout=0.0)
    batch = processor(records)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        optimizer.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(**batch).logits.argmax(-1) == batch["labels"]).float().mean()
    assert accuracy > 0.9
