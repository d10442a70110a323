"""TPM-MI and the visual-prefix baselines on a tiny real BERT and a tiny real ViT."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import transformers
from PIL import Image
from transformers import AutoTokenizer, ViTConfig, ViTModel

from conftest import make_ner_posts
from mmie.data.schema import Post
from mmie.errors import ConfigError, DataError
from mmie.features.collate import Collator, Deferred
from mmie.features.text import NerFeaturizer
from mmie.models.registry import create_model, create_processor

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
IMAGE_DIM = 24  # the tiny ViT's hidden size: differs from the text's 32 on purpose
PREFIX_MODELS = ["tpm_mi", "prefix_all_images", "bert_crf_first_image", "bert_crf_stitched"]
ViTProcessor = getattr(transformers, "ViTImageProcessorPil", transformers.ViTImageProcessor)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    config = ViTConfig(
        hidden_size=IMAGE_DIM,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=32,
        patch_size=8,
    )
    ViTModel(config).save_pretrained(path)
    ViTProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return AutoTokenizer.from_pretrained(tiny_bert)


def build(name: str, tiny_bert: str, tiny_vit: str, seed: int = 0, **settings):
    torch.manual_seed(seed)
    config = {"name": name, "encoder": tiny_bert, "vision_encoder": tiny_vit, "max_length": 32, **settings}
    if name == "tpm_mi":
        config.setdefault("temporal_heads", 4)
    return create_model(config, LABELS)


def text_batch(tokenizer, posts: list[Post]) -> dict[str, torch.Tensor]:
    features = NerFeaturizer(tokenizer, LABELS, max_length=32).featurize(posts)
    return Collator(tokenizer.pad_token_id)(features)


def image_inputs(counts: list[int], slots: int = 4, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(len(counts), slots, IMAGE_DIM, generator=generator)
    mask = torch.arange(slots)[None, :] < torch.tensor(counts)[:, None]
    return features, mask


@pytest.fixture(scope="module")
def posts() -> list[Post]:
    return make_ner_posts(4, seed=5)


def test_tpm_mi_shapes_with_one_to_four_images_and_crf_decoding(tiny_bert, tiny_vit, tokenizer, posts):
    model = build("tpm_mi", tiny_bert, tiny_vit).eval()
    batch = text_batch(tokenizer, posts)
    features, mask = image_inputs([1, 2, 3, 4])
    out = model(**batch, image_features=features, image_mask=mask)
    words = batch["word_mask"].shape[1]
    assert out.logits.shape == (4, words, len(LABELS))
    assert out.loss is not None and out.loss.ndim == 0 and torch.isfinite(out.loss)
    # constrained Viterbi: one label per word, -100 past the post's end, never I-X after O or another type
    assert out.predictions.shape == (4, words)
    for row, length in enumerate(batch["word_mask"].sum(1).tolist()):
        path = [LABELS[i] for i in out.predictions[row, :length].tolist()]
        assert (out.predictions[row, length:] == -100).all()
        for previous, tag in zip(["O"] + path, path):
            assert not tag.startswith("I-") or previous[2:] == tag[2:]
    without_labels = {k: v for k, v in batch.items() if k != "labels"}
    assert model(**without_labels, image_features=features, image_mask=mask).loss is None


@pytest.mark.parametrize("name", PREFIX_MODELS)
def test_padded_image_content_changes_nothing(tiny_bert, tiny_vit, tokenizer, posts, name):
    model = build(name, tiny_bert, tiny_vit).eval()
    batch = text_batch(tokenizer, posts)
    slots = 4 if name in ("tpm_mi", "prefix_all_images") else 1
    counts = [1, 2, 0, 3] if slots == 4 else [1, 0, 1, 0]
    features, mask = image_inputs(counts, slots)
    regions = torch.randn(4, slots, 4, IMAGE_DIM)
    before = model(**batch, image_features=features, region_features=regions, image_mask=mask)
    garbage = torch.full_like(features, 1e3)
    changed = torch.where(mask[..., None], features, garbage)
    changed_regions = torch.where(mask[..., None, None], regions, -garbage[:, :, None])
    after = model(**batch, image_features=changed, region_features=changed_regions, image_mask=mask)
    assert torch.equal(after.logits, before.logits)
    assert torch.equal(after.loss, before.loss)


def test_a_narrower_temporal_encoder_projects_the_images_and_still_masks_padding(tiny_bert, tiny_vit, tokenizer, posts):
    wide = build("tpm_mi", tiny_bert, tiny_vit)
    narrow = build("tpm_mi", tiny_bert, tiny_vit, temporal_dim=8).eval()
    assert narrow.temporal_encoder.input_projection.in_features == IMAGE_DIM
    assert narrow.temporal_encoder.temporal_positions.shape == (4, 8)
    assert narrow.visual_prefix.prompt_projection.in_features == 8
    assert sum(p.numel() for p in narrow.temporal_encoder.parameters()) < sum(
        p.numel() for p in wide.temporal_encoder.parameters()
    )
    batch = text_batch(tokenizer, posts)
    features, mask = image_inputs([1, 2, 0, 4])
    before = narrow(**batch, image_features=features, image_mask=mask)
    changed = torch.where(mask[..., None], features, torch.full_like(features, 1e3))
    assert torch.equal(narrow(**batch, image_features=changed, image_mask=mask).logits, before.logits)
    with pytest.raises(ConfigError, match="temporal_heads"):
        build("tpm_mi", tiny_bert, tiny_vit, temporal_dim=10)  # 4 heads do not divide 10


def test_padded_slots_are_not_attended_so_batch_padding_does_not_matter(tiny_bert, tiny_vit, tokenizer, posts):
    """A post's output is the same with 2 image slots or padded to 4 (the reference code fails this)."""
    model = build("tpm_mi", tiny_bert, tiny_vit).eval()
    batch = text_batch(tokenizer, posts[:1])
    features, mask = image_inputs([2], slots=4)
    padded = model(**batch, image_features=features, image_mask=mask)
    tight = model(**batch, image_features=features[:, :2], image_mask=mask[:, :2])
    torch.testing.assert_close(padded.logits, tight.logits, rtol=0, atol=1e-5)


