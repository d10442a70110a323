"""One-pass MTB (levitated markers): the packed batch, its equivalence with one pass per pair, and the
Extractor reading each post once.

Written from PURE's batch computation (Zhong & Chen, 2021, sec. 4.3): the markers of a pair share
the position ids of their entity's first/last sub-word, the text reads no marker, a pair's markers
read the text and each other only. So (1) the text's vectors are those of the plain text encoded
alone, and (2) a pair's scores are the same whether its post is packed with every other pair or
encoded for that pair alone.
"""

from __future__ import annotations

import pytest
import torch

from conftest import make_re_instances, make_tiny_mpnet
from mmie.data.schema import Post, RelationInstance, Span
from mmie.features.levitated import LevitatedMarkerCollator
from mmie.inference.loading import load_model
from mmie.inference.predict import Predictor
from mmie.inference.saving import save_model_folder
from mmie.models import create_model, create_processor, create_vocabulary
from mmie.pipeline import Extractor

LABELS = ["None", "/per/loc/place_of_residence", "/per/org/member_of"]
# One post, four entities: alice (PER), new york (LOC), red cross (ORG), bob (PER).
TOKENS = ["alice", "lives", "in", "new", "york", "and", "works", "for", "red", "cross", "with", "bob"]
SPANS = {"alice": Span(0, 1), "new york": Span(3, 5), "red cross": Span(8, 10), "bob": Span(11, 12)}
PAIRS = [("alice", "new york"), ("alice", "red cross"), ("bob", "red cross"), ("new york", "bob")]


def post_instances(post_id: str = "p0") -> list[RelationInstance]:
    post = Post(id=post_id, tokens=list(TOKENS))
    return [RelationInstance(post, SPANS[head], SPANS[tail], "None") for head, tail in PAIRS]


def build(encoder: str, **settings):
    """(model, processor, tokenizer) of a tiny one-pass model in eval mode, ``settings`` on top."""
    config = {"name": "mtb_levitated", "encoder": encoder, "max_length": 32, **settings}
    tokenizer = create_vocabulary(config)
    processor = create_processor(config, tokenizer, LABELS)
    torch.manual_seed(0)
    model = create_model(processor.config, LABELS, tokenizer=tokenizer).eval()
    return model, processor, tokenizer


@pytest.fixture(scope="module")
def built(tiny_bert):
    return build(tiny_bert)


def test_the_packed_row_levitates_each_pairs_markers_after_the_text(built):
    _, processor, tokenizer = built
    features = processor.featurize(post_instances())
    batch = processor.collate(features)
    text = features[0]["input_ids"]
    n = len(text)
    assert batch["input_ids"].shape == (1, n + 4 * len(PAIRS))  # one row: the post once, 4 markers a pair
    assert batch["input_ids"][0, :n].tolist() == text
    marker_ids = tokenizer.convert_tokens_to_ids(list(processor.config.markers))
    word_ids = tokenizer(TOKENS, is_split_into_words=True).word_ids()
    mask = batch["attention_mask"][0]
    for k, (head, tail) in enumerate(PAIRS):
        start = n + 4 * k
        assert batch["input_ids"][0, start : start + 4].tolist() == marker_ids
        # the markers sit at their entity's first and last sub-word
        expected = [
            word_ids.index(SPANS[head].start),
            len(word_ids) - 1 - word_ids[::-1].index(SPANS[head].end - 1),
            word_ids.index(SPANS[tail].start),
            len(word_ids) - 1 - word_ids[::-1].index(SPANS[tail].end - 1),
        ]
        assert batch["position_ids"][0, start : start + 4].tolist() == expected
        assert (batch["pair_row"][k], batch["head_marker"][k], batch["tail_marker"][k]) == (0, start, start + 2)
        # a pair's markers read the text and their own four markers, nothing else
        readable = mask[start].nonzero().flatten().tolist()
        assert readable == list(range(n)) + list(range(start, start + 4))
    assert batch["position_ids"][0, :n].tolist() == list(range(n))
    assert not mask[:n, n:].any() and mask[:n, :n].all()  # the text never reads a marker


def two_posts() -> list[RelationInstance]:
    short = Post(id="short", tokens=["bob", "works", "for", "nasa"])
    return [*post_instances(), RelationInstance(short, Span(0, 1), Span(3, 4), "None"), *post_instances("p1")]


