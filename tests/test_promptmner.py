"""promptMNER: CLIP scores entity-type prompts against the image; the clue distribution enters BERT-CRF.

On the tiny BERT and the tiny CLIP the tests build (conftest.make_tiny_clip): the clues are a distribution
over the types, they follow the image and the prompts, a post without an image gets the neutral clue and
words alone, cached features and pixels of CLIP's own tower agree, and a short run of the real training
engine on synthetic posts (what `mmie data synth --task mner` writes) trains, saves and reloads it.
"""

from __future__ import annotations

import pytest
import torch

from conftest import make_ner_posts, make_tiny_bert, make_tiny_clip
from mmie.encoders.vision import load_vision_encoder
from mmie.errors import ConfigError
from mmie.models.registry import create_model, create_processor, create_vocabulary, model_config
from mmie.training.engine import label_set

POSTS = 4


def build(settings: dict) -> tuple[torch.nn.Module, dict, list[str]]:
    """The model (eval mode) and a text batch of POSTS posts made by its own processor (no image inputs)."""
    records = make_ner_posts(POSTS)
    for record in records:
        record.images = []
    labels = label_set("ner", records)
    tokenizer = create_vocabulary(settings, records)
    processor = create_processor(settings, tokenizer, labels)
    torch.manual_seed(0)
    model = create_model(processor.config, labels, tokenizer=tokenizer).eval()
    images = ("labels", "image_mask", "image_features", "pixel_values")  # each test gives its own images
    batch = {key: value for key, value in processor(records).items() if key not in images}
    return model, batch, labels


@pytest.fixture(scope="module")
def settings(tiny_bert, tiny_clip) -> dict:
    return {"name": "promptmner", "encoder": tiny_bert, "clip_model": tiny_clip, "dropout": 0.0}


@pytest.fixture(scope="module")
def built(settings):
    return build(settings)


