"""`mmie cache build` and `mmie cache info`: precompute and inspect frozen vision features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mmie.cli.typer_apps import app
from mmie.errors import ConfigError

cache_app = typer.Typer(help="Frozen vision features cached on disk: build, info.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _config_inputs(
    config_path: Path, overrides: list[str]
) -> tuple[list[Path], str | None, Path | None, tuple[int, int] | None]:
    """From an experiment config: the images its data files name, its vision encoder, cache folder and
    multi-scale setting (HVPNeT reads stage features: a cache of their own)."""
    from mmie.data import read_dataset
    from mmie.data.images import resolve_image
    from mmie.training.config import load_config

    config = load_config(config_path, overrides)
    if config.data.images is None:
        raise ConfigError(f"{config_path}: data.images: no image folder in the config (or pass --images)")
    image_dir = config.data.images
    refs: dict[str, None] = {}
    for split in (config.data.train, config.data.dev, config.data.test):
        if split is None:
            continue
        for record in read_dataset(split, config.data.format).records:
            post = getattr(record, "post", record)  # RE instances hold their post
            refs.update(dict.fromkeys(post.images))
    paths = [resolve_image(ref, image_dir) for ref in refs]
    # Multimodal model configs name their vision encoder and cache folder here; text models have neither.
    model = config.model
    return (
        paths,
        getattr(model, "vision_encoder", None),
        getattr(model, "feature_cache", None),
        getattr(model, "multiscale", None),
    )


@cache_app.command("build")
def build(
    config: Annotated[
        Path | None, typer.Argument(help="Experiment config: caches the images its train/dev/test files name.")
    ] = None,
    images: Annotated[
        list[Path] | None, typer.Option("--images", help="Image folder to cache entirely (repeatable; recursive).")
    ] = None,
    encoder: Annotated[
        str | None, typer.Option("--encoder", help="Vision encoder: efficientnet-lite0, hub id or folder.")
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Cache root (default $MMIE_CACHE_DIR or ~/.cache/mmie/vision-features)."),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per encoder call.")] = 16,
    storage_dtype: Annotated[
        str, typer.Option("--storage-dtype", help="float32 | float16 | bfloat16 on disk.")
    ] = "float32",
    policy: Annotated[
        str, typer.Option("--policy", help="Broken or missing images: error | blank (counted).")
    ] = "error",
    device: Annotated[
        str | None, typer.Option("--device", help="cpu, cuda, ... (default: the GPU when there is one).")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key, e.g. data.images=/data/imgs.")
    ] = None,
) -> None:
    """Encode every image once with a frozen encoder and store the features for later runs and models."""
    import torch

    from mmie.encoders.cache import FeatureCache, build_feature_cache, default_cache_root, image_files
    from mmie.encoders.vision import DEFAULT_VISION_ENCODER, load_vision_encoder

    paths: list[Path] = []
    config_encoder = config_cache = multiscale = None
    if config is not None:
        paths, config_encoder, config_cache, multiscale = _config_inputs(config, overrides or [])
    for folder in images or []:
        paths.extend(image_files(folder))
    if config is None and not images:
        raise ConfigError("mmie cache build: give a CONFIG or --images DIR")
    name = encoder or config_encoder or DEFAULT_VISION_ENCODER
    chosen_device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    vision = load_vision_encoder(name, frozen=True, device=chosen_device, multiscale=multiscale)
    cache = FeatureCache(
        cache_dir or config_cache or default_cache_root(),
        vision,
        batch_size=batch_size,
        storage_dtype=storage_dtype,
        policy=policy,  # type: ignore[arg-type]
    )
    typer.echo(
        f"caching {len(paths)} images with {name} (D={vision.hidden_size}, R={vision.num_regions}) in {cache.directory}"
    )
    build_feature_cache(cache, paths, progress=True)
    stats = cache.stats
    typer.echo(
        f"done: {stats.misses} computed, {stats.hits} already cached, {stats.recomputed_corrupt} corrupt entries recomputed; "
        f"{cache.report.summary()}"
    )


@cache_app.command("info")
def info(
    cache_dir: Annotated[Path | None, typer.Argument(help="Cache root (default: the default root).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One line per encoder folder: entries, size on disk, leftover temporary files."""
    from mmie.encoders.cache import cache_summary, default_cache_root

    rows = cache_summary(cache_dir or default_cache_root())
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo(f"no feature cache under {cache_dir or default_cache_root()}")
    for row in rows:
        what = (
            "identity.json damaged (rewritten at the next use)"
            if row["damaged"]
            else f"{row['name']} D={row['hidden_size']} R={row['num_regions']} {row['storage_dtype']}"
        )
        typer.echo(
            f"{row['folder']}: {what}, "
            f"{row['entries']} entries, {row['bytes'] / 2**20:.1f} MiB, {row['temporary_files']} temporary files"
        )
