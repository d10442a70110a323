"""Vision encoders: tiny real ViT / CLIP checkpoints loaded through from_pretrained, and the offline EfficientNet-Lite0."""

from __future__ import annotations

import pytest
import torch
import transformers
from PIL import Image
from torch import nn
from transformers import CLIPConfig, CLIPModel, ViTConfig, ViTModel

from mmie.encoders.vision import (
    PostVisionOutput,
    encode_posts,
    flatten_post_images,
    load_vision_encoder,
    scatter_to_slots,
)
from mmie.errors import ConfigError

TINY_VIT = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8
)
# transformers 5 names the Pillow-only processors *Pil; 4.x has only the (Pillow-based) slow ones.
ViTProcessor = getattr(transformers, "ViTImageProcessorPil", transformers.ViTImageProcessor)
CLIPProcessor = getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    ViTModel(ViTConfig(**TINY_VIT, hidden_dropout_prob=0.2)).save_pretrained(path)
    ViTProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return str(path)


def photo(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    """A noise picture, different per seed."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy(), "RGB")


def posts_with(counts: list[int]) -> list[list[Image.Image]]:
    return [[photo(10 * post + slot) for slot in range(count)] for post, count in enumerate(counts)]


def test_vit_dimensions_come_from_the_checkpoint(tiny_vit):
    encoder = load_vision_encoder(tiny_vit, frozen=True)
    assert (encoder.hidden_size, encoder.num_regions, encoder.grid_size) == (32, 16, (4, 4))  # 32 / 8 = 4 x 4 patches
    out = encoder([photo(1), photo(2, (100, 30))])
    assert out.global_features.shape == (2, 32)
    assert out.region_features.shape == (2, 16, 32)
    # On transformers 5 the processor must be the Pillow backend (torchvision does not import here).
    if int(transformers.__version__.split(".")[0]) >= 5:
        assert type(encoder.processor).__name__.endswith("Pil")


@pytest.mark.parametrize("pooling", ["cls", "mean", "pooler"])
def test_global_pooling_reads_the_model_output(tiny_vit, pooling):
    encoder = load_vision_encoder(tiny_vit, frozen=True, global_pooling=pooling)
    images = [photo(3), photo(4)]
    out = encoder(images)
    hidden = encoder.model(pixel_values=encoder.preprocess(images))
    regions = hidden.last_hidden_state[:, 1:]  # [CLS] removed
    assert torch.allclose(out.region_features, regions)
    expected = {
        "cls": hidden.last_hidden_state[:, 0],
        "mean": regions.mean(1),
        "pooler": hidden.pooler_output,
    }[pooling]
    assert torch.allclose(out.global_features, expected)


def test_posts_with_one_to_four_images_are_padded_and_masked(tiny_vit):
    encoder = load_vision_encoder(tiny_vit, frozen=True)
    posts = posts_with([1, 4, 2, 3])
    out = encode_posts(encoder, posts)
    assert isinstance(out, PostVisionOutput)
    assert out.global_features.shape == (4, 4, 32)
    assert out.region_features.shape == (4, 4, 16, 32)
    assert out.image_mask.tolist() == [
        [True, False, False, False],
        [True, True, True, True],
        [True, True, False, False],
        [True, True, True, False],
    ]
    assert torch.count_nonzero(out.region_features[~out.image_mask]) == 0
    # every real slot holds the features of its own image, in order
    for row, images in enumerate(posts):
        alone = encoder(images)
        assert torch.allclose(out.global_features[row, : len(images)], alone.global_features, atol=1e-5)
        assert torch.allclose(out.region_features[row, : len(images)], alone.region_features, atol=1e-5)


def test_padded_slots_cost_no_vision_compute(tiny_vit):
    encoder = load_vision_encoder(tiny_vit, frozen=True)
    batch_sizes: list[int] = []
    hook = encoder.model.embeddings.register_forward_hook(
        lambda module, args, output: batch_sizes.append(output.shape[0])
    )
    try:
        encode_posts(encoder, posts_with([1, 4, 2]))
        encode_posts(encoder, [[photo(1), None, photo(2)]])  # a missing image keeps its slot, masked
    finally:
        hook.remove()
    assert batch_sizes == [7, 2]  # 1 + 4 + 2 real images in one call, not 3 x 4 slots


def test_flatten_keeps_slots_of_missing_images_and_refuses_too_many():
    flat, mask = flatten_post_images([["a", None, "b"], ["c"]], max_images=4)
    assert flat == ["a", "b", "c"]
    assert mask.tolist() == [[True, False, True, False], [True, False, False, False]]
    with pytest.raises(ValueError, match="5 images, more than max_images=4"):
        flatten_post_images([list("abcde")])
    flat, mask = flatten_post_images([list("abcde")], max_images=2, truncate=True)
    assert flat == ["a", "b"] and mask.tolist() == [[True, True]]
    with pytest.raises(ValueError, match="2 real slots but 3 feature rows"):
        scatter_to_slots(torch.ones(3, 5), mask)


def test_frozen_encoder_stays_frozen_inside_a_training_model(tiny_vit):
    encoder = load_vision_encoder(tiny_vit, frozen=True)
    model = nn.ModuleDict({"vision": encoder, "head": nn.Linear(32, 2)})
    model.train()
    assert model["head"].training
    assert not any(module.training for module in encoder.modules())
    assert not any(parameter.requires_grad for parameter in encoder.parameters())
    images = [photo(5), photo(6)]
    first, second = encoder(images), encoder(images)  # dropout 0.2 in the config: off when frozen
    assert torch.equal(first.global_features, second.global_features)
    assert not first.global_features.requires_grad


def test_fine_tuned_encoder_gets_gradients(tiny_vit):
    encoder = load_vision_encoder(tiny_vit, frozen=False)
    head = nn.Linear(encoder.hidden_size, 1)
    nn.ModuleDict({"vision": encoder, "head": head}).train()
    assert encoder.model.training
    out = encode_posts(encoder, posts_with([2, 1]))
    pooled = (out.global_features * out.image_mask.unsqueeze(-1)).sum(1) + out.region_features.mean((1, 2))
    head(pooled).sum().backward()
    grads = {name: p.grad for name, p in encoder.named_parameters()}
    assert all(grad is not None for grad in grads.values())
    assert grads["model.embeddings.patch_embeddings.projection.weight"].abs().sum() > 0
    encoder.set_frozen(True)
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())


def test_clip_checkpoint_loads_its_vision_tower_only(tmp_path):
    vision = dict(TINY_VIT)
    text = dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(tmp_path)
    CLIPProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    encoder = load_vision_encoder(str(tmp_path))
    assert type(encoder.model).__name__ == "CLIPVisionModel"
    assert (encoder.hidden_size, encoder.num_regions, encoder.global_pooling) == (32, 16, "pooler")
    images = [photo(7)]
    hidden = encoder.model(pixel_values=encoder.preprocess(images))
    assert torch.allclose(encoder(images).global_features, hidden.pooler_output)  # post-layernorm [CLS]


def test_unknown_encoder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not a local model folder"):
        load_vision_encoder(str(tmp_path / "no-such-model"))
    with pytest.raises(ConfigError, match="global_pooling"):
        load_vision_encoder(str(tmp_path), global_pooling="max")


def test_efficientnet_lite0_offline_gives_a_7x7_grid_of_1280(tmp_path):
    encoder = load_vision_encoder("efficientnet-lite0", frozen=True)
    assert (encoder.hidden_size, encoder.num_regions, encoder.grid_size) == (1280, 49, (7, 7))
    for index, size in enumerate([(640, 480), (300, 300), (200, 500)]):
        photo(index, size).save(tmp_path / f"{index}.jpg", quality=90)
    images = [Image.open(tmp_path / f"{index}.jpg") for index in range(3)]
    out = encoder(images)
    assert out.global_features.shape == (3, 1280)
    assert out.region_features.shape == (3, 49, 1280)
    assert torch.allclose(out.global_features, out.region_features.mean(1))
    assert torch.isfinite(out.region_features).all()
    assert not torch.allclose(out.global_features[0], out.global_features[1])
    pixels = encoder.preprocess(images)
    assert pixels.shape == (3, 3, 224, 224)