def image_inputs(tiny_clip: str, seed: int, present: list[bool] | None = None) -> dict[str, torch.Tensor]:
    """Pixels of POSTS random pictures (one per post) and their cached features from CLIP's own tower."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(POSTS, 1, 3, 32, 32, generator=generator)
    encoder = load_vision_encoder(tiny_clip, frozen=True)  # what the feature cache runs: CLIPVisionModel
    with torch.no_grad():
        features = encoder.encode_pixels(pixels[:, 0]).global_features[:, None]  # [B, 1, D]
    mask = torch.tensor(present if present is not None else [True] * POSTS).unsqueeze(1)
    return {"pixel_values": pixels, "image_features": features, "image_mask": mask}


def run(model, batch: dict, images: dict, *, pixels: bool = False):
    drop = "image_features" if pixels else "pixel_values"
    with torch.no_grad():
        return model(**batch, **{key: value for key, value in images.items() if key != drop})


# ------------------------------------------------------------------------------------- the config


def test_the_vision_tower_is_clips_own_and_the_prompts_come_from_the_config(tiny_clip):
    config = model_config({"name": "promptmner", "clip_model": tiny_clip, "prompt_template": "an image of {type}"})
    assert config.vision_encoder == tiny_clip and config.image_slots == 1
    assert config.prompts == [f"an image of {t}" for t in ("person", "location", "organization", "miscellaneous")]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"prompt_template": "a photo"}, r"model\.prompt_template: .*\{type\}"),
        ({"prompt_template": "a {kind} of {type}"}, r"model\.prompt_template: .*placeholder"),
        ({"entity_types": ["person", "person"]}, r"model\.entity_types: .*repeat"),
        ({"entity_types": ["person"]}, r"model\.entity_types"),
    ],
)
def test_bad_prompt_settings_name_the_field(values, field):
    with pytest.raises(ConfigError, match=field):
        model_config({"name": "promptmner", **values})


def test_another_vision_encoder_is_refused_by_name(settings, tiny_bert):
    with pytest.raises(ConfigError, match=r"model\.vision_encoder: promptmner reads images with CLIP"):
        build({**settings, "vision_encoder": tiny_bert})


def test_a_text_checkpoint_as_clip_is_refused_by_name(settings, tiny_bert):
    with pytest.raises(ConfigError, match=r"model\.clip_model: promptmner needs a CLIP checkpoint"):
        build({**settings, "clip_model": tiny_bert, "vision_encoder": tiny_bert})


# ------------------------------------------------------------------------------------- the mechanism


def test_the_clues_are_a_distribution_over_the_entity_types(built, tiny_clip):
    model, batch, _ = built
    clues = run(model, batch, image_inputs(tiny_clip, seed=1)).clues
    assert clues.shape == (POSTS, len(model.model_config.entity_types))
    torch.testing.assert_close(clues.sum(dim=-1), torch.ones(POSTS))
    assert (clues > 0).all()
    assert not torch.allclose(clues, torch.full_like(clues, 1 / clues.size(-1)))  # the image is read


def test_the_clues_are_clips_zero_shot_probabilities(built, tiny_clip):
    model, batch, _ = built
    images = image_inputs(tiny_clip, seed=2)
    clip = model.clip
    with torch.no_grad():
        # CLIP's text embedding at each prompt's end-of-text token (its last one: the tiny tokenizer reads
        # letters it never saw as <|endoftext|> too, which CLIP's own pooler would take for the end)
        hidden = clip.text_model(input_ids=model.prompt_ids, attention_mask=model.prompt_mask).last_hidden_state
        ends = model.prompt_mask.sum(dim=1) - 1
        assert (model.prompt_ids[torch.arange(len(ends)), ends] == clip.config.text_config.eos_token_id).all()
        prompts = clip.text_projection(hidden[torch.arange(len(ends)), ends])
        image = clip.visual_projection(images["image_features"][:, 0])
        prompts, image = prompts / prompts.norm(dim=-1, keepdim=True), image / image.norm(dim=-1, keepdim=True)
        expected = (clip.logit_scale.exp() * image @ prompts.T).softmax(dim=-1)
    torch.testing.assert_close(run(model, batch, images).clues, expected)


def test_changing_the_image_changes_the_clues_and_the_emissions(built, tiny_clip):
    model, batch, _ = built
    first, second = run(model, batch, image_inputs(tiny_clip, seed=3)), run(model, batch, image_inputs(tiny_clip, 4))
    assert (first.clues - second.clues).abs().sum(dim=-1).min() > 1e-4  # every post's clues move
    assert not torch.allclose(first.logits, second.logits)


def test_changing_the_prompt_template_changes_the_clues(settings, built, tiny_clip):
    model, batch, _ = built
    other, _, _ = build({**settings, "prompt_template": "a blurry picture of the {type} here"})
    assert not torch.equal(model.prompt_ids, other.prompt_ids)
    images = image_inputs(tiny_clip, seed=5)
    assert not torch.allclose(run(model, batch, images).clues, run(other, batch, images).clues)


def test_a_post_without_an_image_gets_the_neutral_clue_and_its_words_alone(built, tiny_clip):
    model, batch, _ = built
    present = [True, False, True, False]
    output = run(model, batch, image_inputs(tiny_clip, seed=6, present=present))
    other = run(model, batch, image_inputs(tiny_clip, seed=7, present=present))  # other pixels in the empty slots
    absent = ~torch.tensor(present)
    K = output.clues.size(-1)
    torch.testing.assert_close(output.clues[absent], torch.full((int(absent.sum()), K), 1 / K))
    assert torch.equal(output.logits[absent], other.logits[absent])  # nothing of the slot is read
    assert not torch.allclose(output.logits[~absent], other.logits[~absent])
    with torch.no_grad():  # and it is the words alone: P8 over [h_i ; 0]
        words = model.word_vectors(batch["input_ids"], batch["attention_mask"], batch["word_starts"])
        alone = model.classifier(torch.cat([words, torch.zeros_like(words)], dim=-1))
    torch.testing.assert_close(output.logits[absent], alone[absent])


def test_cached_features_and_pixels_of_clips_tower_give_the_same_clues(built, tiny_clip):
    model, batch, _ = built
    images = image_inputs(tiny_clip, seed=8)
    cached, pixels = run(model, batch, images), run(model, batch, images, pixels=True)
    torch.testing.assert_close(cached.clues, pixels.clues)
    torch.testing.assert_close(cached.logits, pixels.logits)


def test_clip_is_a_frozen_clue_extractor_unless_the_vision_is_fine_tuned(settings, built):
    model, _, _ = built
    assert not any(p.requires_grad for p in model.clip.parameters())
    assert not any(model.is_head_parameter(name) for name, _ in model.named_parameters() if name.startswith("clip."))
    tuned, _, _ = build({**settings, "freeze_vision": False})
    assert all(p.requires_grad for p in tuned.clip.vision_model.parameters())
    assert not any(p.requires_grad for p in tuned.clip.text_model.parameters())


def test_the_prompt_embeddings_run_clips_text_tower_once_until_weights_are_loaded(settings, tiny_clip):
    model, batch, _ = build(settings)
    calls = []
    model.clip.text_model.register_forward_hook(lambda *_: calls.append(1))
    images = image_inputs(tiny_clip, seed=3)
    first, second = run(model, batch, images), run(model, batch, images)
    assert len(calls) == 1  # the K fixed prompts through the frozen tower: once, not once per batch
    torch.testing.assert_close(first.clues, second.clues)
    before = model.prompt_embeddings().clone()
    other, _, _ = build(settings)
    with torch.no_grad():  # other weights of the text tower, as a saved model would bring
        for parameter in other.clip.text_model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    model.load_state_dict(other.state_dict())
    torch.testing.assert_close(model.prompt_embeddings(), other.prompt_embeddings())
    assert len(calls) == 2
    assert not torch.allclose(model.prompt_embeddings(), before)


# ------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_it_trains_on_synthetic_posts_through_the_engine_and_reloads(tmp_path):
    import mmie
    from mmie.data import read_dataset
    from mmie.data.synth import generate_dataset
    from mmie.training import train

    sample = tmp_path / "mner"
    generate_dataset("mner", sample, 24, seed=5, image_size=64)
    words = sorted(
        {
            t.lower()
            for split in ("train", "val")
            for r in read_dataset(sample / f"{split}.txt").records
            for t in r.tokens
        }
    )
    bert = make_tiny_bert(tmp_path / "bert", words)
    clip = make_tiny_clip(tmp_path / "clip", words)
    config = {
        "task": "ner",
        "model": {
            "name": "promptmner",
            "encoder": bert,
            "clip_model": clip,
            "max_length": 48,
            "feature_cache": str(tmp_path / "cache"),
        },
        "data": {
            "format": "mnermi",
            "train": str(sample / "train.txt"),
            "dev": str(sample / "val.txt"),
            "images": str(sample / "images"),
        },
        "training": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "warmup_ratio": 0.0, "device": "cpu"},
    }
    result = train(config, output_dir=tmp_path / "run")
    assert 0.0 <= result.metrics["dev"]["f1"] <= 1.0
    loaded = mmie.load_model(result.model_dir, images=sample / "images")
    assert loaded.model.prompt_ids_list and loaded.model.model_config.clip_model == clip
    posts = read_dataset(sample / "val.txt").records[:3]
    predictions = list(loaded.iter_predictions(posts, progress=False))
    assert [len(p["tags"]) for p in predictions] == [len(post.tokens) for post in posts]
