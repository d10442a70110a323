"""The frozen-feature cache on real JPEG files: hits, misses, corrupt and stale entries, keys, atomic writes, CLI."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import safetensors.torch
import torch
import transformers
import yaml
from PIL import Image
from transformers import ViTConfig, ViTModel

from mmie.cli import main as mmie_main
from mmie.data import Post, write_dataset
from mmie.data.images import load_image
from mmie.encoders.cache import FeatureCache, cache_summary
from mmie.encoders.vision import load_vision_encoder
from mmie.errors import ConfigError, DataError

TINY_VIT = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8
)
ViTProcessor = getattr(transformers, "ViTImageProcessorPil", transformers.ViTImageProcessor)


def save_vit(path: Path, seed: int = 0, mean: float = 0.5) -> str:
    torch.manual_seed(seed)
    ViTModel(ViTConfig(**TINY_VIT)).save_pretrained(path)
    ViTProcessor(size={"height": 32, "width": 32}, image_mean=[mean] * 3).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def vit_path(tmp_path_factory) -> str:
    return save_vit(tmp_path_factory.mktemp("tiny-vit"))


@pytest.fixture(scope="module")
def encoder(vit_path):
    return load_vision_encoder(vit_path, frozen=True)


@pytest.fixture
def jpegs(tmp_path) -> list[Path]:
    """Five different real JPEG files written by Pillow."""
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for index in range(5):
        generator = torch.Generator().manual_seed(index)
        pixels = torch.randint(0, 256, (40 + index, 56, 3), generator=generator, dtype=torch.uint8)
        path = folder / f"{index}.jpg"
        Image.fromarray(pixels.numpy(), "RGB").save(path, quality=90)
        paths.append(path)
    return paths


def fresh(encoder, paths):
    """Features computed now, without any cache, from the images as mmie loads them."""
    out = encoder([load_image(path.name, path.parent) for path in paths])
    return out.global_features, out.region_features


def entries(cache: FeatureCache) -> list[Path]:
    return sorted(cache.directory.glob("??/*.safetensors"))


def test_second_call_hits_and_values_equal_a_fresh_compute(tmp_path, encoder, jpegs):
    cache = FeatureCache(tmp_path / "cache", encoder)
    first = cache.get_many(jpegs)
    assert first[0].shape == (5, 32) and first[1].shape == (5, 16, 32)
    assert cache.stats.as_dict() == {"hits": 0, "memory_hits": 0, "misses": 5, "recomputed_corrupt": 0}
    expected = fresh(encoder, jpegs)
    assert torch.allclose(first[0], expected[0], atol=1e-6) and torch.allclose(first[1], expected[1], atol=1e-6)
    second = cache.get_many(jpegs[::-1])
    assert cache.stats.hits == 5 and cache.stats.memory_hits == 5 and cache.stats.misses == 5
    assert torch.equal(second[1], first[1].flip(0))
    # a new process (fresh memory) reads the disk entries
    reopened = FeatureCache(tmp_path / "cache", load_vision_encoder(encoder.name, frozen=True))
    third = reopened.get_many(jpegs)
    assert reopened.stats.as_dict() == {"hits": 5, "memory_hits": 0, "misses": 0, "recomputed_corrupt": 0}
    assert torch.equal(third[0], first[0]) and torch.equal(third[1], first[1])
    assert len(entries(reopened)) == 5


def test_bytes_pil_images_and_duplicates(tmp_path, encoder, jpegs):
    cache = FeatureCache(tmp_path / "cache", encoder)
    by_path = cache.get_many([jpegs[0], jpegs[1], jpegs[0]])
    assert cache.stats.misses == 2 and cache.stats.hits == 1  # the duplicate is computed once
    by_bytes = cache.get_many([jpegs[1].read_bytes()])  # same content hash as the file
    assert cache.stats.misses == 2 and torch.equal(by_bytes[0][0], by_path[0][1])
    image = load_image(jpegs[2].name, jpegs[2].parent)
    by_image = cache.get_many([image, image.copy()])
    assert cache.stats.misses == 3
    assert torch.allclose(by_image[0][0], fresh(encoder, [jpegs[2]])[0][0], atol=1e-6)
    empty = cache.get_many([])
    assert empty[0].shape == (0, 32) and empty[1].shape == (0, 16, 32)


def test_get_posts_puts_cached_features_in_masked_slots(tmp_path, encoder, jpegs):
    cache = FeatureCache(tmp_path / "cache", encoder)
    out = cache.get_posts([[jpegs[0]], jpegs[1:5], [jpegs[2], None, jpegs[3]]])
    assert out.global_features.shape == (3, 4, 32) and out.region_features.shape == (3, 4, 16, 32)
    assert out.image_mask.tolist() == [
        [True, False, False, False],
        [True, True, True, True],
        [True, False, True, False],
    ]
    assert cache.stats.misses == 5 and cache.stats.hits == 2  # jpegs[2] and jpegs[3] asked twice
    assert torch.count_nonzero(out.global_features[~out.image_mask]) == 0
    assert torch.equal(out.region_features[2, 2], out.region_features[1, 2])


def corrupt_and_check(tmp_path, encoder, jpegs, caplog, damage) -> None:
    cache = FeatureCache(tmp_path / "cache", encoder)
    cache.get_many(jpegs[:3])
    damage(entries(cache)[0])
    reopened = FeatureCache(tmp_path / "cache", encoder)
    with caplog.at_level(logging.WARNING, logger="mmie.encoders.cache"):
        got = reopened.get_many(jpegs[:3])
    assert reopened.stats.recomputed_corrupt == 1 and reopened.stats.hits == 2 and reopened.stats.misses == 0
    assert "1 corrupt or stale entries" in caplog.text
    expected = fresh(encoder, jpegs[:3])
    assert torch.allclose(got[0], expected[0], atol=1e-6) and torch.allclose(got[1], expected[1], atol=1e-6)
    # the entry was rewritten: a third reader finds it valid
    again = FeatureCache(tmp_path / "cache", encoder)
    again.get_many(jpegs[:3])
    assert again.stats.hits == 3 and again.stats.recomputed_corrupt == 0


def test_truncated_entry_is_recomputed(tmp_path, encoder, jpegs, caplog):
    def truncate(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    corrupt_and_check(tmp_path, encoder, jpegs, caplog, truncate)


def test_garbled_tensor_bytes_are_caught_by_the_checksum(tmp_path, encoder, jpegs, caplog):
    def garble(path: Path) -> None:
        data = bytearray(path.read_bytes())
        for offset in range(len(data) - 40, len(data) - 8):  # inside the tensor data, header intact
            data[offset] ^= 0x5A
        path.write_bytes(bytes(data))

    corrupt_and_check(tmp_path, encoder, jpegs, caplog, garble)


def test_stale_entry_of_another_image_or_shape_is_recomputed(tmp_path, encoder, jpegs, caplog):
    def swap_with_sibling(path: Path) -> None:
        sibling = next(entry for entry in path.parent.parent.glob("??/*.safetensors") if entry != path)
        path.write_bytes(sibling.read_bytes())  # valid file, but its metadata names another image

    corrupt_and_check(tmp_path, encoder, jpegs, caplog, swap_with_sibling)


def test_wrong_shape_with_matching_metadata_is_recomputed(tmp_path, encoder, jpegs, caplog):
    def reshape(path: Path) -> None:
        with safetensors.safe_open(str(path), "pt") as handle:
            metadata = handle.metadata()
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        tensors["regions"] = tensors["regions"][:8]  # 8 regions instead of 16
        safetensors.torch.save_file(tensors, str(path), metadata=metadata)

    corrupt_and_check(tmp_path, encoder, jpegs, caplog, reshape)


def test_key_depends_on_weights_preprocessing_and_storage_not_on_reloading(tmp_path, vit_path, encoder):
    root = tmp_path / "cache"
    key = FeatureCache(root, encoder).key
    assert FeatureCache(root, load_vision_encoder(vit_path, frozen=True)).key == key  # stable across loads
    other_weights = load_vision_encoder(save_vit(tmp_path / "other", seed=1), frozen=True)
    other_preprocessing = load_vision_encoder(save_vit(tmp_path / "mean", seed=0, mean=0.4), frozen=True)
    assert torch.equal(
        other_preprocessing.model.embeddings.patch_embeddings.projection.weight,
        encoder.model.embeddings.patch_embeddings.projection.weight,
    )
    reloaded = load_vision_encoder(vit_path, frozen=True)
    key_before = FeatureCache(root, reloaded).key
    state = reloaded.state_dict()
    state["model.layernorm.weight"] = state["model.layernorm.weight"] + 1
    reloaded.load_state_dict(state)  # e.g. a checkpoint loaded into the model around the encoder
    assert key_before == key and FeatureCache(root, reloaded).key != key
    keys = {
        key,
        FeatureCache(root, other_weights).key,
        FeatureCache(root, other_preprocessing).key,
        FeatureCache(root, load_vision_encoder(vit_path, frozen=True, global_pooling="cls")).key,
        FeatureCache(root, encoder, storage_dtype="float16").key,
    }
    assert len(keys) == 5
    identity = json.loads((FeatureCache(root, encoder).directory / "identity.json").read_text())
    assert identity["key"] == key and identity["hidden_size"] == 32 and identity["mmie_cache_version"] == 1


def test_float16_storage_returns_the_same_values_on_hit_and_miss(tmp_path, encoder, jpegs):
    cache = FeatureCache(tmp_path / "cache", encoder, storage_dtype="float16")
    computed = cache.get_many(jpegs[:2])
    read_back = FeatureCache(tmp_path / "cache", encoder, storage_dtype="float16").get_many(jpegs[:2])
    assert computed[1].dtype == torch.float32 and torch.equal(computed[1], read_back[1])
    assert torch.allclose(computed[1], fresh(encoder, jpegs[:2])[1], atol=1e-2)


def test_atomic_writes_leave_no_partial_files(tmp_path, encoder, jpegs, monkeypatch):
    cache = FeatureCache(tmp_path / "cache", encoder)

    def disk_full(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)  # the commit step of every atomic write fails
    with pytest.raises((OSError, DataError), match="No space left"):  # DataError names the entry file
        cache.get_many(jpegs[:2])
    monkeypatch.undo()
    assert entries(cache) == []
    assert [path for path in cache.directory.rglob("*") if path.is_file() and path.name != "identity.json"] == []
    cache.get_many(jpegs[:2])
    assert len(entries(cache)) == 2
    assert list(cache.directory.rglob("*.tmp")) == []


def test_missing_and_broken_images_follow_the_policy(tmp_path, encoder, jpegs):
    broken = jpegs[0].parent / "broken.jpg"
    data = jpegs[0].read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # a JPEG cut short
    missing = jpegs[0].parent / "missing.jpg"
    strict = FeatureCache(tmp_path / "cache", encoder)
    with pytest.raises(DataError, match="missing.jpg: image: missing image"):
        strict.get_many([jpegs[1], missing])
    with pytest.raises(DataError, match="broken.jpg: image: "):
        strict.get_many([broken])
    lenient = FeatureCache(tmp_path / "cache", encoder, policy="blank")
    got = lenient.get_many([jpegs[1], missing, broken])
    blank = encoder([Image.new("RGB", (224, 224))])
    assert torch.allclose(got[0][1], blank.global_features[0], atol=1e-6)
    assert torch.allclose(got[0][2], blank.global_features[0], atol=1e-6)
    assert lenient.report.counts() == {"missing": 1, "truncated": 1}


def test_fine_tuned_encoder_is_refused(tmp_path, vit_path):
    with pytest.raises(ConfigError, match="frozen"):
        FeatureCache(tmp_path / "cache", load_vision_encoder(vit_path, frozen=False))


def test_cli_build_from_folder_and_from_config(tmp_path, vit_path, jpegs, capsys):
    root = tmp_path / "cli-cache"
    mmie_main(["cache", "build", "--images", str(jpegs[0].parent), "--encoder", vit_path, "--cache-dir", str(root)])
    assert [row["entries"] for row in cache_summary(root)] == [5]
    # a config caches only the images its data files name
    posts = [
        Post("1", ["a", "b"], images=["0.jpg", "1.jpg"], tags=["O", "O"]),
        Post("2", ["c"], images=["3.jpg"], tags=["O"]),
    ]
    train = tmp_path / "train.jsonl"
    write_dataset(posts, train, "mnermi")
    config = tmp_path / "exp.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "ner",
                "model": {"name": "bert_crf"},
                "data": {"train": str(train), "format": "mnermi", "images": str(jpegs[0].parent)},
            }
        )
    )
    other_root = tmp_path / "config-cache"
    mmie_main(["cache", "build", str(config), "--encoder", vit_path, "--cache-dir", str(other_root)])
    assert "caching 3 images" in capsys.readouterr().out
    assert [row["entries"] for row in cache_summary(other_root)] == [3]
    with pytest.raises(SystemExit) as done:
        mmie_main(["cache", "build", "--encoder", vit_path, "--cache-dir", str(other_root)])
    assert done.value.code == 2


def test_cli_build_reads_the_vision_encoder_and_cache_folder_of_a_model_config(tmp_path, vit_path, jpegs):
    from mmie.models.registry import list_models

    assert "tpm_mi" in list_models("ner")  # a lost registration fails here, it is no reason to skip
    train = tmp_path / "train.jsonl"
    write_dataset([Post("1", ["a"], images=["0.jpg", "4.jpg"], tags=["O"])], train, "mnermi")
    model_root = tmp_path / "model-cache"
    config = tmp_path / "exp.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "ner",
                "model": {"name": "tpm_mi", "vision_encoder": vit_path, "feature_cache": str(model_root)},
                "data": {"train": str(train), "format": "mnermi", "images": str(jpegs[0].parent)},
            }
        )
    )
    mmie_main(["cache", "build", str(config)])
    assert [(row["entries"], row["name"]) for row in cache_summary(model_root)] == [(2, vit_path)]
