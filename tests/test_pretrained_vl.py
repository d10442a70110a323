"""VisualBERT and CLIP as RE baselines, on tiny real models each test saves and loads by path.

VisualBERT: the text tokens attend to the visual embeddings in one Transformer, and the visual tokens
carry VisualBERT's image segment id. CLIP: the fused vector holds the marker states, CLIP's text
embedding and its image embedding.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, VisualBertConfig, VisualBertModel

from conftest import make_re_instances, make_tiny_mpnet
from mmie.encoders.vision import load_vision_encoder
from mmie.errors import ConfigError
from mmie.features.collate import Collator
from mmie.features.text import RelationFeaturizer
from mmie.models.registry import create_model, create_processor, model_config
from test_glra import IMAGE_DIM, LABELS, K, image_inputs, make_tiny_vit


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> str:
    return make_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))


@pytest.fixture(scope="module")
def instances():
    return make_re_instances(4, seed=5)


def build(settings: dict):
    """The model and its tokenizer (markers added), as create_vocabulary / create_processor / create_model build them."""
    tokenizer = AutoTokenizer.from_pretrained(settings["encoder"])
    config = create_processor({"max_length": 32, **settings}, tokenizer, LABELS).config
    torch.manual_seed(0)
    model = create_model(config, LABELS, tokenizer=tokenizer).eval()
    return model, tokenizer


def text_batch(tokenizer, model, instances) -> dict[str, torch.Tensor]:
    featurizer = RelationFeaturizer(tokenizer, LABELS, 32, model.model_config.markers)
    batch = Collator(tokenizer.pad_token_id)(featurizer.featurize(instances))
    batch.pop("labels")
    return batch


def logits(model, batch: dict, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch, **inputs).logits


# ------------------------------------------------------------------------------------ VisualBERT


@pytest.fixture(scope="module")
def visualbert(tiny_bert, tiny_vit):
    return build({"name": "visualbert_re", "encoder": tiny_bert, "vision_encoder": tiny_vit, "regions_per_image": K})


def test_a_bert_checkpoint_starts_visualbert_as_the_paper_did(visualbert, tiny_bert):
    from transformers import BertModel

    model, _ = visualbert
    encoder = model.text_encoder
    assert isinstance(encoder, VisualBertModel)
    bert = BertModel.from_pretrained(tiny_bert)
    layer = "encoder.layer.1.attention.self.query.weight"
    assert torch.equal(encoder.state_dict()[layer], bert.state_dict()[layer])  # BERT's weights, not fresh ones
    embeddings = encoder.embeddings  # VisualBERT's special visual initialisation, from the loaded text embeddings
    assert torch.equal(embeddings.visual_token_type_embeddings.weight, bert.embeddings.token_type_embeddings.weight)
    assert torch.equal(embeddings.visual_position_embeddings.weight, bert.embeddings.position_embeddings.weight)
    # f_o: the vision encoder's D in, the feature size the VisualBERT config declares out
    assert model.visual_input.in_features == IMAGE_DIM
    assert model.visual_input.out_features == encoder.config.visual_embedding_dim


def test_visualbert_text_tokens_attend_to_the_visual_embeddings(visualbert, instances):
    model, tokenizer = visualbert
    batch = text_batch(tokenizer, model, instances)
    seen = image_inputs([1, 1, 1, 1], slots=1, seed=3)
    other = image_inputs([1, 1, 1, 1], slots=1, seed=4)
    # another image (or other regions) changes the marker states, hence the logits
    assert not torch.allclose(logits(model, batch, seen), logits(model, batch, other), atol=1e-5)
    regions_only = {**seen, "region_features": other["region_features"]}
    assert not torch.allclose(logits(model, batch, seen), logits(model, batch, regions_only), atol=1e-5)
    # masked visual tokens are not attended: a post without its image ignores whatever is in the slot
    none_seen = {**seen, "image_mask": torch.zeros_like(seen["image_mask"])}
    none_other = {**other, "image_mask": torch.zeros_like(other["image_mask"])}
    torch.testing.assert_close(logits(model, batch, none_seen), logits(model, batch, none_other))


def test_visualbert_visual_tokens_carry_the_image_segment_id(visualbert, instances):
    model, tokenizer = visualbert
    batch = text_batch(tokenizer, model, instances)
    inputs = image_inputs([1, 1, 1, 1], slots=1)
    posts = model.post_regions(
        inputs["image_mask"], inputs["region_mask"], inputs["image_features"], inputs["region_features"]
    )
    embeds, mask, token_types = model.visual_inputs(posts)
    assert embeds.shape == (4, 1 + K, model.text_encoder.config.visual_embedding_dim)
    assert (token_types == 1).all() and mask.all()
    before = logits(model, batch, inputs)
    table = model.text_encoder.embeddings.visual_token_type_embeddings.weight
    # (a random change: a constant one would vanish in the embeddings' layer norm)
    shift = torch.randn(table.shape[1], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        table[0] += shift  # the text segment's row of the VISUAL table: no visual token reads it
    torch.testing.assert_close(logits(model, batch, inputs), before)
    with torch.no_grad():
        table[0] -= shift
        table[1] += shift  # the image segment's row: every visual token reads it
    changed = logits(model, batch, inputs)
    with torch.no_grad():
        table[1] -= shift
    assert not torch.allclose(changed, before, atol=1e-5)


def test_a_visualbert_checkpoint_loads_by_path_as_it_is(tiny_bert, tiny_vit, tmp_path):
    folder = tmp_path / "visualbert"
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(7)
    config = VisualBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        visual_embedding_dim=20,
    )
    saved = VisualBertModel(config)
    saved.save_pretrained(folder)
    model, _ = build({"name": "visualbert_re", "encoder": str(folder), "vision_encoder": tiny_vit})
    assert model.visual_input.out_features == 20  # the checkpoint's declared visual feature size
    weights = "embeddings.visual_projection.weight"  # pretrained visual weights kept, not re-initialised
    assert torch.equal(model.text_encoder.state_dict()[weights], saved.state_dict()[weights])


def test_visualbert_refuses_an_encoder_it_cannot_start_from(tiny_vit, tmp_path):
    mpnet = make_tiny_mpnet(tmp_path / "mpnet")
    with pytest.raises(ConfigError, match=r"model\.encoder: visualbert_re needs .* MPNetModel"):
        build({"name": "visualbert_re", "encoder": mpnet, "vision_encoder": tiny_vit})


# ------------------------------------------------------------------------------------------ CLIP


@pytest.fixture(scope="module")
def clip(tiny_clip):
    return build({"name": "clip_re", "encoder": tiny_clip})


def clip_image_inputs(tiny_clip: str, seed: int) -> dict[str, torch.Tensor]:
    """Pixels of 4 random pictures (one per post) and their cached features from CLIP's own vision tower."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(4, 1, 3, 32, 32, generator=generator)
    encoder = load_vision_encoder(tiny_clip, frozen=True)  # what the feature cache runs: CLIPVisionModel
    with torch.no_grad():
        features = encoder.encode_pixels(pixels[:, 0]).global_features[:, None]  # [4, 1, D]
    return {"pixel_values": pixels, "image_features": features, "image_mask": torch.ones(4, 1, dtype=torch.bool)}


