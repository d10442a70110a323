"""GVATT-HBiLSTM-CRF and AdaCAN-CNN-BiLSTM-CRF on their real word inputs and a tiny real ViT.

What defines them, tested against the modules and written out from the equations: GVATT's visual
attention is a distribution over the regions that the sentence (the BiLSTM's two final states) steers,
its context is the alpha-weighted sum of the regions, and the modulation gates (in (0, 1)) mix it into
every word; AdaCAN's word-guided visual attention differs per word, its image-guided textual attention
moves with the image, its gates are in (0, 1). For both: the image changes the tags of the posts that
have one and nothing of those without, the character encoder still reads every character, and the
processor brings the first image's region grid from the feature cache.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from PIL import Image

import mmie
from conftest import make_ner_posts, write_splits
from mmie.data import read_dataset
from mmie.data.schema import Post
from mmie.errors import ConfigError
from mmie.features.words import VOCABULARY_NAME
from mmie.models import create_model, create_processor, create_vocabulary, model_config
from mmie.models.bilstm.gvatt_hbilstm_crf import sentence_query
from mmie.models.layers.additive_attention import AdditiveAttention
from mmie.training import train
from mmie.training.engine import label_set
from test_tpm_mi import IMAGE_DIM, tiny_vit  # noqa: F401 - the fixture

GRID = 2  # region_grid of the tests: 4 regions per picture
MODELS = ["gvatt_hbilstm_crf", "adacan_cnn_bilstm_crf"]
SMALL = {"word_dim": 8, "hidden_size": 6, "attention_dim": 5, "char_dim": 4}
SIZES = {
    "gvatt_hbilstm_crf": {**SMALL, "char_hidden_size": 3},
    "adacan_cnn_bilstm_crf": {**SMALL, "char_filters": 5},
}


def text_only(posts: list[Post]) -> list[Post]:
    return [dataclasses.replace(post, images=[]) for post in posts]


def build(name: str, vit: str, posts: list[Post], **settings):
    """Model and processor the way the engine builds them, without dropout (deterministic)."""
    config = {
        "name": name,
        "vision_encoder": vit,
        "region_grid": GRID,
        "dropout": 0.0,
        "singleton_unknown": 0.0,
        **SIZES[name],
        **settings,
    }
    labels = label_set("ner", posts)
    vocabulary = create_vocabulary(config, posts)
    processor = create_processor(config, vocabulary, labels)
    torch.manual_seed(0)
    model = create_model(processor.config, labels, tokenizer=vocabulary).eval()
    return model, processor


def grid_inputs(present: list[bool], seed: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    regions = torch.randn(len(present), 1, GRID * GRID, IMAGE_DIM, generator=generator)
    return {"region_features": regions, "image_mask": torch.tensor(present)[:, None]}


@pytest.fixture(scope="module")
def posts() -> list[Post]:
    return text_only(make_ner_posts(6, seed=7))


# ----------------------------------------------------------------------------- the attention layer


def test_additive_attention_is_a_distribution_over_the_real_keys_steered_by_the_query():
    torch.manual_seed(0)
    attention = AdditiveAttention(query_dim=3, key_dim=4, dim=5)
    keys = torch.randn(2, 6, 4)
    mask = torch.tensor([[True] * 6, [True, True, True, False, False, False]])
    queries = torch.randn(2, 2, 3)
    weights = attention(queries, keys, mask)  # [B, Q, K]
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2))
    assert (weights[1, :, 3:] == 0).all()  # padding keys get nothing
    # written out: softmax_i(w^T tanh(W_k k_i + W_q q + b_q)) over the real keys
    z = torch.tanh(attention.key(keys[0])[None] + attention.query(queries[0])[:, None])  # [Q, K, dim]
    torch.testing.assert_close(weights[0], attention.score(z).squeeze(-1).softmax(-1))
    assert not torch.allclose(weights[0, 0], weights[0, 1], atol=1e-4)  # another query, other weights
    assert (attention(queries, keys, torch.zeros(2, 6, dtype=torch.bool)) == 0).all()  # no key: zeros, no NaN


# ----------------------------------------------------------------------------------------- GVATT


def test_gvatt_sentence_query_is_the_bilstms_final_states_in_both_directions(tiny_vit, posts):  # noqa: F811
    model, processor = build("gvatt_hbilstm_crf", tiny_vit, posts)
    batch = processor(posts)
    with torch.no_grad():
        hidden = model.word_states(batch["word_ids"], batch["char_ids"], batch["word_mask"])
        query = sentence_query(hidden, batch["word_mask"])
        for row, post in enumerate(posts):  # the post alone, unpadded: the LSTM's h_n of each direction
            words = len(post.tokens)
            inputs = model.word_inputs(
                batch["word_ids"][row : row + 1, :words], batch["char_ids"][row : row + 1, :words]
            )
            _, (final, _) = model.lstm(inputs)  # final [2, 1, hidden]: forward, backward
            torch.testing.assert_close(query[row], torch.cat([final[0, 0], final[1, 0]]))


def test_gvatt_visual_attention_sums_to_one_over_the_grid_and_follows_the_sentence(tiny_vit, posts):  # noqa: F811
    model, processor = build("gvatt_hbilstm_crf", tiny_vit, posts)
    batch = processor(posts)
    present = [True, True, False, True, True, True]
    images = grid_inputs(present)
    grid = images["region_features"][:, 0]
    with torch.no_grad():
        hidden = model.word_states(batch["word_ids"], batch["char_ids"], batch["word_mask"])
        query = sentence_query(hidden, batch["word_mask"])
        context, alpha = model.visual_context(query, grid, torch.tensor(present))
        assert alpha.shape == (len(posts), GRID * GRID)
        torch.testing.assert_close(alpha[torch.tensor(present)].sum(-1), torch.ones(5))
        assert (alpha[2] == 0).all() and (context[2] == 0).all()  # no image: no attention, no context
        torch.testing.assert_close(context, (alpha[:, :, None] * grid).sum(1))  # v_c = sum_r alpha_r v_r
        # the sentence steers it: the same picture under another post's sentence is read differently
        same_picture = grid[:1].expand(len(posts), -1, -1)
        _, under_each = model.visual_context(query, same_picture, torch.ones(len(posts), dtype=torch.bool))
        assert not torch.allclose(under_each[0], under_each[1], atol=1e-4)


def test_gvatt_modulation_gates_are_in_zero_one_and_mix_the_context_into_every_word(tiny_vit, posts):  # noqa: F811
    model, processor = build("gvatt_hbilstm_crf", tiny_vit, posts)
    batch = processor(posts)
    present = torch.tensor([True, False, True, True, True, True])
    with torch.no_grad():
        hidden = model.word_states(batch["word_ids"], batch["char_ids"], batch["word_mask"])
        context = torch.randn(len(posts), IMAGE_DIM) * present[:, None]
        modulated, beta_w, beta_v = model.modulate(hidden, context, present)
    for gate in (beta_w, beta_v):
        assert ((gate > 0) & (gate < 1)).all() and gate.shape == hidden.shape
    visual = torch.tanh(model.visual_projection(context))[:, None]  # m
    torch.testing.assert_close(modulated[present], (beta_w * hidden + beta_v * visual)[present])
    torch.testing.assert_close(modulated[1], beta_w[1] * hidden[1])  # no image: no visual term


# ---------------------------------------------------------------------------------------- AdaCAN


def test_adacan_word_guided_visual_attention_differs_per_word_and_textual_attention_follows_the_image(
    tiny_vit,  # noqa: F811
    posts,
):
    model, processor = build("adacan_cnn_bilstm_crf", tiny_vit, posts)
    batch = processor(posts)
    present = torch.ones(len(posts), dtype=torch.bool)
    mask = batch["word_mask"]
    with torch.no_grad():
        hidden = model.word_states(batch["word_ids"], batch["char_ids"], mask)
        grid = grid_inputs([True] * len(posts))["region_features"][:, 0]
        regions = torch.tanh(model.image_projection(grid))
        visual, textual, alpha, beta = model.co_attention(hidden, mask, regions, present)
        torch.testing.assert_close(alpha.sum(-1), torch.ones_like(alpha[..., 0]))  # over the regions
        torch.testing.assert_close(beta.sum(-1), torch.ones_like(beta[..., 0]))  # over the real words
        assert (beta.masked_select(~mask[:, None, :].expand_as(beta)) == 0).all()  # never a padding word
        torch.testing.assert_close(visual, alpha @ regions)
        torch.testing.assert_close(textual, beta @ hidden)
        assert not torch.allclose(alpha[0, 0], alpha[0, 1], atol=1e-4)  # each word queries the image itself
        # the image-guided textual attention depends on the image: another picture, other weights over the words
        other = torch.tanh(model.image_projection(grid.flip(0) * 3.0))
        _, _, _, moved = model.co_attention(hidden, mask, other, present)
        assert (moved - beta).abs().amax(dim=(1, 2)).min() > 1e-4


def test_adacan_gates_are_in_zero_one_and_a_post_without_image_is_tagged_from_its_text(tiny_vit, posts):  # noqa: F811
    model, processor = build("adacan_cnn_bilstm_crf", tiny_vit, posts)
    batch = processor(posts)
    with torch.no_grad():
        hidden = model.word_states(batch["word_ids"], batch["char_ids"], batch["word_mask"])
        fused, fusion_gate = model.fusion(torch.randn_like(hidden), torch.randn_like(hidden))
        _, filtration_gate = model.filtration(hidden, fused)
        for gate in (fusion_gate, filtration_gate):
            assert ((gate > 0) & (gate < 1)).all()
        out = model(**{**batch, **grid_inputs([False, True, True, True, True, True])})
        zeros = hidden.new_zeros(*hidden.shape[:2], model.model_config.attention_dim)
        text_alone = model.classifier(torch.cat([hidden, zeros], dim=-1))
    torch.testing.assert_close(out.logits[0], text_alone[0])


# ---------------------------------------------------------------------------------------- both


@pytest.mark.parametrize("name", MODELS)
def test_the_image_changes_the_tags_of_the_posts_that_have_one_and_nothing_else(name, tiny_vit, posts):  # noqa: F811
    model, processor = build(name, tiny_vit, posts)
    batch = processor(posts)
    present = [True, False, True, False, True, True]
    images = grid_inputs(present)
    with torch.no_grad():
        before = model(**{**batch, **images})
        other = {**images, "region_features": images["region_features"].flip(2) * 2.0 + 1.0}
        after = model(**{**batch, **other})
    moved = (after.logits - before.logits).abs().amax(dim=(1, 2))
    assert (moved[torch.tensor(present)] > 1e-5).all()
    assert (moved[~torch.tensor(present)] == 0).all()
    assert before.predictions.shape == batch["word_mask"].shape


@pytest.mark.parametrize("name", MODELS)
def test_the_character_encoder_still_sees_every_character(name, tiny_vit):  # noqa: F811
    posts = [Post(id="a", tokens=["alice", "visited", "paris"], tags=["B-PER", "O", "B-LOC"], images=[])]
    model, processor = build(name, tiny_vit, posts)
    batch = processor(posts)
    images = grid_inputs([True])
    with torch.no_grad():
        before = model(**{**batch, **images}).logits
        word = batch["char_ids"][0, 2]  # "paris"
        for position in range(5):
            changed = batch["char_ids"].clone()
            changed[0, 2, position] = word[(position + 1) % 5]  # another character of the alphabet
            after = model(**{**batch, **images, "char_ids": changed}).logits
            assert not torch.allclose(after[0, 2], before[0, 2], atol=1e-6), position


@pytest.mark.parametrize("name", MODELS)
def test_the_processor_brings_the_first_images_grid_from_the_feature_cache(name, tiny_vit, tmp_path: Path):  # noqa: F811
    posts = [
        Post(id="a", tokens=["alice", "visited", "paris"], tags=["B-PER", "O", "B-LOC"], images=["a0.jpg", "a1.jpg"]),
        Post(id="b", tokens=["bob", "met", "nasa"], tags=["B-PER", "O", "B-ORG"], images=[]),
    ]
    (tmp_path / "images").mkdir()
    for number, ref in enumerate(["a0.jpg", "a1.jpg"]):
        Image.new("RGB", (40, 32), (200 * number, 90, 30)).save(tmp_path / "images" / ref)
    config = {"name": name, "vision_encoder": tiny_vit, "region_grid": GRID, **SIZES[name]}
    config["feature_cache"] = str(tmp_path / "cache")
    vocabulary = create_vocabulary(config, posts)
    labels = label_set("ner", posts)
    processor = create_processor(config, vocabulary, labels, images=tmp_path / "images")
    batch = processor(posts)
    assert batch["region_features"].shape == (2, 1, GRID * GRID, IMAGE_DIM)  # one slot: the first image
    assert batch["image_mask"].tolist() == [[True], [False]]
    assert batch["word_ids"].shape == batch["word_mask"].shape == (2, 3)
    only_first = processor([dataclasses.replace(posts[0], images=["a0.jpg"])])
    torch.testing.assert_close(only_first["region_features"][0], batch["region_features"][0])
    model = create_model(processor.config, labels, tokenizer=vocabulary).train()
    model(**batch).loss.backward()
    assert all(p.grad is None for p in model.vision_encoder.parameters())  # frozen: read from the cache


@pytest.mark.parametrize("name", MODELS)
def test_bad_settings_are_config_errors_naming_the_key(name):
    with pytest.raises(ConfigError, match="model.attention_dim"):
        model_config({"name": name, "attention_dim": 0})
    with pytest.raises(ConfigError, match="model.region_grid"):
        model_config({"name": name, "region_grid": 0})
    with pytest.raises(ConfigError, match="model.encoder"):  # no pretrained text encoder to name
        model_config({"name": name, "encoder": "bert-base-uncased"})
    with pytest.raises(ConfigError, match="model.vocabulary_size"):  # sizes come from the processor
        create_model({"name": name}, ["O", "B-PER", "I-PER"])


# ----------------------------------------------------------------------- through the engine


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_it_trains_through_the_engine_with_the_images_and_reloads(name, tiny_vit, tmp_path: Path):  # noqa: F811
    paths = write_splits(tmp_path / "data", "ner", {"train": 48, "dev": 16, "test": 16})
    (tmp_path / "images").mkdir()
    for split in paths.values():
        for record in read_dataset(split).records:
            for slot, ref in enumerate(record.images):
                Image.new("RGB", (40, 32), (50 * slot, 120, len(record.tokens) * 20)).save(tmp_path / "images" / ref)
    config = {
        "task": "ner",
        "model": {"name": name, "vision_encoder": tiny_vit, "region_grid": GRID, "feature_cache": str(tmp_path / "c")},
        "data": {**{split: str(path) for split, path in paths.items()}, "images": str(tmp_path / "images")},
        "training": {"epochs": 8, "batch_size": 8, "learning_rate": 1e-2, "warmup_ratio": 0.0, "max_grad_norm": 5.0},
    }
    result = train(config, output_dir=tmp_path / "run")
    assert result.metrics["dev"]["f1"] >= 0.9, result.summary["dev_history"]
    assert {path.name for path in result.model_dir.iterdir()} == {"config.json", "model.safetensors", VOCABULARY_NAME}
    loaded = mmie.load_model(result.model_dir, device="cpu", images=tmp_path / "images")
    assert loaded.model.model_config.region_cells == GRID and loaded.processor.reads_images
    assert loaded.evaluate(read_dataset(paths["test"]).records) == result.metrics["test"]