def test_no_image_gives_the_plain_text_encoder(tiny_bert, tiny_vit, tokenizer, posts):
    model = build("tpm_mi", tiny_bert, tiny_vit).eval()
    batch = text_batch(tokenizer, posts)
    features, mask = image_inputs([0, 0, 0, 0])
    out = model(**batch, image_features=features, image_mask=mask)
    hidden = model.text_encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    words = hidden.gather(1, batch["word_starts"][..., None].expand(-1, -1, hidden.shape[-1]))
    torch.testing.assert_close(out.logits, model.classifier(words), rtol=0, atol=1e-5)
    # and the images do matter when they are there
    present = model(**batch, image_features=features, image_mask=torch.ones_like(mask))
    assert (present.logits - out.logits).abs().max() > 1e-4


def test_image_order_matters_to_tpm_mi_but_not_to_the_ablation(tiny_bert, tiny_vit, tokenizer, posts):
    batch = text_batch(tokenizer, posts)
    features, mask = image_inputs([3, 3, 3, 3])
    swapped = features[:, [2, 1, 0, 3]]
    tpm = build("tpm_mi", tiny_bert, tiny_vit).eval()
    ablation = build("prefix_all_images", tiny_bert, tiny_vit).eval()

    def difference(model) -> float:
        first, second = (model(**batch, image_features=f, image_mask=mask).logits for f in (features, swapped))
        return float((first - second).abs().max())

    with torch.no_grad():
        tpm.temporal_encoder.temporal_positions.normal_(std=1.0)  # positions as a trained model has them
        assert difference(tpm) > 1e-3  # the temporal positions see the order
        tpm.temporal_encoder.temporal_positions.zero_()  # without them the model is order-blind
        assert difference(tpm) < 1e-5
        assert difference(ablation) < 1e-5


def test_first_image_model_reads_only_the_first_image(tiny_bert, tiny_vit, tokenizer, posts):
    model = build("bert_crf_first_image", tiny_bert, tiny_vit).eval()
    assert model.model_config.image_slots == 1
    batch = text_batch(tokenizer, posts)
    regions = torch.randn(4, 1, 4, IMAGE_DIM)
    features, mask = image_inputs([1, 1, 1, 1], slots=1)
    out = model(**batch, image_features=features, region_features=regions, image_mask=mask)
    other = model(**batch, image_features=features, region_features=regions + 1.0, image_mask=mask)
    assert (out.logits - other.logits).abs().max() > 1e-4  # the regions are the prefix
    with pytest.raises(ValueError, match="region_features"):
        model(**batch, image_features=features, image_mask=mask)
    global_model = build("bert_crf_first_image", tiny_bert, tiny_vit, first_image_tokens="global").eval()
    assert global_model.model_config.region_cells == 0
    assert global_model(**batch, image_features=features, image_mask=mask).logits.shape == out.logits.shape


