"""Every model on a non-BERT encoder: a tiny MPNet (``<s>``/``</s>`` as start and end, no token_type_ids).

The encoder is saved to a folder and read back through ``from_pretrained``, as ``mpnet-base`` is.
Entity markers are chosen per tokenizer and are never one of its special tokens.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from conftest import make_re_instances, make_tiny_mpnet
from mmie.encoders.text import load_tokenizer
from mmie.errors import ConfigError
from mmie.features.text import (
    DEFAULT_MARKERS,
    FALLBACK_MARKERS,
    RelationFeaturizer,
    add_entity_marker_tokens,
    add_marker_tokens,
)
from mmie.inference.loading import load_model
from mmie.inference.saving import save_model_folder
from mmie.models import get_model_entry, list_models
from mmie.models.layers.visual_prefix import require_prefix_support
from test_glra import LABELS, image_inputs, text_batch
from test_glra import build as build_image_re
from test_models import build, clip_settings

# The visual-prefix models put image keys and values into the encoder's self-attention through its
# cache; MPNet's attention takes none (its relative position bias spans the text only).
PREFIX_MODELS = {"tpm_mi", "prefix_all_images", "bert_crf_first_image", "bert_crf_stitched"}
PREFIX_MODELS |= {"hvpnet", "hvpnet_mi", "hvpnet_re", "hvpnet_mi_re", "visualpt_moe", "visualpt_moe_mi", "tpm_mi_re"}
# MKGformer runs the encoder layer by layer through BERT's layer parts, which MPNet's layers lack.
LAYERWISE_MODELS = {"mkgformer"}
# MEGA's head stacks five linear maps (W_h, W_v, W_1, W_2, W_c: the authors' code) over a sum of the
# objects; at 1e-2 Adam overshoots it within three steps (it goes down by the fourth). The paper trains at 2e-5.
LEARNING_RATES = {"mega": 1e-3}
# Bound to one kind of checkpoint: VisualBERT starts from a BERT-layout encoder, CLIP is its own text
# tower; each refuses an MPNet by name (tests/test_pretrained_vl.py).
CHECKPOINT_BOUND_MODELS = {"visualbert_re", "clip_re"}
WITH_ENCODER = [name for name in list_models() if not get_model_entry(name).builds_vocabulary]
# The test is about the text encoder: a head far wider than the tiny encoder is made tiny like it (UMGF's
# paper-sized fusion, 512 wide and 6 layers deep, does not descend at this test's learning rate of 1e-2).
TINY_HEADS = {
    name: {"fusion_dim": 16, "fusion_layers": 2, "fusion_heads": 2, "fusion_feedforward": 16}
    for name in ("umgf", "umgf_mi", "umgf_re")
}


@pytest.fixture(scope="module")
def tiny_mpnet(tmp_path_factory) -> str:
    return make_tiny_mpnet(tmp_path_factory.mktemp("tiny-mpnet"))


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> str:
    from test_glra import make_tiny_vit

    return make_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))


def test_the_tiny_mpnet_is_what_mpnet_base_is_like(tiny_mpnet):
    from transformers import AutoModel

    tokenizer = load_tokenizer(tiny_mpnet)
    assert type(AutoModel.from_pretrained(tiny_mpnet)).__name__ == "MPNetModel"
    assert tokenizer.cls_token == "<s>" and tokenizer.sep_token == "</s>"
    assert "token_type_ids" not in tokenizer(["alice"], is_split_into_words=True)


@pytest.mark.parametrize(
    "name", [name for name in WITH_ENCODER if name not in PREFIX_MODELS | LAYERWISE_MODELS | CHECKPOINT_BOUND_MODELS]
)
def test_every_model_trains_predicts_and_reloads_on_mpnet(name, tiny_mpnet, tmp_path, request):
    settings = {**TINY_HEADS.get(name, {}), **clip_settings(name, request)}  # promptMNER's CLIP: the tiny one
    model, tokenizer, batch, labels = build(name, tiny_mpnet, **settings)
    assert "token_type_ids" not in batch  # MPNet has none: the batch never invents them
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATES.get(name, 1e-2))
    losses = []
    for _ in range(3):  # a few train steps on the same batch: the loss goes down
        optimizer.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]

    model.eval()
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    with torch.no_grad():
        output = model(**inputs)
    assert output.loss is None
    loaded = load_model(save_model_folder(model, tokenizer, tmp_path / "model"), device="cpu")
    assert type(loaded.model.text_encoder).__name__ == "MPNetModel"
    with torch.no_grad():
        assert torch.equal(loaded.model(**inputs).logits, output.logits)
    if model.task == "re":
        assert loaded.model.model_config.markers == FALLBACK_MARKERS


@pytest.mark.parametrize("name", sorted(PREFIX_MODELS))
def test_visual_prefix_models_refuse_an_encoder_without_a_cache(name, tiny_mpnet):
    assert name in list_models()
    with pytest.raises(ConfigError, match="visual prefix needs a text encoder.*'mpnet' takes none"):
        build(name, tiny_mpnet)


@pytest.mark.parametrize("name", sorted(LAYERWISE_MODELS))
def test_layer_by_layer_models_refuse_a_non_bert_layout(name, tiny_mpnet):
    assert name in list_models()
    with pytest.raises(ConfigError, match="MPNetModel is not a BERT-family encoder"):
        build(name, tiny_mpnet)


@pytest.mark.parametrize("name", sorted(CHECKPOINT_BOUND_MODELS))
def test_checkpoint_bound_models_refuse_an_mpnet_by_name(name, tiny_mpnet):
    assert name in list_models()
    with pytest.raises(ConfigError, match=r"model\.encoder: \w+ needs .*, got a MPNetModel"):
        build(name, tiny_mpnet)


def test_a_bert_encoder_carries_a_visual_prefix(tiny_bert):
    from transformers import AutoModel

    require_prefix_support(AutoModel.from_pretrained(tiny_bert))  # no error: BERT's attention takes a cache


@pytest.mark.parametrize("name", ["glra", "mtb_all_images"])
def test_image_relation_models_read_mpnet_text_and_tiny_vision(name, tiny_mpnet, tiny_vit):
    tokenizer = AutoTokenizer.from_pretrained(tiny_mpnet)
    model = build_image_re(name, tiny_mpnet, tiny_vit, tokenizer=tokenizer)
    assert model.model_config.markers == FALLBACK_MARKERS
    instances = make_re_instances(4, seed=5)
    batch = {**text_batch(tokenizer, model, instances), **image_inputs([1, 2, 4, 0])}
    model.train()
    output = model(**batch)
    output.loss.backward()
    assert torch.isfinite(output.loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.text_encoder.parameters())
    model.eval()
    with torch.no_grad():
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        assert model(**inputs).logits.shape == (4, len(LABELS))


# ---------------------------------------------------------------------------------- markers


def test_markers_are_never_the_tokenizers_special_tokens(tiny_mpnet, tiny_bert):
    mpnet = load_tokenizer(tiny_mpnet)
    assert add_marker_tokens(mpnet, None) == FALLBACK_MARKERS  # <s> and </s> are MPNet's start and end
    assert add_marker_tokens(load_tokenizer(tiny_bert), None) == DEFAULT_MARKERS  # BERT keeps its markers
    marker_ids = mpnet.convert_tokens_to_ids(list(FALLBACK_MARKERS))
    assert not set(FALLBACK_MARKERS) & set(mpnet.all_special_tokens)
    assert not set(marker_ids) & set(mpnet.all_special_ids)

    instances = make_re_instances(12, seed=3)
    features = RelationFeaturizer(mpnet, LABELS, 64, FALLBACK_MARKERS).featurize(instances, with_labels=False)
    for instance, feature in zip(instances, features):
        ids = feature["input_ids"]
        # the text's own start and end tokens only where the tokenizer puts them, once each
        assert ids[0] == mpnet.cls_token_id and ids[-1] == mpnet.sep_token_id
        assert ids.count(mpnet.cls_token_id) == 1 and ids.count(mpnet.sep_token_id) == 1
        # each marker exactly once, and the start markers are what the models read
        assert [ids.count(marker) for marker in marker_ids] == [1, 1, 1, 1]
        assert ids[feature["head_start"]] == marker_ids[0] and ids[feature["tail_start"]] == marker_ids[2]
        after_head_marker = mpnet.convert_ids_to_tokens(ids)[feature["head_start"] + 1]
        assert after_head_marker in (instance.post.tokens[instance.head.start].lower(), *FALLBACK_MARKERS)


def test_entity_markers_are_never_special_tokens_nor_the_pair_markers(tiny_mpnet):
    mpnet = load_tokenizer(tiny_mpnet)
    markers = add_marker_tokens(mpnet, None)
    assert add_entity_marker_tokens(mpnet, None) == ("<e>", "</e>")
    ids = mpnet.convert_tokens_to_ids(["<e>", "</e>", *markers])
    assert len(set(ids)) == 6 and not set(ids) & set(mpnet.all_special_ids)
    # a tokenizer that already has </e> as a special token gets the next pair
    taken = load_tokenizer(tiny_mpnet)
    taken.add_special_tokens({"additional_special_tokens": ["</e>"]})
    assert add_entity_marker_tokens(taken, None) == ("[E]", "[/E]")
    with pytest.raises(ConfigError, match=r"model\.entity_markers: \['</e>'\] already are special tokens"):
        add_entity_marker_tokens(taken, ("<e>", "</e>"))
    with pytest.raises(ConfigError, match="two different markers"):
        add_entity_marker_tokens(taken, ("[X]", "[X]"))


def test_a_configured_marker_that_is_a_special_token_is_refused(tiny_mpnet):
    with pytest.raises(ConfigError, match=r"model\.markers: \['<s>', '</s>'\] already are special tokens"):
        add_marker_tokens(load_tokenizer(tiny_mpnet), DEFAULT_MARKERS)


def test_four_different_markers_are_needed(tiny_mpnet):
    with pytest.raises(ConfigError, match="four different markers"):
        add_marker_tokens(load_tokenizer(tiny_mpnet), ("[A]", "[A]", "[B]", "[/B]"))
