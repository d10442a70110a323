"""UMGF, UMGF-MI and UMGF RE on a tiny real BERT, a tiny real ViT, a tiny real OWL-ViT and real image files.

The defining mechanism: a post is one graph whose words are linked to every object (crop) of their own
post and of no other; each edge carries a sigmoid gate in (0, 1) (G5, G6); the objects are the crops
of the picture grounded with the four entity-type queries; UMGF-MI finds them on the stitched picture.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer

from conftest import make_ner_posts, make_re_instances
from mmie.data import read_crop_dict
from mmie.data.schema import Post
from mmie.data.stitch import stitch_images
from mmie.errors import ConfigError
from mmie.features.settings import ENTITY_TYPE_QUERIES
from mmie.models.layers.graph_fusion import GraphFusion
from mmie.models.registry import create_model, create_processor, model_config
from test_glra import read_records, synthetic_mre  # noqa: F401 - the fixture
from test_regions import tiny_owlvit  # noqa: F401 - the fixture
from test_tpm_mi import IMAGE_DIM, LABELS, text_batch, tiny_vit  # noqa: F401 - the fixture

RE_LABELS = ["None", "/per/loc/place_of_residence", "/per/org/member_of"]
SMALL = {"fusion_dim": 8, "fusion_layers": 2, "fusion_heads": 2, "fusion_feedforward": 16, "dropout": 0.0}


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return AutoTokenizer.from_pretrained(tiny_bert)


def write_images(folder: Path, posts: list[Post]) -> Path:
    """Real files: each image a coloured square with a brighter block at a place of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, post in enumerate(posts):
        for slot, ref in enumerate(post.images):
            picture = Image.new("RGB", (48 + 8 * slot, 40), (40 * slot, 200 - 25 * number, 90))
            picture.paste((250, 250, 20 * number), (4 + 6 * slot, 6, 20 + 6 * slot, 22))
            picture.save(folder / ref)
    return folder


def build(name: str, tiny_bert: str, tiny_vit: str, labels: list[str] = LABELS, seed: int = 0, **settings):  # noqa: F811
    torch.manual_seed(seed)
    config = {"name": name, "encoder": tiny_bert, "vision_encoder": tiny_vit, "max_length": 32, **SMALL, **settings}
    return create_model(config, labels)


# ------------------------------------------------------------------------------ the graph (G1)-(G8)


def fusion_inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    """Two posts: 5 and 3 real sub-words; 4 and 2 real objects."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "text": torch.randn(2, 5, 6, generator=generator),
        "text_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]).bool(),
        "objects": torch.randn(2, 4, 10, generator=generator),
        "object_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]).bool(),
    }


def test_each_word_reaches_every_object_of_its_own_post_only():
    torch.manual_seed(0)
    fusion = GraphFusion(6, 10, dim=8, layers=2, heads=2, feedforward=16, dropout=0.0).eval()
    inputs = fusion_inputs()
    with torch.no_grad():
        base = fusion(**inputs)
        for j in range(4):  # move one object of post 0: every real word of post 0 moves, post 1 does not
            objects = inputs["objects"].clone()
            objects[0, j] += 3.0
            moved = (fusion(**{**inputs, "objects": objects}).words - base.words).abs().amax(-1)
            assert (moved[0] > 1e-5).all(), f"object {j} does not reach every word of its post"
            assert (moved[1] == 0).all(), "an object reached a word of another post"
        padded = inputs["objects"].clone()
        padded[1, 2:] += 100.0  # post 1's padded objects are no nodes
        torch.testing.assert_close(fusion(**{**inputs, "objects": padded}).words, base.words)
    # the gates: one per edge, in (0, 1); none where there is no edge
    edges = inputs["text_mask"][:, None, :, None] & inputs["object_mask"][:, None, None, :]  # [B, 1, n, o]
    edges = edges.expand_as(base.gates)
    assert base.gates.shape == (2, 2, 5, 4)
    assert ((base.gates[edges] > 0) & (base.gates[edges] < 1)).all()
    assert (base.gates[~edges] == 0).all()


def test_words_gather_their_objects_through_the_sigmoid_gate_of_each_edge():
    """(G5)-(G6) by hand on the first layer's own X' and O' (read off its layer norms)."""
    torch.manual_seed(1)
    fusion = GraphFusion(6, 10, dim=8, layers=2, heads=2, feedforward=16, dropout=0.0).eval()
    layer = fusion.layers[0]
    seen: dict[str, torch.Tensor] = {}
    layer.text_norm.register_forward_hook(lambda _m, _a, out: seen.setdefault("words", out))
    layer.object_norm.register_forward_hook(lambda _m, _a, out: seen.setdefault("objects", out))
    layer.word_fusion_norm.register_forward_pre_hook(lambda _m, args: seen.setdefault("fused", args[0]))
    inputs = fusion_inputs(seed=4)
    with torch.no_grad():
        out = fusion(**inputs)
        x, o = seen["words"], seen["objects"]  # X' [B, n, d], O' [B, o, d]
        gate = torch.sigmoid(
            torch.cat([x[:, :, None].expand(-1, -1, 4, -1), o[:, None].expand(-1, 5, -1, -1)], -1)
            @ layer.word_gate.linear.weight.T
            + layer.word_gate.linear.bias
        )  # g_ij [B, n, o, d]
        edges = (inputs["text_mask"][:, :, None] & inputs["object_mask"][:, None, :]).float()[..., None]
        expected = x + (gate * edges * o[:, None]).sum(2)  # X'_i + sum_j A_ij g_ij O'_j
    torch.testing.assert_close(seen["fused"], expected)
    torch.testing.assert_close(out.gates[:, 0], (gate * edges).mean(-1))
    assert fusion.layers[-1].update_objects is False and not hasattr(fusion.layers[-1], "object_gate")