def test_gradients_reach_temporal_encoder_projections_text_and_vision_encoders(tiny_bert, tiny_vit, tokenizer, posts):
    model = build("tpm_mi", tiny_bert, tiny_vit, freeze_vision=False).train()
    batch = text_batch(tokenizer, posts)
    _, mask = image_inputs([1, 2, 3, 4])
    pixels = torch.randn(4, 4, 3, 32, 32)
    model(**batch, pixel_values=pixels, image_mask=mask).loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    for name in [
        "temporal_encoder.temporal_positions",
        "temporal_encoder.encoder.layers.0.self_attn.in_proj_weight",
        "visual_prefix.prompt_projection.weight",
        "visual_prefix.key_values.phi.0.weight",
        "visual_prefix.key_values.phi.1.weight",
        "text_encoder.encoder.layer.0.attention.self.query.weight",
        "classifier.weight",
        "crf.crf.transitions",
    ]:
        assert grads[name] is not None and grads[name].abs().sum() > 0, name
    vision = [g for n, g in grads.items() if n.startswith("vision_encoder.")]
    assert vision and all(g is not None for g in vision) and sum(g.abs().sum() for g in vision) > 0
    # every slot holds a real image in some post (post 3 has four), so every temporal position learns
    assert (grads["temporal_encoder.temporal_positions"].abs().sum(1) > 0).all()


def test_frozen_vision_gets_no_gradient_and_config_errors(tiny_bert, tiny_vit, tokenizer, posts):
    model = build("tpm_mi", tiny_bert, tiny_vit).train()
    assert all(not p.requires_grad for p in model.vision_encoder.parameters())
    assert not model.is_head_parameter("vision_encoder.model.embeddings.cls_token")
    assert model.is_head_parameter("temporal_encoder.temporal_positions")
    batch = text_batch(tokenizer, posts)
    with pytest.raises(ValueError, match="image_features or pixel_values"):
        model(**batch, image_mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ConfigError, match="temporal_heads"):
        build("tpm_mi", tiny_bert, tiny_vit, temporal_heads=5)
    with pytest.raises(ConfigError, match="max_images"):
        build("tpm_mi", tiny_bert, tiny_vit, max_images=5)


