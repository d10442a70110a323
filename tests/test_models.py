"""Every registered model: a tiny forward/backward, and save -> load giving the same outputs.

Parametrized over ``list_models()``, so models registered later are covered automatically.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from conftest import make_ner_posts, make_re_instances, make_tiny_roberta
from mmie.data.schema import Post
from mmie.features.processor import ner_processor
from mmie.features.settings import SceneGraphInputs
from mmie.inference.loading import load_model
from mmie.inference.saving import save_model_folder
from mmie.models import (
    create_model,
    create_processor,
    create_vocabulary,
    get_model_entry,
    list_models,
    register_model,
)
from mmie.models.base import ExtractionModel, ModelConfig
from mmie.training.engine import label_set

# Models bound to one kind of checkpoint, and the fixture of their tiny one (the rest run on tiny_bert).
ENCODER_FIXTURES = {"clip_re": "tiny_clip"}
# Models with a CLIP beside their text encoder (model.clip_model), and the fixture of its tiny one.
CLIP_FIXTURES = {"promptmner": "tiny_clip"}


def encoder_of(name: str, request: pytest.FixtureRequest, tiny_bert: str) -> str:
    fixture = ENCODER_FIXTURES.get(name)
    return tiny_bert if fixture is None else request.getfixturevalue(fixture)


def clip_settings(name: str, request: pytest.FixtureRequest) -> dict:
    """``model.clip_model`` of a model with a CLIP beside its text encoder: the tiny CLIP."""
    fixture = CLIP_FIXTURES.get(name)
    return {} if fixture is None else {"clip_model": request.getfixturevalue(fixture)}


def text_only(records: list) -> list:
    """The records without image references: the registry contract is tested on text alone
    (image models mask their empty slots); image pathways are tested in each model's own tests."""
    for record in records:
        (record if isinstance(record, Post) else record.post).images = []
    return records


_SCENE_GRAPHS = tempfile.TemporaryDirectory(prefix="mmie-scene-graphs-")  # removed when the tests end


def scene_graph_settings(name: str, records: list) -> dict:
    """A scene-graph model (MEGA, BERT+SG+Att) reads a scene-graph file: one written for ``records``."""
    if not issubclass(get_model_entry(name).config_class, SceneGraphInputs):
        return {}
    from test_mega import FEATURE, scene_graphs_for

    path = scene_graphs_for(records, Path(_SCENE_GRAPHS.name) / f"{name}-{len(records)}.jsonl")
    return {"scene_graphs": str(path), "scene_graph_key": "record", "object_feature_size": FEATURE}


def build(name: str, encoder: str, **settings):
    """The model, its tokenizer, a batch and the labels, built as the engine builds them: what the model
    reads text with comes from create_vocabulary (``encoder``'s tokenizer, or for a word-level model
    the vocabulary of the records, which then have no encoder to be given)."""
    entry = get_model_entry(name)
    records = text_only(make_ner_posts(6) if entry.task == "ner" else make_re_instances(6))
    labels = label_set(entry.task, records)
    config = {
        "name": name,
        **({} if entry.builds_vocabulary else {"encoder": encoder}),
        **scene_graph_settings(name, records),
        **settings,
    }
    tokenizer = create_vocabulary(config, records)
    processor = create_processor(config, tokenizer, labels)
    torch.manual_seed(0)
    model = create_model(processor.config, labels, tokenizer=tokenizer)
    batch = processor(records)
    return model, tokenizer, batch, labels