# ------------------------------------------------------------------------------------- the tagger


def test_the_gate_is_in_unit_interval_and_a_changed_crop_changes_the_fused_states(tiny_bert, tiny_vit, tokenizer):
    posts = make_ner_posts(4, seed=2)
    batch = text_batch(tokenizer, posts)
    generator = torch.Generator().manual_seed(0)
    crops = torch.randn(4, 1, 4, IMAGE_DIM, generator=generator)
    image_mask = torch.tensor([[True], [True], [False], [True]])
    region_mask = torch.tensor([[[True] * 4], [[True, True, False, False]], [[False] * 4], [[True] * 4]])
    images = {"region_features": crops, "region_mask": region_mask, "image_mask": image_mask}
    model = build("umgf", tiny_bert, tiny_vit).eval()
    with torch.no_grad():
        out = model(**batch, **images)
        real = batch["attention_mask"].bool()[:, None, :, None] & region_mask[:, None, :, None, :].squeeze(2)
        gates = out.gates  # [B, L, n, o]
        assert ((gates[real.expand_as(gates)] > 0) & (gates[real.expand_as(gates)] < 1)).all()
        assert (gates[2] == 0).all() and (gates[1, :, :, 2:] == 0).all()  # no image / missing crops: no edge
        for post, crop in ((0, 2), (1, 1), (3, 0)):
            changed = crops.clone()
            changed[post, 0, crop] += 2.0
            moved = (model(**batch, **{**images, "region_features": changed}).logits - out.logits).abs().amax((1, 2))
            assert moved[post] > 1e-4, f"crop {crop} of post {post} changes nothing"
            assert (moved[torch.arange(4) != post] == 0).all()
        ignored = crops.clone()
        ignored[2] += 5.0  # the post without an image
        ignored[1, 0, 2:] += 5.0  # the missing crops of post 1
        torch.testing.assert_close(model(**batch, **{**images, "region_features": ignored}).logits, out.logits)
    # the emissions read [H; X^L]: the text encoder's width plus the fusion's
    assert model.classifier.in_features == 32 + SMALL["fusion_dim"]


# ------------------------------------------------------------------------------------ the inputs