def unpacked(processor):
    """The same processor with ``pack_length: null``: one row per post."""
    collator = processor.collator
    return LevitatedMarkerCollator(
        collator.pad_token_id,
        collator.marker_ids,
        collator.token_type_ids,
        pack_length=None,
        entity_marker_ids=collator.entity_marker_ids,
        packing=collator.packing,
    )


def assert_batch_free(model, processor, features) -> torch.Tensor:
    """The logits of ``features`` packed in one batch, after checking that they are those of a row per
    post (unpacked) and of each feature alone in its batch."""
    with torch.no_grad():
        packed = model(**processor.collate(features)).logits
        apart = model(**unpacked(processor)(features)).logits
        alone = torch.cat([model(**processor.collate([feature])).logits for feature in features])
    torch.testing.assert_close(packed, apart, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(packed, alone, rtol=1e-5, atol=1e-5)
    return packed


def test_distinct_posts_get_a_row_each_without_packing_and_padding_is_unread(built):
    _, processor, _ = built
    instances = two_posts()
    batch = unpacked(processor)(processor.featurize(instances))
    # p0 and p1 have the same sub-words: one row for both; the short post its own
    assert batch["input_ids"].shape[0] == 2
    assert batch["pair_row"].tolist() == [0] * 4 + [1] + [0] * 4
    assert batch["labels"].tolist() == [0] * 9
    row_length = len(processor.featurize([instances[4]])[0]["input_ids"]) + 4
    assert not batch["attention_mask"][1, :, row_length:].any()  # padding keys are never read


def test_packed_posts_share_a_row_and_each_reads_only_itself(built):
    _, processor, _ = built
    assert processor.config.pack_length == 64  # the default packs
    features = processor.featurize(two_posts())
    batch = processor.collate(features)
    long_text, short_text = features[0]["input_ids"], features[4]["input_ids"]
    first = len(long_text) + 4 * 2 * len(PAIRS)  # after the segment of p0 and p1 (same sub-words: one)
    assert batch["input_ids"].shape == (1, first + len(short_text) + 4)
    assert batch["input_ids"][0, first : first + len(short_text)].tolist() == short_text
    assert batch["position_ids"][0, first : first + len(short_text)].tolist() == list(range(len(short_text)))
    assert batch["pair_row"].tolist() == [0] * 9
    assert batch["head_marker"][4] == first + len(short_text)
    mask = batch["attention_mask"][0]
    assert not mask[:first, first:].any() and not mask[first:, :first].any()  # no post reads the other

    # A row that would pass pack_length starts a new one.
    processor.collator.pack_length = first + 1
    try:
        assert processor.collate(features)["input_ids"].shape[0] == 2
    finally:
        processor.collator.pack_length = 64


def test_rows_are_packed_largest_first_then_narrowed():
    collator = LevitatedMarkerCollator(0, [1, 2, 3, 4], token_type_ids=False, pack_length=64)
    # In order, 40 | 30 + 20 | 30 would take 3 rows of 50; largest first, 2 rows of 60.
    assert collator._rows([40, 30, 20, 30]) == [[0, 2], [1, 3]]
    # Five segments of 20 take 2 rows: 64 wide would hold them, 60 is the narrowest that does.
    rows = collator._rows([20] * 5)
    assert len(rows) == 2 and max(20 * len(row) for row in rows) == 60
    # A segment longer than the row length gets a row of its own, that wide.
    assert collator._rows([10, 70, 50]) == [[1], [0, 2]]
    collator.pack_length = None
    assert collator._rows([10, 20]) == [[0], [1]]


def test_packing_changes_no_score(built):
    model, processor, _ = built
    features = processor.featurize(two_posts())
    with torch.no_grad():
        packed = model(**processor.collate(features)).logits
        apart = model(**unpacked(processor)(features)).logits
    torch.testing.assert_close(packed, apart, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(packed[3], packed[4])  # the short post's pair is its own


def test_one_pass_gives_the_scores_of_the_post_encoded_for_each_pair_alone(built):
    model, processor, _ = built
    instances = post_instances()
    features = processor.featurize(instances)
    packed = processor.collate(features)
    with torch.no_grad():
        together = model(**packed).logits
        alone = torch.cat([model(**processor.collate([feature])).logits for feature in features])
        # the text vectors of the packed row are those of the plain text, without any marker
        text = torch.tensor([features[0]["input_ids"]])
        plain = model.encode_text(text, torch.ones_like(text))
        rows = model.encode_rows(packed["input_ids"], packed["attention_mask"], packed["position_ids"])
    assert together.shape == (len(PAIRS), len(LABELS))
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rows[:, : text.shape[1]], plain, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(together[0], together[1])  # the pairs are told apart


@pytest.fixture(scope="module")
def one_pass_folder(built, tmp_path_factory):
    model, _, tokenizer = built
    return save_model_folder(model, tokenizer, tmp_path_factory.mktemp("one-pass") / "model")


def encoder_calls(model) -> list[int]:
    """Posts read by every call of the model's text encoder (a real forward hook): its rows, or in
    packed rows its segments: the real tokens (they read themselves, padding does not) at position 0
    (a marker sits on a word, never there)."""
    posts: list[int] = []

    def hook(_module, _args, kwargs, _output) -> None:
        positions = kwargs.get("position_ids")
        if positions is None:
            posts.append(kwargs["input_ids"].shape[0])
        else:
            real = kwargs["attention_mask"][:, 0].diagonal(dim1=-2, dim2=-1) == 0  # the additive [rows, 1, L, L] mask
            posts.append(int(((positions == 0) & real).sum()))

    model.text_encoder.register_forward_hook(hook, with_kwargs=True)
    return posts


def test_the_extractor_encodes_each_post_once_for_all_its_pairs(one_pass_folder):
    loaded = load_model(one_pass_folder)
    extractor = Extractor(re=loaded, include_none=True)
    calls = encoder_calls(loaded.model)
    text = " ".join(TOKENS)
    entities = [
        {"start": text.index(name), "end": text.index(name) + len(name), "type": kind}
        for name, kind in (("alice", "PER"), ("new york", "LOC"), ("red cross", "ORG"), ("bob", "PER"))
    ]
    result = extractor(text, entities=entities)
    # PER -> LOC and PER -> ORG pairs: alice/bob x new york/red cross
    assert len(result["relations"]) == 4
    assert calls == [1]  # one encoder call: the post read once

    # Five distinct posts with 2, 4, 4, 4, 4 pairs (18) and one without: past the 16 pairs of a
    # pair batch, so cut by pairs the fifth post's pairs would be split over two calls.
    posts = [{"text": text + " " + end, "entities": entities} for end in ("today", "!", ":", "rt")]
    posts = [{"text": text, "entities": entities[:3]}, *posts, {"text": "bob works for nasa", "entities": entities[:1]}]
    calls.clear()
    results = list(extractor.pipe(posts, batch_size=8))
    assert [len(r["relations"]) for r in results] == [2, 4, 4, 4, 4, 0]
    assert calls == [5]  # one call, each post with pairs read once
    extractor_by_pairs = Extractor(re=loaded, include_none=True)
    loaded.model.reads_post_once = False  # the path of the models that read one pair per pass
    try:
        calls.clear()
        by_pairs = list(extractor_by_pairs.pipe(posts, batch_size=8))
        scores = [pair["score"] for result in by_pairs for pair in result["relations"]]
        assert scores == pytest.approx([pair["score"] for result in results for pair in result["relations"]], abs=1e-5)
        assert calls == [5, 1]  # the fifth post encoded twice
    finally:
        del loaded.model.reads_post_once

    # the Extractor's scores are the model's on each pair alone
    predictor = Predictor(loaded.model, loaded.processor)
    post = Post(id="0", tokens=text.split())
    spans = [(0, 1), (3, 5), (8, 10), (11, 12)]
    for relation in result["relations"]:
        instance = RelationInstance(post, Span(*spans[relation["head"]]), Span(*spans[relation["tail"]]))
        [line] = predictor.predict([instance], batch_size=1, progress=False)
        assert relation["score"] == pytest.approx(line["scores"][relation["relation"]], abs=1e-5)


def test_entities_past_the_length_budget_keep_a_marker_in_the_text(tiny_bert):
    config = {"name": "mtb_levitated", "encoder": tiny_bert, "max_length": 16}
    tokenizer = create_vocabulary(config)
    processor = create_processor(config, tokenizer, LABELS)
    [instance] = make_re_instances(1)
    long_post = Post(id="long", tokens=["the"] * 30 + instance.post.tokens)
    shifted = [Span(s.start + 30, s.end + 30) for s in (instance.head, instance.tail)]
    [feature] = processor.featurize([RelationInstance(long_post, *shifted, instance.label)])
    assert len(feature["input_ids"]) == 16
    assert feature["head_span"] == feature["tail_span"] == [14, 14]  # the last text sub-word, not [SEP]


def test_entity_states_are_the_text_sub_words_and_keep_one_pass_equal_to_each_pair_alone(tiny_bert):
    config = {
        "name": "mtb_levitated",
        "encoder": tiny_bert,
        "max_length": 32,
        "pair_representation": "markers_and_entities",
    }
    tokenizer = create_vocabulary(config)
    processor = create_processor(config, tokenizer, LABELS)
    torch.manual_seed(0)
    model = create_model(processor.config, LABELS, tokenizer=tokenizer).eval()
    assert model.classifier.in_features == 4 * model.text_encoder.config.hidden_size
    features = processor.featurize(two_posts())
    batch = processor.collate(features)
    for k, feature in enumerate(features):
        row = batch["pair_row"][k]
        # the head's and tail's first text sub-words, read where their markers sit (same position id)
        for token, marker, span in (
            ("head_token", "head_marker", "head_span"),
            ("tail_token", "tail_marker", "tail_span"),
        ):
            assert batch["input_ids"][row, batch[token][k]] == feature["input_ids"][feature[span][0]]
            assert batch["position_ids"][row, batch[token][k]] == batch["position_ids"][row, batch[marker][k]]
    with torch.no_grad():
        packed = model(**batch).logits
        apart = model(**unpacked(processor)(features)).logits
        alone = torch.cat([model(**processor.collate([feature])).logits for feature in features])
        markers_only = model.classifier.weight[:, : 2 * model.text_encoder.config.hidden_size].clone()
    torch.testing.assert_close(packed, apart, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(packed, alone, rtol=1e-5, atol=1e-5)
    # the entity states reach the scores: zeroing their weights changes them
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.weight[:, : markers_only.shape[1]] = markers_only
        assert not torch.allclose(model(**batch).logits, packed)


@pytest.mark.parametrize("packing", ["post", "subject", "cover"])
def test_start_and_end_markers_read_each_entitys_two_markers(tiny_bert, packing):
    """PL-Marker's pair vector: each entity's start and end markers, in the text (the marked subject's
    ``<s> ... </s>``) or levitated (``<o> </o>`` at its first and last sub-word), under every packing."""
    model, processor, tokenizer = build(tiny_bert, pair_representation="start_and_end_markers", packing=packing)
    assert model.classifier.in_features == 4 * model.text_encoder.config.hidden_size
    head_open, head_close, tail_open, tail_close = tokenizer.convert_tokens_to_ids(list(processor.config.markers))
    closing = {head_open: head_close, tail_open: tail_close}
    word_ids = tokenizer(TOKENS, is_split_into_words=True).word_ids()
    features = processor.featurize(post_instances(), with_labels=False)
    batch = processor.collate(features)
    ids, positions = batch["input_ids"], batch["position_ids"]
    for k, (head, tail) in enumerate(PAIRS):
        row = batch["pair_row"][k]
        for start, end, name in (("head_marker", "head_end_marker", head), ("tail_marker", "tail_end_marker", tail)):
            first, last = batch[start][k], batch[end][k]
            assert ids[row, last] == closing[int(ids[row, first])]  # <s> closes with </s>, <o> with </o>
            subwords = sum(SPANS[name].start <= w < SPANS[name].end for w in word_ids if w is not None)
            text_token = batch["head_token"][k]  # a text sub-word of the pair's segment
            in_text = bool(batch["attention_mask"][row, text_token, first])  # the text reads it: a solid marker
            # a solid pair encloses the entity's sub-words; a levitated one sits at its first and last
            assert positions[row, last] - positions[row, first] == (subwords + 1 if in_text else subwords - 1)
    with torch.no_grad():
        packed = model(**batch).logits
        alone = torch.cat([model(**processor.collate([feature])).logits for feature in features])
    if packing != "cover":  # alone, a cover pair may be read from its other side
        torch.testing.assert_close(packed, alone, rtol=1e-5, atol=1e-5)
    # the end markers reach the scores: zeroing their weights changes them
    width = model.text_encoder.config.hidden_size
    with torch.no_grad():
        for classifier in filter(None, (model.classifier, model.inverse_classifier)):
            classifier.weight[:, width : 2 * width] = 0
            classifier.weight[:, 3 * width :] = 0
        assert not torch.allclose(model(**batch).logits, packed)


def test_on_mpnet_packed_posts_read_as_alone_at_its_own_positions(tmp_path):
    """MPNet counts positions from padding_idx + 1 and adds a relative position bias its encoder takes
    from the row's indices: both are read from the position ids, so the text is the plain text's and a
    pair's scores do not depend on where its markers sit in the row."""
    config = {"name": "mtb_levitated", "encoder": make_tiny_mpnet(tmp_path / "mpnet"), "max_length": 32}
    tokenizer = create_vocabulary(config)
    processor = create_processor(config, tokenizer, LABELS)
    torch.manual_seed(0)
    model = create_model(processor.config, LABELS, tokenizer=tokenizer).eval()
    assert type(model.text_encoder).__name__ == "MPNetModel"
    features = processor.featurize(two_posts())
    packed = processor.collate(features)
    with torch.no_grad():
        together = model(**packed).logits
        apart = model(**unpacked(processor)(features)).logits
        alone = torch.cat([model(**processor.collate([feature])).logits for feature in features])
        text = torch.tensor([features[0]["input_ids"]])
        plain = model.encode_text(text, torch.ones_like(text))
        rows = model.encode_rows(packed["input_ids"], packed["attention_mask"], packed["position_ids"])
    torch.testing.assert_close(rows[:, : text.shape[1]], plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(together, apart, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def reading_entities(tiny_bert):
    return build(tiny_bert, text_reads_entities=True)


def test_with_text_reads_entities_the_text_reads_a_marker_pair_per_entity(reading_entities):
    _, processor, tokenizer = reading_entities
    assert processor.config.entity_markers == ("<e>", "</e>")
    entity_ids = tokenizer.convert_tokens_to_ids(["<e>", "</e>"])
    assert not set(entity_ids) & set(tokenizer.convert_tokens_to_ids(list(processor.config.markers)))
    features = processor.featurize(post_instances())
    spans = sorted({tuple(f[key]) for f in features for key in ("head_span", "tail_span")})
    assert len(spans) == len(SPANS) and all(f["entity_spans"] == [list(s) for s in spans] for f in features)
    batch = processor.collate(features)
    n, entities = len(features[0]["input_ids"]), 2 * len(SPANS)
    context = n + entities
    assert batch["input_ids"].shape == (1, context + 4 * len(PAIRS))
    assert batch["input_ids"][0, n:context].tolist() == entity_ids * len(SPANS)
    assert batch["position_ids"][0, n:context].tolist() == [p for span in spans for p in span]
    mask = batch["attention_mask"][0]
    # the text and the entity markers read each other, never a pair's marker
    assert mask[:context, :context].all() and not mask[:context, context:].any()
    for k in range(len(PAIRS)):
        start = context + 4 * k
        assert batch["head_marker"][k] == start
        assert mask[start].nonzero().flatten().tolist() == list(range(context)) + list(range(start, start + 4))


def test_with_text_reads_entities_a_pair_scores_the_same_in_any_batch(reading_entities):
    model, processor, _ = reading_entities
    features = processor.featurize(two_posts())
    # a pair alone in its batch still has its post's entities: the context is the post's, not the batch's
    assert_batch_free(model, processor, features)
    with torch.no_grad():  # the text reads the entities: its vectors are no longer those of the plain text
        batch = processor.collate(features[:4])
        text = torch.tensor([features[0]["input_ids"]])
        plain = model.encode_text(text, torch.ones_like(text))
        rows = model.encode_rows(batch["input_ids"], batch["attention_mask"], batch["position_ids"])
    assert not torch.allclose(rows[:, : text.shape[1]], plain, atol=1e-3)
    # trained like the plain model: the loss reaches the entity markers' embeddings through the text
    model.zero_grad()
    model(**processor.collate(features)).loss.backward()
    embeddings = model.text_encoder.get_input_embeddings().weight.grad
    entity_ids = processor.tokenizer.convert_tokens_to_ids(list(processor.config.entity_markers))
    assert embeddings[entity_ids].abs().sum(-1).gt(0).all()
    model.zero_grad()


def test_the_predictor_never_cuts_a_posts_pairs_into_two_batches(reading_entities, tmp_path):
    model, processor, tokenizer = reading_entities
    loaded = load_model(save_model_folder(model, tokenizer, tmp_path / "model"))
    assert loaded.processor.config.entity_markers == ("<e>", "</e>")
    instances = two_posts()  # 4 pairs of one post, 1 of another, 4 of the first post's text again
    predictor = Predictor(loaded.model, loaded.processor)
    # batches of 3 records, grown to whole posts: cut at 3, the fourth pair would be featurized with
    # only its own two entities
    assert list(predictor._chunks(instances, 3)) == [(0, 4), (4, 9)]
    small = predictor.predict(instances, batch_size=3, progress=False)
    whole = predictor.predict(instances, batch_size=64, progress=False)
    for a, b in zip(small, whole):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)
    with torch.no_grad():
        direct = model(**processor.collate(processor.featurize(instances))).logits.softmax(-1)
    assert [line["scores"][label] for line in whole for label in LABELS] == pytest.approx(
        direct.flatten().tolist(), abs=1e-5
    )


@pytest.fixture(scope="module")
def by_subject(tiny_bert):
    return build(tiny_bert, packing="subject")


def test_subject_packing_marks_the_head_in_the_text_and_levitates_each_tail(by_subject):
    _, processor, tokenizer = by_subject
    head_open, head_close, tail_open, tail_close = tokenizer.convert_tokens_to_ids(list(processor.config.markers))
    features = processor.featurize(post_instances())
    word_ids = tokenizer(TOKENS, is_split_into_words=True).word_ids()
    for feature, (_head, tail) in zip(features, PAIRS):
        ids = feature["input_ids"]
        assert ids.count(head_open) == ids.count(head_close) == 1 and tail_open not in ids
        assert ids[feature["head_marker"]] == head_open
        # the head's sub-words sit between its markers; the tail's span points at the tail's own sub-words
        first, last = feature["head_span"]
        assert ids[first - 1] == head_open and ids[last + 1] == head_close
        tail_ids = [ids[p] for p in range(feature["tail_span"][0], feature["tail_span"][1] + 1)]
        plain = tokenizer(TOKENS, is_split_into_words=True)["input_ids"]
        assert tail_ids == [
            plain[p] for p, w in enumerate(word_ids) if w is not None and SPANS[tail].start <= w < SPANS[tail].end
        ]
    batch = unpacked(processor)(features)
    # one segment per head: alice (2 pairs), bob, new york
    assert batch["input_ids"].shape[0] == 3 and batch["pair_row"].tolist() == [0, 0, 1, 2]
    n = len(features[0]["input_ids"])
    row = batch["input_ids"][0]
    assert row[n : n + 4].tolist() == [tail_open, tail_close] * 2
    assert batch["position_ids"][0, n : n + 2].tolist() == features[0]["tail_span"]
    assert batch["head_marker"][:2].tolist() == [features[0]["head_marker"]] * 2
    assert batch["tail_marker"][:2].tolist() == [n, n + 2]
    mask = batch["attention_mask"][0]
    assert not mask[:n, n:].any()  # the text reads no levitated marker
    assert mask[n].nonzero().flatten().tolist() == [*range(n), n, n + 1]


def test_subject_packing_scores_a_pair_the_same_alone_packed_or_beside_its_heads_other_pairs(by_subject):
    model, processor, _ = by_subject
    features = processor.featurize(two_posts())
    packed = assert_batch_free(model, processor, features)
    assert not torch.allclose(packed[0], packed[1])  # two tails of one head are told apart
    model.zero_grad()
    model(**processor.collate(features)).loss.backward()
    assert model.text_encoder.get_input_embeddings().weight.grad.abs().sum() > 0
    model.zero_grad()


def test_subject_packing_and_entity_markers_are_one_or_the_other(tiny_bert):
    with pytest.raises(Exception, match="text_reads_entities goes with packing: post"):
        build(tiny_bert, packing="subject", text_reads_entities=True)