def test_the_baselines_are_registered():
    assert {"bert_softmax", "bert_crf", "bilstm_crf", "cnn_bilstm_crf", "hbilstm_crf"} <= set(list_models("ner"))
    assert {"bert_cls", "mtb"} <= set(list_models("re"))


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name, tiny_bert, request):
    model, tokenizer, batch, labels = build(name, encoder_of(name, request, tiny_bert), **clip_settings(name, request))
    model.train()
    output = model(**batch)
    assert output.loss is not None and torch.isfinite(output.loss)
    output.loss.backward()
    encoder_grads = [p.grad for n, p in model.named_parameters() if not model.is_head_parameter(n)]
    head_grads = [p.grad for n, p in model.named_parameters() if model.is_head_parameter(n)]
    assert head_grads and all(g is not None for g in head_grads)
    if not get_model_entry(name).builds_vocabulary:  # a pretrained encoder learns too (word-level models have none)
        assert any(g is not None and g.abs().sum() > 0 for g in encoder_grads)
    else:  # no text encoder; the only pretrained part a word-level model may have is a (frozen) vision encoder
        pretrained = [n for n, _ in model.named_parameters() if not model.is_head_parameter(n)]
        assert all(n.startswith("vision_encoder.") for n in pretrained)
        assert all(g is None for g in encoder_grads)

    model.eval()
    without_labels = {key: value for key, value in batch.items() if key != "labels"}
    with torch.no_grad():
        output = model(**without_labels)
    assert output.loss is None
    if model.task == "ner":
        assert output.logits.shape == (*batch["word_mask"].shape, len(labels))
        assert output.predictions.shape == batch["word_mask"].shape
        assert (output.predictions[~batch["word_mask"]] == -100).all()
        assert (output.predictions[batch["word_mask"]] >= 0).all()
    else:
        assert output.logits.shape == (len(batch["labels"]), len(labels))


@pytest.mark.parametrize("name", list_models())
def test_saved_folder_reloads_to_the_same_outputs_without_pickles(name, tiny_bert, tmp_path, request):
    model, tokenizer, batch, labels = build(name, encoder_of(name, request, tiny_bert), **clip_settings(name, request))
    model.eval()
    folder = save_model_folder(model, tokenizer, tmp_path / "model")
    assert not [p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".pickle")]
    loaded = load_model(folder, device="cpu")
    assert loaded.labels == labels and loaded.task == model.task
    assert len(loaded.tokenizer) == len(tokenizer)
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded.model(**inputs).logits)


def test_register_model_checks_the_task():
    with pytest.raises(TypeError, match="task"):

        @register_model("no_task", config=ModelConfig, processor=ner_processor)
        class NoTask(ExtractionModel):  # noqa: F841 - registration is the test
            task = "parsing"


@pytest.mark.parametrize("name", ["bert_crf", "mtb"])
def test_a_roberta_encoder_works_too(name, tmp_path):
    encoder = make_tiny_roberta(tmp_path / "roberta")
    model, tokenizer, batch, labels = build(name, encoder)
    assert tokenizer.add_prefix_space  # pre-split words are encoded as inside a text
    if model.task == "re":  # RoBERTa's <s> and </s> are its own special tokens: other markers
        assert model.model_config.markers == ("[E1]", "[/E1]", "[E2]", "[/E2]")
        marker_ids = tokenizer.convert_tokens_to_ids(["[E1]", "[E2]"])
        rows = torch.arange(len(batch["input_ids"]))
        assert (batch["input_ids"][rows, batch["head_start"]] == marker_ids[0]).all()
        assert (batch["input_ids"][rows, batch["tail_start"]] == marker_ids[1]).all()
    output = model(**batch)
    assert torch.isfinite(output.loss) and output.loss > 0


def test_mtb_layer_norm_post_layer_normalizes_r_and_reloads(tiny_bert, tmp_path):
    model, tokenizer, batch, labels = build("mtb", tiny_bert, post_layer="layer_norm")
    assert isinstance(model.post_layer, torch.nn.LayerNorm)
    post_layer = [name for name, _ in model.named_parameters() if name.startswith("post_layer.")]
    assert post_layer == ["post_layer.weight", "post_layer.bias"]
    assert all(model.is_head_parameter(name) for name in post_layer)  # trained at the head learning rate
    model.eval()
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    with torch.no_grad():
        model.post_layer.weight.normal_()  # a layer norm away from its identity-like start
        hidden = model.encode_text(inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids"))
        r = model.entity_starts(hidden, inputs["head_start"], inputs["tail_start"])
        normalized = (r - r.mean(-1, keepdim=True)) / torch.sqrt(
            r.var(-1, unbiased=False, keepdim=True) + model.post_layer.eps
        )
        expected = model.classifier(normalized * model.post_layer.weight + model.post_layer.bias)
        logits = model(**inputs).logits
    torch.testing.assert_close(logits, expected)
    loaded = load_model(save_model_folder(model, tokenizer, tmp_path / "model"), device="cpu")
    assert loaded.model.model_config.post_layer == "layer_norm"
    with torch.no_grad():
        assert torch.equal(loaded.model(**inputs).logits, logits)
