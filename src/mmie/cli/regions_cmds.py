"""`mmie regions build`: write the regions of a dataset in the MRE-MI layout (crops + images_vg.pth)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mmie.cli.typer_apps import app
from mmie.errors import ConfigError

_CONFIG_KEYS = ("data", "format", "images", "encoder", "cache_dir", "top_k", "out", "queries")
regions_app = typer.Typer(help="Visual-grounding regions: build crops in the MRE-MI layout.", no_args_is_help=True)
app.add_typer(regions_app, name="regions")


def _from_config(config_path: Path, overrides: list[str]) -> dict:
    """Data files, image folder, vision encoder, k and output folder of an experiment config."""
    from mmie.regions import default_crop_dict
    from mmie.training.config import load_config

    config = load_config(config_path, overrides)
    model = config.model
    region_dict = getattr(model, "region_dict", None)
    images = config.data.images
    if region_dict is None and images:
        # where the model looks: beside its (first) image folder, the MRE-MI layout
        region_dict = default_crop_dict(images[0] if isinstance(images, list) else images)
    return {
        "data": [path for path in (config.data.train, config.data.dev, config.data.test) if path is not None],
        "format": config.data.format,
        "images": images,
        "encoder": getattr(model, "vision_encoder", None),
        "cache_dir": getattr(model, "feature_cache", None),
        "top_k": getattr(model, "regions_per_image", None),
        "queries": _fixed_queries(model),
        # the folder the model reads its crops from (model.region_dict, else beside data.images)
        "out": Path(region_dict).parent if region_dict is not None else None,
    }


def _fixed_queries(model: Any) -> list[str] | None:
    """A model with fixed region queries (UMGF's entity types) reads one crop per query, in order."""
    from mmie.features.settings import QueryRegionInputs

    if not isinstance(model, QueryRegionInputs):
        return None
    return list(model.region_queries[: model.regions_per_image])


@regions_app.command("build")
def build(
    config: Annotated[
        Path | None, typer.Argument(help="Experiment config: the images its train/dev/test files name.")
    ] = None,
    data: Annotated[list[Path] | None, typer.Option("--data", help="Data file (repeatable).")] = None,
    data_format: Annotated[str | None, typer.Option("--format", help="Data format; detected when omitted.")] = None,
    images: Annotated[Path | None, typer.Option("--images", help="Image folder the records' images are in.")] = None,
    provider: Annotated[str, typer.Option("--provider", help="grid (offline) | detector | precomputed.")] = "grid",
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, help="Regions per image (default 2).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder: images_vg/ + images_vg.pth.")] = None,
    encoder: Annotated[
        str | None, typer.Option("--encoder", help="grid: vision encoder (default efficientnet-lite0).")
    ] = None,
    detector: Annotated[
        str | None, typer.Option("--detector", help="detector: zero-shot detection model name or folder.")
    ] = None,
    crops: Annotated[Path | None, typer.Option("--crops", help="precomputed: a crop dictionary (.pth).")] = None,
    crop_dir: Annotated[Path | None, typer.Option("--crop-dir", help="precomputed: its crop folder.")] = None,
    key: Annotated[str, typer.Option("--key", help="precomputed: dictionary keyed by image | record.")] = "image",
    words: Annotated[bool, typer.Option("--words", help="Also query the post's other content words.")] = False,
    queries: Annotated[
        str | None,
        typer.Option(
            "--queries",
            help="Fixed queries for every image, comma-separated, one region each in order (UMGF's "
            "person,location,organization,miscellaneous; default: the config's model.region_queries).",
        ),
    ] = None,
    threshold: Annotated[float, typer.Option("--threshold", help="detector: minimum box score.")] = 0.0,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="grid: feature cache folder (reuses cached features).")
    ] = None,
    policy: Annotated[str, typer.Option("--policy", help="Broken images: error | blank (no regions).")] = "error",
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda, ... (default: the GPU if any).")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a config key.")] = None,
) -> None:
    """Find the top-k regions of every image and write them as MRE-MI crops (resumable: done images are skipped)."""
    from mmie.data import read_dataset
    from mmie.regions import build_regions, create_provider

    settings: dict[str, Any] = (
        _from_config(config, overrides or []) if config is not None else dict.fromkeys(_CONFIG_KEYS)
    )
    settings["data"] = settings["data"] or []
    records = []
    files = data or settings["data"]
    if key == "record" and len(files) > 1:
        # record ids of MNRE are line indices, which every file repeats: one dictionary serves one file
        raise ConfigError("--key record: a dictionary keyed by record id serves one data file; give one --data")
    for path in files:
        records.extend(read_dataset(path, format=data_format or settings["format"]).records)
    if not records:
        raise ConfigError("mmie regions build: give a CONFIG or --data FILE (with --images DIR)")
    image_dir = images or settings["images"]
    if image_dir is None:
        raise ConfigError("mmie regions build: --images: the image folder is needed")
    out_dir = out or settings["out"]
    if out_dir is None:
        raise ConfigError("mmie regions build: --out: the output folder is needed (the config names no region_dict)")
    if policy not in ("error", "blank"):
        raise ConfigError(f"--policy must be error or blank, got {policy!r}")
    chosen = create_provider(
        provider,
        encoder=encoder or settings["encoder"],
        detector=detector,
        crop_dict=crops,
        crop_dir=crop_dir,
        key=key,
        device=device,
        cache_dir=cache_dir or settings["cache_dir"],
        threshold=threshold,
    )
    fixed = queries.split(",") if queries is not None else settings["queries"]
    k = len(fixed) if fixed is not None else top_k or settings["top_k"] or 2
    if fixed is not None and top_k is not None and top_k != k:
        raise ConfigError(f"--top-k: {top_k}, but {k} fixed queries give one region each (leave --top-k out)")
    what = f"one per query ({', '.join(fixed)})" if fixed is not None else f"top {k}"
    typer.echo(f"{provider} regions, {what} per image, into {out_dir}")
    summary = build_regions(
        records,
        image_dir,
        chosen,
        out_dir,
        k,
        words=words,
        queries=fixed,
        policy=policy,  # type: ignore[arg-type]
    )
    typer.echo(f"done: {summary.line()}")
