"""MEGA and BERT+SG+Att: the scene-graph file and its errors, the structural alignment, the inputs, and
each model's defining mechanism on a small scene-graph file the tests write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import make_re_instances
from mmie.data.schema import Post, RelationInstance, Span
from mmie.errors import ConfigError, DataError
from mmie.models.registry import create_model, create_processor, create_vocabulary
from mmie.scenegraph import (
    NoSceneGraph,
    PrecomputedSceneGraphs,
    SceneGraph,
    SceneGraphUnavailable,
    SceneObject,
    chain_heads,
    structural_alignment,
    write_scene_graphs,
)
from mmie.training.engine import label_set

FEATURE = 6  # object feature size of the test files


def scene_graphs_for(records: list[RelationInstance], path: Path, objects: int = 3, seed: int = 0) -> Path:
    """A scene-graph file keyed by record id: ``objects`` objects with random features, a chain of
    relations between them, and each post's parse given as a chain."""
    generator = torch.Generator().manual_seed(seed)
    graphs = {}
    for record in records:
        items = [SceneObject(f"thing{i}", torch.randn(FEATURE, generator=generator).tolist()) for i in range(objects)]
        relations = [(i, "next to", i + 1) for i in range(objects - 1)]
        graphs[record.id] = SceneGraph(record.id, items, relations, chain_heads(len(record.post.tokens)))
    write_scene_graphs(graphs.values(), path, key="record")
    return path


def build(name: str, tiny_bert: str, records: list[RelationInstance], path: Path, **settings):
    config = {
        "name": name,
        "encoder": tiny_bert,
        "scene_graphs": str(path),
        "scene_graph_key": "record",
        "object_feature_size": FEATURE,
        "max_objects": 4,
        **settings,
    }
    tokenizer = create_vocabulary(config)
    labels = label_set("re", records)
    processor = create_processor(config, tokenizer, labels)
    torch.manual_seed(0)
    model = create_model(processor.config, labels, tokenizer=tokenizer)
    model.eval()
    return model, processor


def no_labels(batch: dict) -> dict:
    return {key: value for key, value in batch.items() if key != "labels"}


# ------------------------------------------------------------------------------ the file


def write_lines(path: Path, *lines: object) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


GOOD = {"image": "a.jpg", "objects": [{"label": "man", "feature": [1, 2], "box": [0, 0, 5, 5]}], "relations": []}


def test_the_file_is_read_by_image_name(tmp_path):
    path = write_lines(
        tmp_path / "sg.jsonl",
        GOOD,
        {
            "image": "b.jpg",
            "objects": [{"label": "a", "feature": [0, 1]}, {"label": "b", "feature": [1, 0]}],
            "relations": [[0, "holding", 1]],
        },
    )
    provider = PrecomputedSceneGraphs(path)
    graph = provider.graph("folder/b.jpg")  # looked up by file name too
    assert [o.label for o in graph.objects] == ["a", "b"] and graph.edges == [(0, 1)]
    assert provider.graph("a.jpg").objects[0].box == (0.0, 0.0, 5.0, 5.0)
    with pytest.raises(SceneGraphUnavailable, match="no scene graph for image 'c.jpg'"):
        provider.graph("c.jpg")


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({**GOOD, "objects": [{"label": "man", "feature": "x"}]}, "objects[0].feature"),
        ({**GOOD, "objects": [{"feature": [1, 2]}]}, "objects[0].label"),
        ({**GOOD, "objects": [{"label": "man", "feature": [1, 2], "box": [1, 2]}]}, "objects[0].box"),
        ({**GOOD, "relations": [[0, "on", 3]]}, "relations[0]"),
        ({**GOOD, "colour": "red"}, "colour"),
        ({**GOOD, "objects": [{"label": "man", "feature": [1, 2, 3]}], "image": "z.jpg"}, "objects[0].feature"),
        ({**GOOD, "text_heads": [5]}, "text_heads"),
        ({"record": "3", "objects": []}, "record"),
    ],
)
def test_errors_name_the_file_the_line_and_the_field(tmp_path, line, field):
    path = write_lines(tmp_path / "sg.jsonl", GOOD, line)
    with pytest.raises(DataError) as error:
        PrecomputedSceneGraphs(path)
    assert str(error.value).startswith(f"{path}:2: {field}:")


def test_a_line_that_is_not_json_is_named(tmp_path):
    path = write_lines(tmp_path / "sg.jsonl", GOOD, "{not json")
    with pytest.raises(DataError, match=rf"{path}:2: not a JSON object"):
        PrecomputedSceneGraphs(path)


def test_without_a_file_there_is_none_and_the_model_refuses(tiny_bert):
    with pytest.raises(SceneGraphUnavailable, match="there is no scene graph for 'a.jpg': no scene-graph file"):
        NoSceneGraph().graph("a.jpg")
    records = make_re_instances(2)
    tokenizer = create_vocabulary({"name": "mega", "encoder": tiny_bert})
    for name in ("mega", "bert_sg_att"):
        with pytest.raises(ConfigError, match="model.scene_graphs: .*runs no scene-graph detector"):
            create_processor({"name": name, "encoder": tiny_bert}, tokenizer, label_set("re", records))