def test_saved_model_folder_reloads_with_its_fine_tuned_vision_encoder(tiny_bert, tiny_vit, tokenizer, posts, tmp_path):
    from mmie.inference.loading import load_model
    from mmie.inference.saving import save_model_folder

    model = build("tpm_mi", tiny_bert, tiny_vit, freeze_vision=False).eval()
    with torch.no_grad():  # as if fine-tuned: differs from the checkpoint it was loaded from
        next(model.vision_encoder.parameters()).add_(0.5)
    save_model_folder(model, tokenizer, tmp_path / "model")
    loaded = load_model(tmp_path / "model").model
    assert type(loaded) is type(model) and not loaded.vision_encoder.frozen
    batch = text_batch(tokenizer, posts)
    _, mask = image_inputs([1, 2, 3, 4])
    pixels = torch.randn(4, 4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(
            loaded(**batch, pixel_values=pixels, image_mask=mask).logits,
            model(**batch, pixel_values=pixels, image_mask=mask).logits,
        )


# ------------------------------------------------------------------- featurizer, real image files


def write_images(folder: Path, posts: list[Post]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for post in posts:
        for slot, ref in enumerate(post.images):
            colour = (40 * slot, 255 - 40 * slot, (hash(post.id) % 200))
            Image.new("RGB", (48 + 8 * slot, 40), colour).save(folder / ref)


@pytest.mark.parametrize("name", PREFIX_MODELS)
@pytest.mark.parametrize("frozen", [True, False])
def test_featurizer_collate_forward_backward_on_image_files(tiny_bert, tiny_vit, tokenizer, tmp_path, name, frozen):
    posts = make_ner_posts(5, seed=2)
    posts.append(Post(id="no-image", tokens=["alice", "visited", "paris"], tags=["B-PER", "O", "B-LOC"]))
    write_images(tmp_path / "images", posts)
    model = build(name, tiny_bert, tiny_vit, freeze_vision=frozen, feature_cache=str(tmp_path / "cache"))
    featurizer = create_processor(model.model_config, tokenizer, LABELS, images=tmp_path / "images").featurizer
    batch = Collator(tokenizer.pad_token_id)(featurizer.featurize(posts))
    slots = 4 if model.model_config.image_layout == "all" else 1
    assert batch["image_mask"].shape == (6, slots)
    expected = [min(p.n_images, slots) for p in posts]
    assert batch["image_mask"].sum(1).tolist() == expected
    assert ("image_features" in batch) == frozen and ("pixel_values" in batch) == (not frozen)
    model.train()
    model(**batch).loss.backward()
    model.eval()
    with torch.no_grad():
        assert model(**batch).predictions.shape == batch["word_mask"].shape


def test_featurizer_needs_the_image_folder_and_names_a_missing_file(tiny_bert, tiny_vit, tokenizer, tmp_path):
    model = build("tpm_mi", tiny_bert, tiny_vit, feature_cache=str(tmp_path / "cache"))
    no_folder = create_processor(model.model_config, tokenizer, LABELS).featurizer
    text_only = no_folder.featurize([Post(id="1", tokens=["bob"], tags=["B-PER"])])
    assert text_only[0]["image_mask"].tolist() == [False] * 4
    with pytest.raises(ConfigError, match="data.images"):
        no_folder.featurize([Post(id="2", tokens=["bob"], images=["2_0.jpg"], tags=["B-PER"])])
    (tmp_path / "images").mkdir()
    featurizer = create_processor(model.model_config, tokenizer, LABELS, images=tmp_path / "images").featurizer
    post = Post(id="7", tokens=["bob"], images=["7_0.jpg"], tags=["B-PER"])
    with pytest.raises(DataError, match=r"7_0\.jpg: image: missing image"):
        featurizer.featurize([post])


def test_fine_tuned_pixels_are_made_only_when_the_batch_is_collated(tiny_bert, tiny_vit, tokenizer, tmp_path):
    posts = make_ner_posts(4, seed=3)
    write_images(tmp_path / "images", posts)
    model = build("tpm_mi", tiny_bert, tiny_vit, freeze_vision=False)
    featurizer = create_processor(model.model_config, tokenizer, LABELS, images=tmp_path / "images").featurizer
    features = featurizer.featurize(posts)
    assert all(isinstance(feature["pixel_values"], Deferred) for feature in features)  # no pixels held
    batch = Collator(tokenizer.pad_token_id)(features)
    for row, post in enumerate(posts):
        pictures = [Image.open(tmp_path / "images" / ref).convert("RGB") for ref in post.images]
        torch.testing.assert_close(batch["pixel_values"][row, : len(pictures)], featurizer.encoder.preprocess(pictures))
        assert not batch["pixel_values"][row, len(pictures) :].any()
    # a missing file is still an error of featurize (before training starts), naming the file
    (tmp_path / "images" / posts[2].images[-1]).unlink()
    with pytest.raises(DataError, match=posts[2].images[-1]):
        featurizer.featurize(posts)


# --------------------------------------------------------------------- learning from the images


def synthetic_task(tokenizer, count: int, seed: int):
    """``rt : NAME today``: NAME's type (PER/LOC/ORG) is given by the first image only."""
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(3, IMAGE_DIM, generator=torch.Generator().manual_seed(99)) * 2
    posts, counts, kinds = [], [], []
    for index in range(count):
        kind = rng.randrange(3)
        tag = ["B-PER", "B-LOC", "B-ORG"][kind]
        name = rng.choice(["alice", "bob", "carol", "dave"])
        posts.append(Post(id=str(index), tokens=["rt", ":", name, "today"], tags=["O", "O", tag, "O"]))
        counts.append(rng.randint(1, 4))
        kinds.append(kind)
    features, mask = image_inputs(counts, seed=seed)
    features[:, 0] = prototypes[torch.tensor(kinds)] + 0.3 * torch.randn(count, IMAGE_DIM, generator=generator)
    return text_batch(tokenizer, posts), features, mask


def train_losses(model, batch, extra, steps: int) -> list[float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(**batch, **extra).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.slow
def test_tpm_mi_learns_what_only_the_images_tell(tiny_bert, tiny_vit, tokenizer):
    batch, features, mask = synthetic_task(tokenizer, 32, seed=1)
    steps = 25
    text_only = create_model({"name": "bert_crf", "encoder": tiny_bert, "max_length": 32, "dropout": 0.0}, LABELS)
    torch.manual_seed(0)
    text_losses = train_losses(text_only, batch, {}, steps)
    tpm = build("tpm_mi", tiny_bert, tiny_vit, dropout=0.0, prefix_dropout=0.0)
    tpm_losses = train_losses(tpm, batch, {"image_features": features, "image_mask": mask}, steps)
    text_final, tpm_final = sum(text_losses[-5:]) / 5, sum(tpm_losses[-5:]) / 5
    # the text alone cannot tell the type of NAME (about log 3 per post); the first image can
    assert text_final > 0.7
    assert tpm_final < 0.5 * text_final, (tpm_final, text_final)
    assert tpm_losses[-1] < tpm_losses[0]