def test_the_four_type_queries_reach_the_region_provider(tiny_bert, tiny_vit, tiny_owlvit, tokenizer, tmp_path):  # noqa: F811
    posts = make_ner_posts(3, seed=7)
    folder = write_images(tmp_path / "images", posts)
    config = {"name": "umgf", "encoder": tiny_bert, "vision_encoder": tiny_vit, "max_length": 32}
    processor = create_processor({**config, "detector": tiny_owlvit}, tokenizer, LABELS, images=folder)
    featurizer = processor.featurizer
    assert model_config(config).region_queries == ENTITY_TYPE_QUERIES == (
        "person", "location", "organization", "miscellaneous"
    )  # fmt: skip
    for post in posts:
        found = featurizer._find_regions(post, post.images[0])
        assert [region.query for _, region in found] == list(ENTITY_TYPE_QUERIES)  # crop j answers query j
        assert all(source.ref == post.images[0] for source, _ in found)  # of the first image
    batch = processor(posts)
    assert batch["region_mask"].shape == (3, 1, 4) and batch["region_mask"].all()
    assert batch["region_features"].shape == (3, 1, 4, IMAGE_DIM)
    model = create_model({**processor.config.model_dump(), **SMALL}, LABELS).train()
    model(**batch).loss.backward()
    assert model.fusion.object_projection[0].weight.grad.abs().sum() > 0  # the crops reach the loss

    # other queries go to the provider as they are
    custom = create_processor(
        {**config, "detector": tiny_owlvit, "region_queries": ["dog", "car"], "regions_per_image": 2},
        tokenizer,
        LABELS,
        images=folder,
    )
    assert [r.query for _, r in custom.featurizer._find_regions(posts[0], posts[0].images[0])] == ["dog", "car"]


def test_umgf_mi_finds_its_crops_on_the_stitched_picture(tiny_bert, tiny_vit, tokenizer, tmp_path):  # noqa: F811
    posts = [
        Post(id=f"s{count}", tokens=["alice", "visited", "paris"], tags=["B-PER", "O", "B-LOC"],
             images=[f"s{count}_{i}.jpg" for i in range(count)])
        for count in (4, 1, 0, 2)
    ]  # fmt: skip
    folder = write_images(tmp_path / "images", posts)
    config = {"name": "umgf_mi", "encoder": tiny_bert, "vision_encoder": tiny_vit, "max_length": 32, "regions": "grid"}
    processor = create_processor(config, tokenizer, LABELS, images=folder)
    featurizer = processor.featurizer
    for post in (posts[0], posts[3]):
        [ref] = featurizer._slot_refs(post)  # one picture: all the images joined
        assert ref == "+".join(post.images)
        pictures = [Image.open(folder / name) for name in post.images]
        assert featurizer._image_source(post, ref).load().tobytes() == stitch_images(pictures).tobytes()
    assert featurizer._slot_refs(posts[2]) == []
    batch = processor(posts)
    assert batch["image_mask"].tolist() == [[True], [True], [False], [True]]
    assert batch["region_mask"].shape == (4, 1, 4)
    assert batch["region_mask"][[0, 1, 3]].any(-1).all() and not batch["region_mask"][2].any()
    # UMGF reads the first image only; its grid crops are those of that image
    first = create_processor({**config, "name": "umgf"}, tokenizer, LABELS, images=folder).featurizer
    assert first._slot_refs(posts[0]) == [posts[0].images[0]]
    model = create_model({**processor.config.model_dump(), **SMALL}, LABELS).eval()
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)


def test_bad_settings_name_their_field(tiny_bert, tiny_vit, tokenizer):  # noqa: F811
    config = {"name": "umgf_mi", "encoder": tiny_bert, "vision_encoder": tiny_vit}
    with pytest.raises(ConfigError, match="model.regions: .*stitched picture"):
        create_processor({**config, "regions": "precomputed"}, tokenizer, LABELS)
    with pytest.raises(ConfigError, match="model.regions_per_image"):
        create_processor({**config, "regions": "grid", "regions_per_image": 5}, tokenizer, LABELS)
    with pytest.raises(ConfigError, match="model.fusion_heads"):
        create_model({**config, "fusion_dim": 10, "fusion_heads": 4}, LABELS)
    with pytest.raises(ConfigError, match="model.region_queries"):
        model_config({**config, "region_queries": []})
    processor = create_processor({**config, "name": "umgf"}, tokenizer, LABELS, images=".")
    with pytest.raises(ConfigError, match="model.detector"):
        processor.featurizer.provider  # noqa: B018 - regions: detector without a detector


# --------------------------------------------------------------------------------------------- RE


