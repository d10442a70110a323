"""The challenge sweep: one trained model scored on the clean set and on each noise ratio of a challenge.

    result = challenge_sweep(mmie.load_model("runs/x/model", images="data/images"), "data/test.txt", "align-noise")
    print(render_challenge_table(result))

``result`` is the JSON ``mmie evaluate --challenge`` writes (docs/challenges.md):
``{"challenge", "seed", "model", "data", "results": [{"ratio": 0.0, "metrics": {...}}, ...]}``, the
clean set (ratio 0.0) first, each ``metrics`` the dict ``mmie evaluate --json`` prints.

Align-Noise changes the records (:func:`mmie.data.challenge.align_noise`), so it works for every
model, text models included (their scores do not move: a useful control). Aug-Noise changes the
regions: every set of regions the model reads (its ``regions``, and FocalMRE's OD set too) as a crop
dictionary, ``ratio`` of its regions replaced by another image's or deleted. A set read from a crop
dictionary (``regions: precomputed``; by default the ``images_vg.pth`` beside the image folder) is
noised as it is; a set computed on the fly (``regions: grid``, a detector) is first written as a crop
dictionary by the model's own provider, the clean regions it reads, and that is noised. The noisy
dictionaries go to a temporary folder and the model's featurizer is pointed at them. A model that
reads no regions (a text model, MTB + image without regions) is an error for Aug-Noise.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmie.data import read_dataset
from mmie.data.challenge import CHALLENGES, CROP_DIR_NAME, DEFAULT_SEED, PAPER_RATIOS, align_noise, aug_noise, crop_keys
from mmie.data.formats.crops import read_crop_dict, write_crop_dict
from mmie.errors import ConfigError, DataError
from mmie.features.settings import FocalInputs, RegionInputs
from mmie.inference.predict import Predictor
from mmie.regions.build import build_regions
from mmie.regions.precomputed import CROP_DICT_NAME, default_crop_dict

if TYPE_CHECKING:
    from mmie.inference.loading import LoadedModel


@dataclass(frozen=True)
class CropSet:
    """One set of regions a model reads, as a crop dictionary: the config keys that name it (``regions``,
    ``region_dict``, ``region_dir``, or FocalMRE's OD set ``od_regions``, ...), where it is, how it is keyed."""

    kind_key: str
    dict_key: str
    dir_key: str
    crop_dict: Path
    crop_dir: Path
    key: str

    def settings(self, crop_dict: Path) -> dict[str, Any]:
        """The config changes that make the model read ``crop_dict`` (crops named in this set's folder)."""
        as_setting = str if self.dict_key.startswith("od_") else Path  # FocalInputs names its OD files as str
        return {
            self.kind_key: "precomputed",
            self.dict_key: as_setting(crop_dict),
            self.dir_key: as_setting(self.crop_dir),
        }


def _region_sets(config: Any) -> list[tuple[str, str, str, int]]:
    """(kind key, dictionary key, folder key, k) of every set of regions the model reads."""
    if isinstance(config, FocalInputs):  # FocalMRE: the VG set and the OD set (none with the original image)
        if config.image_input == "original":
            return []
        vg, od = config.focal_sets
        return [("regions", "region_dict", "region_dir", vg)] * (vg > 0) + [
            ("od_regions", "od_region_dict", "od_region_dir", od)
        ] * (od > 0)
    if not isinstance(config, RegionInputs) or config.region_count == 0:
        return []
    return [("regions", "region_dict", "region_dir", config.region_count)]


def _crop_sets(model: LoadedModel, records: list, folder: Path, progress: bool) -> list[CropSet]:
    """The crop dictionaries of every set of regions the model reads. A set computed on the fly (the grid,
    a detector) is first written as a crop dictionary by the model's own provider (``mmie regions build``),
    so its Aug-Noise acts on the very regions the model reads clean."""
    config = model.model.model_config
    sets = _region_sets(config)
    if not sets:
        raise ConfigError(
            f"--challenge aug-noise: the model {config.name!r} reads no regions; Aug-Noise changes regions "
            f"(Align-Noise works for every model)"
        )
    assert isinstance(config, RegionInputs)
    crop_sets = []
    for kind_key, dict_key, dir_key, k in sets:
        kind = getattr(config, kind_key)
        if kind == "precomputed":
            crop_dict = getattr(config, dict_key)
            if crop_dict is None and dict_key == "region_dict":
                if model.images is None:
                    raise ConfigError(
                        "--challenge aug-noise: give --images (the crop dictionary is looked for beside them)"
                    )
                first = model.images if isinstance(model.images, (str, Path)) else model.images[0]
                crop_dict = default_crop_dict(first)
            if crop_dict is None:
                raise ConfigError(f"--challenge aug-noise: model.{dict_key}: no crop dictionary is named")
            crop_dict = Path(crop_dict)
            folder_setting = getattr(config, dir_key)
            crop_dir = Path(folder_setting) if folder_setting is not None else crop_dict.with_name(CROP_DIR_NAME)
            crop_sets.append(CropSet(kind_key, dict_key, dir_key, crop_dict, crop_dir, config.region_key))
            continue
        if model.images is None:
            raise ConfigError(f"--challenge aug-noise: give --images (the {kind} regions are computed from them)")
        featurizer: Any = model.new_processor().featurizer
        provider = featurizer.od_provider if kind_key == "od_regions" else featurizer.provider
        out = folder / f"clean_{kind_key}"
        build_regions(records, model.images, provider, out, k, progress=progress)
        crop_sets.append(CropSet(kind_key, dict_key, dir_key, out / CROP_DICT_NAME, out / CROP_DIR_NAME, "image"))
    if len({crop_set.key for crop_set in crop_sets}) > 1:
        raise ConfigError(
            "--challenge aug-noise: the model's VG crops are keyed by record and its OD regions by image; "
            "build both as crop dictionaries of one key (mmie regions build)"
        )
    return crop_sets


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
    with tempfile.TemporaryDirectory(prefix="mmie-aug-noise-") as temporary:
        folder = Path(temporary)
        crop_sets = _crop_sets(model, records, folder, progress) if challenge == "aug-noise" else []
        results = [{"ratio": 0.0, "metrics": model.evaluate(records, batch_size=batch_size, progress=progress)}]
        for ratio in ratios:
            if challenge == "align-noise":
                noisy = align_noise(records, ratio, seed).records
                metrics = model.evaluate(noisy, batch_size=batch_size, progress=progress)
            else:
                metrics = _evaluate_aug_noise(model, records, crop_sets, folder, ratio, seed, batch_size, progress)
            results.append({"ratio": ratio, "metrics": metrics})
    return {"challenge": challenge, "seed": seed, "model": str(model.path), "data": str(data), "results": results}


def _evaluate_aug_noise(
    model: LoadedModel,
    records: list,
    crop_sets: list[CropSet],
    folder: Path,
    ratio: float,
    seed: int,
    batch_size: int,
    progress: bool,
) -> dict:
    """Every set of regions noised at ``ratio`` (the OD set with its own draw: ``seed + 1``), then scored."""
    settings: dict[str, Any] = {"region_key": crop_sets[0].key}
    for index, crop_set in enumerate(crop_sets):
        noise = aug_noise(read_crop_dict(crop_set.crop_dict), crop_keys(records, crop_set.key), ratio, seed + index)
        noisy_dict = folder / f"noisy_{crop_set.kind_key}_{ratio:g}" / crop_set.crop_dict.name
        noisy_dict.parent.mkdir(parents=True, exist_ok=True)
        # The crop names stay names of the set's folder (a replaced region is another image's crop).
        write_crop_dict(noise.crops, noisy_dict)
        settings.update(crop_set.settings(noisy_dict))
    predictor = Predictor(model.model, model.new_processor(**settings))
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