def test_clip_vision_encoder_defaults_to_its_own_tower(tiny_clip):
    config = model_config({"name": "clip_re", "encoder": tiny_clip})
    assert config.vision_encoder == tiny_clip and config.region_count == 0 and config.image_slots == 1


def test_clip_fused_vector_holds_both_modalities(clip, tiny_clip, instances):
    model, tokenizer = clip
    clip_model = model.text_encoder
    batch = text_batch(tokenizer, model, instances)
    images = clip_image_inputs(tiny_clip, seed=1)
    features = {key: images[key] for key in ("image_features", "image_mask")}
    with torch.no_grad():
        hidden, text = model.text_states(batch["input_ids"], batch["attention_mask"])
        image = model.image_embedding(images["image_mask"], images["image_features"])
        fused = model.fuse(model.marker_vectors(hidden, batch["head_start"], batch["tail_start"]), text, image)
        # the pooled text is CLIP's text embedding: the end-of-text state, projected
        expected_text = clip_model.get_text_features(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
    d, p = model.hidden_size, clip_model.config.projection_dim
    assert fused.shape == (4, 2 * d + 2 * p) == (4, model.classifier.in_features)
    rows = torch.arange(4)
    ends = batch["attention_mask"].sum(1) - 1
    assert (batch["input_ids"][rows, ends] == tokenizer.eos_token_id).all()  # read at the end token, padding or not
    expected_text = getattr(expected_text, "pooler_output", expected_text)
    expected_image = clip_model.visual_projection(images["image_features"][:, 0])
    torch.testing.assert_close(fused[:, 2 * d : 2 * d + p], expected_text)
    torch.testing.assert_close(fused[:, 2 * d + p :], expected_image.detach())
    # another image changes the logits; a post without its image ignores the slot's content
    other = clip_image_inputs(tiny_clip, seed=2)
    other_features = {key: other[key] for key in ("image_features", "image_mask")}
    assert not torch.allclose(logits(model, batch, features), logits(model, batch, other_features), atol=1e-5)
    masked = {**features, "image_mask": torch.zeros(4, 1, dtype=torch.bool)}
    masked_other = {**other_features, "image_mask": torch.zeros(4, 1, dtype=torch.bool)}
    torch.testing.assert_close(logits(model, batch, masked), logits(model, batch, masked_other))


def test_clip_pixels_and_cached_features_give_the_same_logits(clip, tiny_clip, instances):
    model, tokenizer = clip
    batch = text_batch(tokenizer, model, instances)
    images = clip_image_inputs(tiny_clip, seed=3)
    from_pixels = logits(model, batch, {"pixel_values": images["pixel_values"], "image_mask": images["image_mask"]})
    from_cache = logits(model, batch, {"image_features": images["image_features"], "image_mask": images["image_mask"]})
    torch.testing.assert_close(from_pixels, from_cache)


def test_clip_freezes_its_vision_tower_only_when_asked(tiny_clip):
    frozen, _ = build({"name": "clip_re", "encoder": tiny_clip})
    tuned, _ = build({"name": "clip_re", "encoder": tiny_clip, "freeze_vision": False})
    assert not any(p.requires_grad for p in frozen.text_encoder.vision_model.parameters())
    assert all(p.requires_grad for p in frozen.text_encoder.text_model.parameters())
    assert all(p.requires_grad for p in tuned.text_encoder.vision_model.parameters())


def test_clip_config_errors_name_the_field(tiny_clip, tiny_bert, tiny_vit):
    with pytest.raises(ConfigError, match=r"model\.vision_encoder: clip_re reads images with CLIP's own"):
        build({"name": "clip_re", "encoder": tiny_clip, "vision_encoder": tiny_vit})
    with pytest.raises(ConfigError, match=r"model\.max_length: 100 sub-words, but CLIP's text tower has 77"):
        build({"name": "clip_re", "encoder": tiny_clip, "max_length": 100})
    with pytest.raises(ConfigError, match=r"model\.encoder: clip_re needs a CLIP checkpoint, got a BertModel"):
        build({"name": "clip_re", "encoder": tiny_bert})


# ------------------------------------------------------------------ end to end, on the real processor


@pytest.fixture(scope="module")
def synthetic_mre(tmp_path_factory):
    """A tiny SYNTHETIC MRE-MI folder written by the real generator (images/, images_vg/, images_vg.pth)."""
    from mmie.data.synth import generate_dataset

    out = tmp_path_factory.mktemp("synth-mre") / "data"
    generate_dataset("mre", out, posts=6, seed=3, image_size=64)
    return out


def processed_logits(settings: dict, folder, tmp_path) -> tuple[torch.Tensor, dict]:
    """Logits of the model on the synthetic posts, their inputs made by the model's own processor."""
    from mmie.data import read_dataset

    records = read_dataset(folder / "train.txt").records[:4]
    model, tokenizer = build({**settings, "feature_cache": str(tmp_path / "cache")})
    processor = create_processor(model.model_config, tokenizer, LABELS, images=folder / "images")
    batch = processor.collate(processor.featurize(records, with_labels=False))  # synthetic labels are not LABELS
    with torch.no_grad():
        return model(**batch).logits, batch


@pytest.mark.parametrize("name", ["visualbert_re", "clip_re"])
def test_cached_features_and_pixels_of_the_same_tower_agree_end_to_end(
    name, tiny_bert, tiny_vit, tiny_clip, synthetic_mre, tmp_path
):
    settings = {"name": name, "encoder": tiny_clip if name == "clip_re" else tiny_bert}
    if name == "visualbert_re":
        settings |= {"vision_encoder": tiny_vit, "regions_per_image": K}
    cached, cached_batch = processed_logits({**settings, "freeze_vision": True}, synthetic_mre, tmp_path)
    pixels, pixel_batch = processed_logits({**settings, "freeze_vision": False}, synthetic_mre, tmp_path)
    assert "image_features" in cached_batch and "pixel_values" in pixel_batch
    assert cached_batch["image_mask"].shape[1] == 1 and cached_batch["image_mask"].all()  # the FIRST image only
    if name == "clip_re":
        assert cached_batch["region_mask"].shape[-1] == 0  # CLIP reads no regions
    torch.testing.assert_close(cached, pixels, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------ learning from the image


def first_image_task(count: int, seed: int, dim: int) -> tuple[list, dict]:
    """``alice and bob today`` for every label; only the post's one image (and its regions) tells the label."""
    from mmie.data.schema import Post, RelationInstance, Span

    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(len(LABELS), dim, generator=torch.Generator().manual_seed(99)) * 2
    labels = torch.randint(len(LABELS), (count,), generator=generator)
    instances = [
        RelationInstance(
            Post(id=str(i), tokens=["alice", "and", "bob", "today"], images=[f"{i}.jpg"]),
            Span(0, 1, "alice"),
            Span(2, 3, "bob"),
            LABELS[int(label)],
        )
        for i, label in enumerate(labels)
    ]
    cue = prototypes[labels][:, None, None]  # [count, 1, 1, dim]
    features = cue + 0.3 * torch.randn(count, 1, 1 + K, dim, generator=generator)  # the image, then K regions
    inputs = {
        "image_features": features[:, :, 0],
        "image_mask": torch.ones(count, 1, dtype=torch.bool),
        "region_features": features[:, :, 1:],
        "region_mask": torch.ones(count, 1, K, dtype=torch.bool),
    }
    return instances, inputs


@pytest.mark.slow
@pytest.mark.parametrize("name", ["visualbert_re", "clip_re"])
def test_it_learns_what_only_the_image_tells(name, tiny_bert, tiny_vit, tiny_clip):
    from test_glra import train_then_evaluate

    settings = {"name": name, "encoder": tiny_clip if name == "clip_re" else tiny_bert, "dropout": 0.0}
    if name == "visualbert_re":
        settings |= {"vision_encoder": tiny_vit, "regions_per_image": K}
    model, tokenizer = build(settings)
    dim = IMAGE_DIM if name == "visualbert_re" else model.clip.vision_model.config.hidden_size
    (train, train_images), (test, test_images) = first_image_task(36, 1, dim), first_image_task(36, 2, dim)
    labels = {"labels": torch.tensor([LABELS.index(i.label) for i in train])}
    test_labels = {"labels": torch.tensor([LABELS.index(i.label) for i in test])}
    train_batch = {**text_batch(tokenizer, model, train), **train_images, **labels}
    test_batch = {**text_batch(tokenizer, model, test), **test_images, **test_labels}
    if name == "clip_re":  # CLIP reads no regions
        for batch in (train_batch, test_batch):
            batch["region_features"], batch["region_mask"] = (
                batch["region_features"][:, :, :0],
                batch["region_mask"][:, :, :0],
            )
    fitted, held_out = train_then_evaluate(model, train_batch, test_batch)
    # one text for every label: without the image the loss stays near log 3 = 1.1
    assert fitted < 0.5 and held_out < 0.55, (fitted, held_out)
