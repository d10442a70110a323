"""TPM-MI with a relation head on a tiny real BERT and a tiny real ViT: its defining mechanisms.

One prefix block (token) per real image in every layer, none for a padded slot; the images change the
relation logits, a post without any reads the plain text encoder; the head reads the start markers;
the processor hands over every image of the post (up to m), cached or as pixels.
"""

from __future__ import annotations

import torch

from mmie.models.base import gather_positions
from mmie.models.registry import create_model, create_processor
from test_glra import IMAGE_DIM, LABELS, build, text_batch, tiny_vit, tokenizer  # noqa: F401 - the fixtures
from test_umt_re import pairs, write_images

SLOTS = 4


def image_inputs(counts: list[int], seed: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(len(counts), SLOTS, IMAGE_DIM, generator=generator)
    mask = torch.arange(SLOTS)[None, :] < torch.tensor(counts)[:, None]
    return {"image_features": features, "image_mask": mask}


def tpm_mi_re(tiny_bert: str, tiny_vit: str, tokenizer, **settings):  # noqa: F811
    return build("tpm_mi_re", tiny_bert, tiny_vit, tokenizer, dropout=0.0, prefix_dropout=0.0, **settings).eval()


def test_one_prefix_block_per_real_image_and_none_for_padded_slots(tiny_bert, tiny_vit, tokenizer):  # noqa: F811
    model = tpm_mi_re(tiny_bert, tiny_vit, tokenizer)
    batch = text_batch(tokenizer, model, pairs())
    images = image_inputs([1, 4, 2, 0])
    prefixes: list = []
    model.visual_prefix.register_forward_hook(lambda _module, _args, output: prefixes.append(output))
    with torch.no_grad():
        logits = model(**batch, **images).logits
        # garbage in every padded slot changes nothing: those blocks are never attended to
        padded = ~images["image_mask"][..., None]
        garbage = {**images, "image_features": images["image_features"].masked_fill(padded, 1e4)}
        torch.testing.assert_close(model(**batch, **garbage).logits, logits)
    prefix = prefixes[0]
    assert prefix.mask.tolist() == images["image_mask"].tolist()  # one block per real image, in order
    layers = model.text_encoder.config.num_hidden_layers
    assert len(prefix.key_values) == layers  # in every layer
    assert all(keys.shape[2] == SLOTS and values.shape[2] == SLOTS for keys, values in prefix.key_values)


def test_the_images_change_the_logits_and_none_give_the_plain_text_encoder(tiny_bert, tiny_vit, tokenizer):  # noqa: F811
    model = tpm_mi_re(tiny_bert, tiny_vit, tokenizer)
    batch = text_batch(tokenizer, model, pairs())
    images = image_inputs([1, 4, 2, 0])
    with torch.no_grad():
        logits = model(**batch, **images).logits
        changed = images["image_features"].clone()
        changed[:, 0] += 3.0  # the first image of every post
        moved = (model(**batch, **{**images, "image_features": changed}).logits - logits).abs().amax(dim=1)
        plain = model.encode_text(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        markers = model.marker_vectors(plain, batch["head_start"], batch["tail_start"]).flatten(1)
        text_only = model.classifier(markers)
    assert (moved[:3] > 1e-4).all()  # the posts with images
    assert moved[3] == 0
    torch.testing.assert_close(logits[3], text_only[3])  # no image: no prefix, BERT as it is
    # order matters through the temporal positions: the same images in another order, another prediction
    with torch.no_grad():
        swapped = images["image_features"][:, [1, 0, 2, 3]]
        order = model(**batch, **{**images, "image_features": swapped}).logits
    assert not torch.allclose(order[1], logits[1])


def test_the_head_reads_the_start_markers_of_the_prefixed_encoder(tiny_bert, tiny_vit, tokenizer):  # noqa: F811
    model = tpm_mi_re(tiny_bert, tiny_vit, tokenizer)
    batch = text_batch(tokenizer, model, pairs())
    images = image_inputs([2, 2, 2, 3])
    hidden: list = []
    inputs: list[torch.Tensor] = []
    model.text_encoder.register_forward_hook(lambda _module, _args, output: hidden.append(output.last_hidden_state))
    model.classifier.register_forward_pre_hook(lambda _module, args: inputs.append(args[0]))
    with torch.no_grad():
        logits = model(**batch, **images).logits
    positions = torch.stack([batch["head_start"], batch["tail_start"]], dim=1)
    torch.testing.assert_close(inputs[0], gather_positions(hidden[0], positions).flatten(1))
    # pairs 0 and 1 are one post with the head elsewhere: another input to the head, another prediction
    assert not torch.allclose(inputs[0][0], inputs[0][1]) and not torch.allclose(logits[0], logits[1])


def test_the_processor_gives_every_image_cached_or_as_pixels(tiny_bert, tiny_vit, tokenizer, tmp_path):  # noqa: F811
    folder = write_images(tmp_path / "images")
    records = pairs()
    records[3].post.images = ["b.jpg", "c.jpg", "a.jpg"]
    records[1].post.images = []
    config = {"name": "tpm_mi_re", "encoder": tiny_bert, "vision_encoder": tiny_vit, "max_length": 32}
    batch = create_processor(config, tokenizer, LABELS, images=folder)(records)
    assert batch["image_mask"].sum(1).tolist() == [1, 0, 1, 3]
    assert batch["image_features"].shape == (4, SLOTS, IMAGE_DIM)
    tuned = create_processor({**config, "freeze_vision": False}, tokenizer, LABELS, images=folder)
    pixels = tuned(records)
    assert pixels["pixel_values"].shape == (4, SLOTS, 3, 32, 32)
    torch.manual_seed(0)
    model = create_model(tuned.config, LABELS, tokenizer=tokenizer).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(**pixels).logits, model(**batch).logits, atol=1e-4, rtol=1e-4)
    model.train()
    model(**pixels).loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.vision_encoder.parameters())
    assert model.temporal_encoder.temporal_positions.grad is not None
