"""UMT with a relation head on a tiny real BERT and a tiny real ViT: its defining mechanisms.

The image reaches the relation logits through UMT's interaction (and a post without one reads none);
the head reads the fused states [H; B] at the two start markers, wherever the entities are; the
processor hands over the marked text and the first image, as a grid of cached features or as pixels.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from mmie.data.schema import Post, RelationInstance, Span
from mmie.models.base import gather_positions
from mmie.models.registry import create_model, create_processor
from test_glra import IMAGE_DIM, LABELS, build, text_batch, tiny_vit, tokenizer  # noqa: F401 - the fixtures

GRID = 2  # region_grid of the tests: 4 regions per picture


def instance(tokens: list[str], head: tuple[int, int], tail: tuple[int, int], images: list[str]) -> RelationInstance:
    post = Post(id="-".join(tokens + images), tokens=tokens, images=images)
    return RelationInstance(
        post=post,
        head=Span(*head, " ".join(tokens[slice(*head)])),
        tail=Span(*tail, " ".join(tokens[slice(*tail)])),
        label=LABELS[1],
    )


def pairs() -> list[RelationInstance]:
    """Three pairs of one post (the entities in other places) and one of another post."""
    tokens = ["rt", "alice", "lives", "in", "paris", "with", "bob", "today"]
    return [
        instance(tokens, (1, 2), (4, 5), ["a.jpg"]),
        instance(tokens, (6, 7), (4, 5), ["a.jpg"]),
        instance(tokens, (4, 5), (1, 2), ["a.jpg"]),
        instance(["bob", "works", "for", "nasa"], (0, 1), (3, 4), ["b.jpg"]),
    ]


def grid_inputs(present: list[bool], seed: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    regions = torch.randn(len(present), 1, GRID * GRID, IMAGE_DIM, generator=generator)
    return {"region_features": regions, "image_mask": torch.tensor(present)[:, None]}


def umt_re(tiny_bert: str, tiny_vit: str, tokenizer):  # noqa: F811
    return build("umt_re", tiny_bert, tiny_vit, tokenizer, region_grid=GRID, dropout=0.0).eval()


def test_the_image_changes_the_relation_logits_and_a_post_without_one_reads_none(tiny_bert, tiny_vit, tokenizer):  # noqa: F811
    model = umt_re(tiny_bert, tiny_vit, tokenizer)
    batch = text_batch(tokenizer, model, pairs())
    present = [True, False, True, False]
    images = grid_inputs(present)
    with torch.no_grad():
        logits = model(**batch, **images).logits
        other = model(**batch, **{**images, "region_features": images["region_features"] + 5.0}).logits
    moved = (other - logits).abs().amax(dim=1)
    assert (moved[torch.tensor(present)] > 1e-4).all()  # through U6-U8, the image changes the prediction
    assert (moved[~torch.tensor(present)] == 0).all()  # B is zero without an image: its regions are never read


def test_the_head_reads_the_fused_states_at_the_start_markers(tiny_bert, tiny_vit, tokenizer):  # noqa: F811
    model = umt_re(tiny_bert, tiny_vit, tokenizer)
    batch = text_batch(tokenizer, model, pairs())
    images = grid_inputs([True] * 4)
    inputs: list[torch.Tensor] = []
    model.classifier.register_forward_pre_hook(lambda _module, args: inputs.append(args[0]))
    head_id, tail_id = tokenizer.convert_tokens_to_ids([model.model_config.markers[0], model.model_config.markers[2]])
    rows = torch.arange(4)
    assert (batch["input_ids"][rows, batch["head_start"]] == head_id).all()
    assert (batch["input_ids"][rows, batch["tail_start"]] == tail_id).all()
    with torch.no_grad():
        logits = model(**batch, **images).logits
        # F = [H; B] of UMT's interaction, written out from the model's own parts
        text = model.encode_text(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        grid, present = model.image_grid(images["image_mask"], images["region_features"])
        fused = torch.cat(model.interact(text, batch["attention_mask"].bool(), grid, present), dim=-1)
    d2 = fused.shape[-1]
    torch.testing.assert_close(inputs[0][:, :d2], gather_positions(fused, batch["head_start"][:, None])[:, 0])
    torch.testing.assert_close(inputs[0][:, d2:], gather_positions(fused, batch["tail_start"][:, None])[:, 0])
    # the same post with its entities elsewhere: another input to the head, another prediction
    assert not torch.allclose(inputs[0][0], inputs[0][1]) and not torch.allclose(logits[0], logits[1])
    # the head follows the marker positions it is given: swapped, the two halves of r swap
    with torch.no_grad():
        model(**{**batch, "head_start": batch["tail_start"], "tail_start": batch["head_start"]}, **images)
    torch.testing.assert_close(inputs[1], torch.cat([inputs[0][:, d2:], inputs[0][:, :d2]], dim=1))


def write_images(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, colour in (("a.jpg", (200, 30, 30)), ("b.jpg", (20, 40, 220)), ("c.jpg", (20, 200, 20))):
        Image.new("RGB", (40, 32), colour).save(folder / name)
    return folder


def test_the_processor_gives_the_first_image_as_a_grid_or_as_pixels(tiny_bert, tiny_vit, tokenizer, tmp_path):  # noqa: F811
    images = write_images(tmp_path / "images")
    records = pairs()
    records[3].post.images = ["b.jpg", "c.jpg"]  # UMT reads the first image only
    records[1].post.images = []
    config = {"name": "umt_re", "encoder": tiny_bert, "vision_encoder": tiny_vit, "max_length": 32, "region_grid": GRID}
    frozen = create_processor(config, tokenizer, LABELS, images=images)
    batch = frozen(records)
    assert batch["image_mask"].tolist() == [[True], [False], [True], [True]]
    assert batch["region_features"].shape == (4, 1, GRID * GRID, IMAGE_DIM)
    assert batch["region_features"][1].abs().sum() == 0  # no image: no features
    assert torch.equal(batch["region_features"][0], batch["region_features"][2])  # one post, one picture
    tuned = create_processor({**config, "freeze_vision": False}, tokenizer, LABELS, images=images)
    pixels = tuned(records)
    assert pixels["pixel_values"].shape == (4, 1, 3, 32, 32)
    # pixels through the model's own (fine-tuned) encoder read the same grid as the cached features
    torch.manual_seed(0)
    model = create_model(tuned.config, LABELS, tokenizer=tokenizer).eval()
    with torch.no_grad():
        from_pixels = model(**pixels).logits
        from_cache = model(**{key: value for key, value in batch.items() if key != "image_features"}).logits
    torch.testing.assert_close(from_pixels, from_cache, atol=1e-4, rtol=1e-4)
    model.train()
    model(**pixels).loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.vision_encoder.parameters())
