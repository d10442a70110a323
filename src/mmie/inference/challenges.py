"""The challenge sweep: one trained model scored on the clean set and on each noise ratio of a challenge.

    result = challenge_sweep(mmie.load_model("runs/x/model", images="data/images"), "data/test.txt", "align-noise")
    print(render_challenge_table(result))

``result`` is the JSON ``mmie evaluate --challenge`` writes (docs/challenges.md):
``{"challenge", "seed", "model", "data", "results": [{"ratio": 0.0, "metrics": {...}}, ...]}``, the
clean set (ratio 0.0) first, each ``metrics`` the dict ``mmie evaluate --json`` prints.

Align-Noise changes the records (:func:`mmie.data.challenge.align_noise`), so it works for every
model, text models included (their scores do not move: a useful control). Aug-Noise changes the
crop dictionary the model reads its regions from (the model config's ``region_dict``, by default the
``images_vg.pth`` beside the image folder); the noisy dictionary is written to a temporary folder
and the model's featurizer is pointed at it. A model that reads no crop dictionary (a text model, or
regions computed on the fly: ``regions: grid``) is an error for Aug-Noise.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmie.data import read_dataset
from mmie.data.challenge import CHALLENGES, CROP_DIR_NAME, DEFAULT_SEED, PAPER_RATIOS, align_noise, aug_noise, crop_keys
from mmie.data.formats.crops import read_crop_dict, write_crop_dict
from mmie.errors import ConfigError, DataError
from mmie.features.settings import RegionInputs
from mmie.inference.predict import Predictor
from mmie.regions.precomputed import default_crop_dict

if TYPE_CHECKING:
    from mmie.inference.loading import LoadedModel


def _crop_source(model: LoadedModel) -> tuple[Path, Path, str]:
    """The crop dictionary, crop folder and key the model's regions come from."""
    config = model.model.model_config
    if not isinstance(config, RegionInputs) or config.region_count == 0:
        raise ConfigError(
            f"--challenge aug-noise: the model {config.name!r} reads no regions; Aug-Noise changes regions "
            f"(Align-Noise works for every model)"
        )
    if config.regions != "precomputed":
        raise ConfigError(
            f"--challenge aug-noise: the model computes its regions on the fly (regions: {config.regions}); "
            f"Aug-Noise acts on a crop dictionary (build one with `mmie regions build` and train on it)"
        )
    crop_dict = config.region_dict
    if crop_dict is None:
        if model.images is None:
            raise ConfigError("--challenge aug-noise: give --images (the crop dictionary is looked for beside them)")
        first = model.images if isinstance(model.images, (str, Path)) else model.images[0]
        crop_dict = default_crop_dict(first)
    crop_dict = Path(crop_dict)
    crop_dir = Path(config.region_dir) if config.region_dir is not None else crop_dict.with_name(CROP_DIR_NAME)
    return crop_dict, crop_dir, config.region_key


def challenge_sweep(
    model: LoadedModel,
    data: str | Path,
    challenge: str,
    ratios: Sequence[float] | None = None,
    seed: int = DEFAULT_SEED,
    *,
    data_format: str | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, Any]:
    """Scores of ``model`` on ``data`` clean (ratio 0.0) and at each ratio of ``challenge`` (default: the paper's)."""
    if challenge not in CHALLENGES:
        raise ConfigError(f"--challenge: unknown challenge {challenge!r} (choose from {', '.join(CHALLENGES)})")
    ratios = list(PAPER_RATIOS[challenge] if ratios is None else ratios)
    for ratio in ratios:
        if not 0.0 < ratio <= 1.0:
            raise ConfigError(f"--ratios: each ratio must be in (0, 1], got {ratio}")
    dataset = read_dataset(data, format=data_format)
    if dataset.task != model.task:
        raise DataError(
            f"holds {dataset.task.upper()} records ({dataset.format}), but the model is an {model.task.upper()} model",
            path=data,
        )
    records = list(dataset.records)
    source = _crop_source(model) if challenge == "aug-noise" else None
    results = [{"ratio": 0.0, "metrics": model.evaluate(records, batch_size=batch_size, progress=progress)}]
    for ratio in ratios:
        if challenge == "align-noise":
            noisy = align_noise(records, ratio, seed).records
            metrics = model.evaluate(noisy, batch_size=batch_size, progress=progress)
        else:
            assert source is not None
            metrics = _evaluate_aug_noise(model, records, source, ratio, seed, batch_size, progress)
        results.append({"ratio": ratio, "metrics": metrics})
    return {"challenge": challenge, "seed": seed, "model": str(model.path), "data": str(data), "results": results}


def _evaluate_aug_noise(
    model: LoadedModel,
    records: list,
    source: tuple[Path, Path, str],
    ratio: float,
    seed: int,
    batch_size: int,
    progress: bool,
) -> dict:
    crop_dict, crop_dir, key = source
    noise = aug_noise(read_crop_dict(crop_dict), crop_keys(records, key), ratio, seed)
    with tempfile.TemporaryDirectory(prefix="mmie-aug-noise-") as folder:
        noisy_dict = Path(folder) / crop_dict.name
        write_crop_dict(noise.crops, noisy_dict)
        # The crop names stay names of the original folder (a replaced region is another image's crop).
        processor = model.new_processor(region_dict=noisy_dict, region_dir=crop_dir)
        predictor = Predictor(model.model, processor)
        return predictor.evaluate(records, batch_size, progress, description=f"aug-noise {ratio:g}")


def render_challenge_table(result: dict[str, Any]) -> str:
    """Markdown: one row per ratio (clean first), P / R / F1 in % and the F1 change from the clean set."""
    rows = result["results"]
    clean = rows[0]["metrics"]["f1"] if rows else 0.0
    lines = [
        f"{result['challenge']} (seed {result['seed']}): {result['model']} on {result['data']}",
        "",
        "| ratio | P | R | F1 | ΔF1 |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        m = row["metrics"]
        label = "clean" if row["ratio"] == 0.0 else f"{100 * row['ratio']:g}%"
        lines.append(
            f"| {label} | {100 * m['precision']:.2f} | {100 * m['recall']:.2f} | {100 * m['f1']:.2f} | "
            f"{100 * (m['f1'] - clean):+.2f} |"
        )
    return "\n".join(lines)