def test_umgf_re_classifies_the_marked_pair_from_text_and_fused_crops(tiny_bert, tiny_vit, tokenizer, tmp_path):  # noqa: F811
    instances = make_re_instances(4, seed=3)
    folder = write_images(tmp_path / "images", [instance.post for instance in instances])
    config = {"name": "umgf_re", "encoder": tiny_bert, "vision_encoder": tiny_vit, "max_length": 32, "regions": "grid"}
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)  # the processor adds the markers to it
    processor = create_processor(config, tokenizer, RE_LABELS, images=folder)
    batch = processor(instances)
    assert batch["region_mask"].shape == (4, 1, 4) and batch["region_mask"].any(-1).all()
    torch.manual_seed(0)
    model = create_model({**processor.config.model_dump(), **SMALL}, RE_LABELS, tokenizer=tokenizer).eval()
    assert model.classifier.in_features == 2 * (32 + SMALL["fusion_dim"])  # [H; X^L] at <s> and <o>
    with torch.no_grad():
        out = model(**batch)
        assert out.logits.shape == (4, len(RE_LABELS)) and torch.isfinite(out.loss)
        changed = batch["region_features"].clone()
        changed[1, 0, 0] += 2.0
        moved = (model(**{**batch, "region_features": changed}).logits - out.logits).abs().amax(-1)
    assert moved[1] > 1e-5 and (moved[[0, 2, 3]] == 0).all()


# ------------------------------------------------------------------------------------ it learns


def test_umgf_learns_a_tag_only_its_crops_tell(tiny_bert, tiny_vit, tokenizer):  # noqa: F811
    """The same words are a person or an organisation depending on the crops alone: UMGF learns it, and
    the trained model with its crops masked out cannot tell the posts apart (the words are all it has)."""
    generator = torch.Generator().manual_seed(0)
    person, organisation = torch.randn(2, IMAGE_DIM, generator=generator)
    posts = [
        Post(id=f"l{i}", tokens=["kim", "said", "today"], tags=["B-PER" if i % 2 else "B-ORG", "O", "O"])
        for i in range(8)
    ]
    batch = text_batch(tokenizer, posts)
    crops = torch.stack([person if i % 2 else organisation for i in range(8)])[:, None, None].repeat(1, 1, 4, 1)
    crops = crops + 0.1 * torch.randn(crops.shape, generator=generator)  # [B, 1, 4, D]
    images = {"region_features": crops, "region_mask": torch.ones(8, 1, 4, dtype=torch.bool)}

    model = build("umgf", tiny_bert, tiny_vit, seed=3).train()
    inputs = {**batch, **images, "image_mask": torch.ones(8, 1, dtype=torch.bool)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(25):
        optimizer.zero_grad()
        model(**inputs).loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model(**inputs).predictions[:, 0]
        blind = model(**{**inputs, "image_mask": torch.zeros(8, 1, dtype=torch.bool)}).predictions[:, 0]
    assert (predicted == batch["labels"][:, 0]).all()  # every post tagged as its crops say
    assert (blind == blind[0]).all()  # without its crops the model reads the same post eight times


def test_a_fine_tuned_encoder_reads_the_crops_pixels_and_learns_from_them(tiny_bert, tiny_vit, tokenizer, tmp_path):  # noqa: F811
    posts = make_ner_posts(3, seed=9)
    folder = write_images(tmp_path / "images", posts)
    config = {"name": "umgf", "encoder": tiny_bert, "vision_encoder": tiny_vit, "max_length": 32, "regions": "grid"}
    processor = create_processor({**config, "freeze_vision": False}, tokenizer, LABELS, images=folder)
    batch = processor(posts)
    assert "region_features" not in batch and batch["region_pixel_values"].shape[:3] == (3, 1, 4)
    model = create_model({**processor.config.model_dump(), **SMALL}, LABELS).train()
    model(**batch).loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.vision_encoder.parameters())


def test_umgf_re_reads_a_releases_crop_dictionary(tiny_bert, tiny_vit, synthetic_mre):  # noqa: F811
    """MRE-MI ships up to 2 crops per image (images_vg.pth): the four slots hold them, the rest masked."""
    instances = read_records(synthetic_mre)[:4]
    config = {"name": "umgf_re", "encoder": tiny_bert, "vision_encoder": tiny_vit, "regions": "precomputed"}
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    processor = create_processor(config, tokenizer, RE_LABELS, images=synthetic_mre / "images")
    batch = processor(instances)
    crops = read_crop_dict(synthetic_mre / "images_vg.pth")
    for row, instance in enumerate(instances):
        shipped = len(crops.get(instance.post.images[0], [])[:4]) if instance.post.images else 0
        assert batch["region_mask"][row, 0].tolist() == [i < shipped for i in range(4)]
    assert batch["region_mask"].any(), "the synthetic release ships crops"
    model = create_model({**processor.config.model_dump(), **SMALL}, RE_LABELS, tokenizer=tokenizer).eval()
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)