def test_a_feature_size_other_than_the_configs_is_refused(tiny_bert, tmp_path):
    records = make_re_instances(2)
    path = scene_graphs_for(records, tmp_path / "sg.jsonl")
    with pytest.raises(ConfigError, match="model.object_feature_size: 4096, but the objects of .* have 6-number"):
        build("mega", tiny_bert, records, path, object_feature_size=4096)


# --------------------------------------------------------------------- structural alignment


def test_structural_alignment_matches_nodes_by_their_neighbourhoods():
    # objects: a star (0 in the centre of 1, 2, 3); words: 0 <- 1 -> 2, 1 the root, plus a lone chain end 3 - 2
    alignment = structural_alignment(4, [(0, 1), (0, 2), (0, 3)], [1, -1, 1, 2], top=4)
    assert alignment.shape == (4, 4)
    assert alignment[0].argmax() == 1  # the hub matches the word with the most neighbours
    assert alignment[1].argmax() in (0, 3)  # a leaf matches a leaf word
    kept = structural_alignment(4, [(0, 1), (0, 2), (0, 3)], [1, -1, 1, 2], top=2)
    assert ((kept > 0).sum(axis=1) <= 2).all()  # (S3): the top 2 words per object


def test_the_chain_approximation_links_each_word_to_the_next():
    assert chain_heads(4) == [1, 2, 3, -1] and chain_heads(0) == []


# ---------------------------------------------------------------------------------- inputs


def test_inputs_carry_the_objects_and_the_alignment_on_first_subwords(tiny_bert, tmp_path):
    records = make_re_instances(4)
    path = scene_graphs_for(records, tmp_path / "sg.jsonl", objects=3)
    _, processor = build("mega", tiny_bert, records, path)
    batch = processor(records)
    assert batch["object_features"].shape == (4, 4, FEATURE)
    assert batch["object_mask"].tolist() == [[True, True, True, False]] * 4
    assert batch["structural_alignment"].shape == (*batch["input_ids"].shape, 4)
    rows = torch.arange(4)
    assert (batch["structural_alignment"][rows, batch["head_start"]] == 0).all()  # markers are no words
    assert (batch["structural_alignment"][:, 0] == 0).all()  # [CLS]
    assert (batch["structural_alignment"][..., 3] == 0).all()  # the empty slot
    assert (batch["structural_alignment"].sum(dim=(1, 2)) > 0).all()


def test_a_parse_is_required_unless_the_approximation_is_chosen(tiny_bert, tmp_path):
    records = make_re_instances(2)
    graphs = [SceneGraph(r.id, [SceneObject("a", [0.0] * FEATURE)], []) for r in records]
    write_scene_graphs(graphs, tmp_path / "sg.jsonl", key="record")
    _, processor = build("mega", tiny_bert, records, tmp_path / "sg.jsonl")
    with pytest.raises(DataError, match="carries no text_heads.*text_graph: chain"):
        processor(records)
    _, processor = build("mega", tiny_bert, records, tmp_path / "sg.jsonl", text_graph="chain")
    assert processor(records)["object_mask"][:, 0].all()
    _, processor = build("bert_sg_att", tiny_bert, records, tmp_path / "sg.jsonl")  # reads no parse
    assert "structural_alignment" not in processor(records)


def test_a_post_without_an_image_has_no_objects(tiny_bert, tmp_path):
    post = Post(id="p", tokens=["alice", "lives", "in", "paris"], images=[])
    record = RelationInstance(post, Span(0, 1, "alice"), Span(3, 4, "paris"), "None")
    path = write_lines(
        tmp_path / "sg.jsonl", {"image": "x.jpg", "objects": [{"label": "a", "feature": [0.0] * FEATURE}]}
    )
    model, processor = build("bert_sg_att", tiny_bert, [record], path, scene_graph_key="image")
    batch = processor([record])
    assert not batch["object_mask"].any()
    with torch.no_grad():
        output = model(**no_labels(batch))
    assert (output.object_attention == 0).all() and torch.isfinite(output.logits).all()


# ---------------------------------------------------------------------------- mechanisms


def test_bert_sg_att_attention_sums_to_one_over_the_posts_objects(tiny_bert, tmp_path):
    records = make_re_instances(4)
    path = scene_graphs_for(records, tmp_path / "sg.jsonl", objects=3)
    model, processor = build("bert_sg_att", tiny_bert, records, path)
    batch = processor(records)
    with torch.no_grad():
        alpha = model(**no_labels(batch)).object_attention
    assert alpha.shape == (4, 4)
    torch.testing.assert_close(alpha.sum(dim=-1), torch.ones(4))
    assert (alpha[:, 3] == 0).all() and (alpha[:, :3] > 0).all()


def test_mega_semantic_attention_sums_to_one_over_the_posts_text(tiny_bert, tmp_path):
    records = make_re_instances(4)
    path = scene_graphs_for(records, tmp_path / "sg.jsonl")
    model, processor = build("mega", tiny_bert, records, path)
    batch = processor(records)
    with torch.no_grad():
        attention = model(**no_labels(batch)).object_attention  # [B, N, T]
    torch.testing.assert_close(attention.sum(dim=-1), torch.ones(4, 4))
    padding = ~batch["attention_mask"].bool()
    assert padding.any() and (attention.masked_select(padding[:, None, :].expand_as(attention)) == 0).all()


