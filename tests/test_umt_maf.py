"""UMT, UMT-MI and MAF on a tiny real BERT and a tiny real ViT: each one's defining mechanism.

UMT: the auxiliary span labels are the main labels' B / I / O, and the converted span scores reach
every main label of their kind through the conversion matrix. UMT-MI: the stitched picture holds
every real image of the post and nothing else. MAF: the negatives of the matching module read the
image of another post of the batch, the alignment is InfoNCE over the posts with an image, and the
matching probability gates the visual features.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer

from conftest import make_ner_posts
from mmie.data.schema import Post
from mmie.data.stitch import stitch_images
from mmie.models.registry import create_model, create_processor
from mmie.models.umt.maf import info_nce, swap_images
from mmie.models.umt.umt import conversion_matrix, span_label_ids
from test_tpm_mi import IMAGE_DIM, LABELS, text_batch, tiny_vit  # noqa: F401 - the fixture

GRID = 2  # region_grid of the tests: 4 regions per picture


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return AutoTokenizer.from_pretrained(tiny_bert)


@pytest.fixture(scope="module")
def posts() -> list[Post]:
    return make_ner_posts(6, seed=5)


def build(name: str, tiny_bert: str, tiny_vit: str, seed: int = 0, **settings):  # noqa: F811
    torch.manual_seed(seed)
    config = {"name": name, "encoder": tiny_bert, "vision_encoder": tiny_vit, "max_length": 32, "region_grid": GRID}
    return create_model({**config, "dropout": 0.0, **settings}, LABELS)


def grid_inputs(present: list[bool], seed: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    regions = torch.randn(len(present), 1, GRID * GRID, IMAGE_DIM, generator=generator)
    return {"region_features": regions, "image_mask": torch.tensor(present)[:, None]}


def capture(module: torch.nn.Module, store: list) -> torch.utils.hooks.RemovableHandle:
    """Keep each output of ``module`` (a forward hook)."""
    return module.register_forward_hook(lambda _module, _args, output: store.append(output))


# ----------------------------------------------------------------------------------------- UMT


def test_span_labels_and_the_conversion_matrix_follow_the_label_names():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    assert span_label_ids(labels).tolist() == [0, 1, 2, 1, 2, 1, 2, 1, 2]
    matrix = conversion_matrix(labels)
    # the authors' fixed matrix for Twitter's four types: O -> O, B -> each B-X and I -> each I-X at 0.25
    expected = torch.zeros(3, len(labels))
    expected[0, 0] = 1.0
    expected[1, [1, 3, 5, 7]] = 0.25
    expected[2, [2, 4, 6, 8]] = 0.25
    assert torch.equal(matrix, expected)
    assert conversion_matrix(LABELS)[1, LABELS.index("B-LOC")] == pytest.approx(1 / 3)  # K = 3 types here


def test_umt_span_task_maps_onto_the_main_labels(tiny_bert, tiny_vit, tokenizer, posts):
    batch = text_batch(tokenizer, posts)
    images = grid_inputs([True] * len(posts))
    labels = batch["labels"]
    model = build("umt", tiny_bert, tiny_vit, span_mix=0.0).eval()  # alpha 0: the converted span scores only
    spans: list[torch.Tensor] = []
    capture(model.span_classifier, spans)
    with torch.no_grad():
        out = model(**batch, **images)
    span_scores = spans[0]  # z_s [B, w, 3]
    b, i = LABELS.index("B-PER"), LABELS.index("I-ORG")
    torch.testing.assert_close(out.logits[..., b], span_scores[..., 1] / 3)  # B -> B-PER at 1/K
    torch.testing.assert_close(out.logits[..., i], span_scores[..., 2] / 3)  # I -> I-ORG at 1/K
    torch.testing.assert_close(out.logits[..., 0], span_scores[..., 0])  # O -> O

    # the auxiliary labels are the main labels' B / I / O, padding kept
    span_labels = model.span_labels(labels)
    for row, post in enumerate(posts):
        assert [("O", "B", "I")[k] for k in span_labels[row, : len(post.tags)].tolist()] == [t[0] for t in post.tags]
    assert (span_labels[labels == -100] == -100).all()
    # beta weighs exactly the span CRF's loss on those labels
    weighted = build("umt", tiny_bert, tiny_vit, span_mix=0.0, span_weight=1.0).eval()
    with torch.no_grad():
        span_loss = model.span_crf(span_scores, span_labels, batch["word_mask"])
        plain = build("umt", tiny_bert, tiny_vit, span_mix=0.0, span_weight=0.0).eval()(**batch, **images).loss
        torch.testing.assert_close(weighted(**batch, **images).loss, plain + span_loss)
        torch.testing.assert_close(out.loss, plain + 0.5 * span_loss)


def test_umt_visual_gate_reads_the_image_and_a_post_without_one_reads_none(tiny_bert, tiny_vit, tokenizer, posts):
    model = build("umt", tiny_bert, tiny_vit).eval()
    batch = text_batch(tokenizer, posts)
    present = [True, False, True, False, True, True]
    images = grid_inputs(present)
    with torch.no_grad():
        out = model(**batch, **images)
        other = {**images, "region_features": images["region_features"] + 5.0}
        changed = model(**batch, **other).logits
    moved = (changed - out.logits).abs().amax(dim=(1, 2))
    assert (moved[torch.tensor(present)] > 1e-4).all()  # the image changes the posts that have one
    assert (moved[~torch.tensor(present)] == 0).all()  # and nothing of the posts without


# ---------------------------------------------------------------------------------------- UMT-MI


def write_images(folder: Path, posts: list[Post]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number, post in enumerate(posts):
        for slot, ref in enumerate(post.images):
            Image.new("RGB", (40 + 8 * slot, 32), (60 * slot, 200 - 30 * number, 90)).save(folder / ref)


def test_umt_mi_reads_every_real_image_stitched_and_none_for_missing_ones(tiny_bert, tiny_vit, tokenizer, tmp_path):
    posts = [
        Post(id=f"p{count}", tokens=["alice", "visited", "paris"], tags=["B-PER", "O", "B-LOC"],
             images=[f"p{count}_{i}.jpg" for i in range(count)])
        for count in (4, 2, 0, 1)
    ]  # fmt: skip
    write_images(tmp_path / "images", posts)
    config = {"name": "umt_mi", "encoder": tiny_bert, "vision_encoder": tiny_vit, "max_length": 32}
    processor = create_processor({**config, "freeze_vision": False}, tokenizer, LABELS, images=tmp_path / "images")
    batch = processor(posts)
    assert batch["image_mask"].tolist() == [[True], [True], [False], [True]]  # one picture a post with images
    encoder = processor.featurizer.encoder
    for row, post in enumerate(posts):
        if not post.images:
            continue
        pictures = [Image.open(tmp_path / "images" / ref) for ref in post.images]
        expected = encoder.preprocess([stitch_images(pictures)])[0]
        torch.testing.assert_close(batch["pixel_values"][row, 0], expected)  # all of them, the blank cells black
    # UMT reads the first image only
    first = create_processor(
        {**config, "name": "umt", "freeze_vision": False}, tokenizer, LABELS, images=tmp_path / "images"
    )
    picture = Image.open(tmp_path / "images" / "p4_0.jpg")
    torch.testing.assert_close(first(posts)["pixel_values"][0, 0], encoder.preprocess([picture])[0])
    # the model trains on the stitched pictures, its own vision encoder included
    model = create_model({**processor.config.model_dump(), "region_grid": GRID}, LABELS).train()
    model(**batch).loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.vision_encoder.parameters())


# ------------------------------------------------------------------------------------------- MAF


def test_negatives_swap_images_between_posts_with_an_image():
    present = torch.tensor([True, True, False, True, True, True, True, True, True])
    order = swap_images(present, 0.5)  # 8 posts with an image: the last 4 of them swap pairwise
    assert order.tolist() == [0, 1, 2, 3, 4, 7, 8, 5, 6]
    negatives = order != torch.arange(len(order))
    assert present[order[negatives]].all() and (order[negatives] != torch.nonzero(negatives).flatten()).all()
    assert sorted(order.tolist()) == list(range(len(order)))  # every image read once
    assert swap_images(present, 0.0).tolist() == list(range(len(order)))
    assert swap_images(torch.tensor([True, False, False]), 1.0).tolist() == [0, 1, 2]  # nobody to swap with


def test_maf_negatives_read_another_posts_image_only_in_training(tiny_bert, tiny_vit, tokenizer, posts):
    model = build("maf", tiny_bert, tiny_vit, negative_fraction=0.5).train()
    batch = text_batch(tokenizer, posts)
    images = grid_inputs([True] * len(posts))
    keys: list[torch.Tensor] = []
    model.text_to_image.register_forward_pre_hook(lambda _module, args: keys.append(args[1]))
    model(**batch, **images)
    # 6 posts, 3 negatives rounded to 1 pair: posts 4 and 5 read each other's image in the cross-modal layer
    own = model.image_projection(images["region_features"][:, 0])
    torch.testing.assert_close(keys[0], own[[0, 1, 2, 3, 5, 4]])
    assert not torch.allclose(keys[0][4], own[4])
    model.eval()
    with torch.no_grad():
        model(**batch, **images)
    torch.testing.assert_close(keys[1], own.detach())  # no swapping outside training


def test_maf_matching_targets_are_zero_for_the_swapped_posts(tiny_bert, tiny_vit, tokenizer, posts):
    model = build("maf", tiny_bert, tiny_vit, negative_fraction=0.5, ner_weight=0.0).train()
    batch = text_batch(tokenizer, posts)
    images = grid_inputs([True] * len(posts))
    logits: list[torch.Tensor] = []
    capture(model.matcher, logits)
    aligned: list[torch.Tensor] = []  # the inputs of the two alignment MLPs: t and u
    for mlp in (model.text_alignment, model.image_alignment):
        mlp.register_forward_pre_hook(lambda _module, args: aligned.append(args[0]))
    loss = model(**batch, **images).loss
    targets = torch.tensor([1, 1, 1, 1, 0, 0])
    match = torch.nn.functional.cross_entropy(logits[0], targets)
    text, image = aligned
    torch.testing.assert_close(image, images["region_features"][:, 0].mean(1))  # u: own images, never swapped
    alignment = model.alignment_loss(text, image, torch.ones(len(posts), dtype=torch.bool))
    torch.testing.assert_close(loss, match + alignment)  # lambda = 0: matching + alignment only


def test_info_nce_is_cross_entropy_over_the_posts_with_an_image():
    scores = torch.randn(5, 5, generator=torch.Generator().manual_seed(1))
    present = torch.tensor([True, True, False, True, True])
    keep = torch.nonzero(present).flatten()
    expected = torch.nn.functional.cross_entropy(scores[keep][:, keep], torch.arange(4), reduction="none")
    losses = info_nce(scores, present)
    torch.testing.assert_close(losses[keep], expected)
    assert losses[2] == 0


def test_maf_alignment_pulls_own_pairs_together(tiny_bert, tiny_vit):
    model = build("maf", tiny_bert, tiny_vit)
    text, image = torch.randn(4, 32), torch.randn(4, IMAGE_DIM)
    present = torch.ones(4, dtype=torch.bool)
    before = model.alignment_loss(text, image, present)
    optimizer = torch.optim.Adam([*model.text_alignment.parameters(), *model.image_alignment.parameters()], lr=1e-2)
    for _ in range(30):
        optimizer.zero_grad()
        model.alignment_loss(text, image, present).backward()
        optimizer.step()
    assert model.alignment_loss(text, image, present) < before / 4


def test_maf_matching_probability_gates_the_visual_features(tiny_bert, tiny_vit, tokenizer, posts):
    model = build("maf", tiny_bert, tiny_vit).eval()
    batch = text_batch(tokenizer, posts)
    images = grid_inputs([True] * len(posts))
    other = {**images, "region_features": images["region_features"] + 5.0}
    with torch.no_grad():
        assert (model(**batch, **images).logits - model(**batch, **other).logits).abs().max() > 1e-4
        model.matcher.weight.zero_()
        model.matcher.bias.copy_(torch.tensor([30.0, -30.0]))  # p(matched) ~ 0: the image is shut out
        torch.testing.assert_close(model(**batch, **images).logits, model(**batch, **other).logits)


# ------------------------------------------------------------------------------------ configs

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("dataset", ["mner_mi", "mner_mi_plus", "twitter2017", "twitter2015"])
@pytest.mark.parametrize("offline", [False, True])
def test_every_dataset_has_the_three_rows_with_the_intended_encoders(dataset: str, offline: bool):
    from mmie.training.config import load_config

    for row, layout in (("umt", "first"), ("umt_mi", "stitched"), ("maf", "first")):
        config = load_config(CONFIGS / dataset / ("offline" if offline else "") / f"{row}.yaml")
        model = config.model
        assert config.task == "ner" and model.name == row and type(model).image_layout == layout
        assert model.encoder == ("minilm" if offline else "bert-base-uncased")
        assert model.vision_encoder == ("efficientnet-lite0" if offline else "google/vit-base-patch16-224")
        assert model.freeze_vision and model.region_cells == 7  # frozen 7 x 7 grid, as the originals' ResNet
        assert config.training.learning_rate == 5e-5 and config.training.epochs == 12
    if dataset != "twitter2015":  # the Table 3 sweeps (MNER-MI paper) run all three
        sweep = (CONFIGS / "tables" / f"{dataset}_table3.yaml").read_text(encoding="utf-8")
        for label, row in (("UMT", "umt"), ("UMT-MI", "umt_mi"), ("MAF", "maf")):
            assert f"  {label}: configs/{dataset}/{row}.yaml\n" in sweep