@pytest.mark.parametrize("name", ["mega", "bert_sg_att"])
def test_an_objects_feature_changes_the_logits_an_empty_slots_does_not(name, tiny_bert, tmp_path):
    records = make_re_instances(3)
    path = scene_graphs_for(records, tmp_path / "sg.jsonl", objects=2)
    model, processor = build(name, tiny_bert, records, path)
    batch = no_labels(processor(records))
    with torch.no_grad():
        logits = model(**batch).logits
        real = dict(batch, object_features=batch["object_features"].clone())
        real["object_features"][:, 1] += 10.0
        empty = dict(batch, object_features=batch["object_features"].clone())
        empty["object_features"][:, 3] += 10.0
        assert (model(**real).logits - logits).abs().amax(dim=-1).gt(1e-6).all()
        torch.testing.assert_close(model(**empty).logits, logits)


def test_mega_reads_the_structural_alignment(tiny_bert, tmp_path):
    records = make_re_instances(3)
    path = scene_graphs_for(records, tmp_path / "sg.jsonl")
    model, processor = build("mega", tiny_bert, records, path)
    batch = no_labels(processor(records))
    with torch.no_grad():
        logits = model(**batch).logits
        cleared = model(**dict(batch, structural_alignment=torch.zeros_like(batch["structural_alignment"]))).logits
    assert (cleared - logits).abs().amax(dim=-1).gt(1e-4).all()


def test_mega_learns_the_relation_from_the_objects_alone(tiny_bert, tmp_path):
    # the same text for every post; the label is told only by which object the scene graph shows
    records, graphs = [], []
    for index in range(8):
        label = "/per/loc/place_of_residence" if index % 2 else "None"
        post = Post(id=f"p{index}", tokens=["alice", "and", "paris"], images=[])
        records.append(RelationInstance(post, Span(0, 1, "alice"), Span(2, 3, "paris"), label))
        feature = [1.0, 0, 0, 0, 0, 0] if index % 2 else [0, 0, 0, 0, 0, 1.0]
        graphs.append(SceneGraph(post.id, [SceneObject("thing", feature)], [], chain_heads(3)))
    write_scene_graphs(graphs, tmp_path / "sg.jsonl", key="record")
    model, processor = build("mega", tiny_bert, records, tmp_path / "sg.jsonl")
    batch = processor(records)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(30):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model(**no_labels(batch)).logits.argmax(-1)
    assert torch.equal(predicted, batch["labels"])


def test_marked_words_know_which_post_token_they_are():
    from mmie.features.text import insert_entity_markers

    tokens = ["sap", "se", "bought", "acme"]
    marked = insert_entity_markers(tokens, Span(0, 2, "sap se"), Span(0, 1, "sap"), ("<s>", "</s>", "<o>", "</o>"))
    assert [marked.words[i] for i, s in enumerate(marked.sources) if s is None] == ["<s>", "<o>", "</o>", "</s>"]
    assert [tokens[s] for s in marked.sources if s is not None] == tokens
    assert all(marked.words[i] == tokens[s] for i, s in enumerate(marked.sources) if s is not None)


def test_the_alignment_follows_its_words_through_truncation(tiny_bert, tmp_path):
    from conftest import TEST_WORDS

    tokens = [word for word in TEST_WORDS if word.isalpha()][:30]  # each one sub-word of the tiny vocabulary
    post = Post(id="long", tokens=tokens, images=[])
    record = RelationInstance(post, Span(0, 1, tokens[0]), Span(29, 30, tokens[29]), "None")
    objects = [SceneObject(f"o{i}", [float(i)] * FEATURE) for i in range(3)]
    heads = [3] * 3 + [-1] + [3] * 26  # word 3 the hub of a star parse
    write_scene_graphs(
        [SceneGraph("long", objects, [(0, "on", 1), (0, "by", 2)], heads)], tmp_path / "sg.jsonl", key="record"
    )
    _, processor = build("mega", tiny_bert, [record], tmp_path / "sg.jsonl", max_length=16)
    batch = processor([record])
    ids = batch["input_ids"][0].tolist()
    assert len(ids) == 16  # cut around the two entities
    expected = torch.as_tensor(structural_alignment(3, [(0, 1), (0, 2)], heads), dtype=torch.float32)
    vocabulary = processor.tokenizer.convert_tokens_to_ids(tokens)
    seen = 0
    for position, token_id in enumerate(ids):
        if token_id in vocabulary:
            word = vocabulary.index(token_id)
            torch.testing.assert_close(batch["structural_alignment"][0, position, :3], expected[:, word])
            seen += 1
        else:  # [CLS], [SEP], the markers
            assert (batch["structural_alignment"][0, position] == 0).all()
    assert seen == 16 - 6 and (batch["structural_alignment"][0] > 0).any()  # ten words kept, some aligned
