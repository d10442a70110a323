"""Noise challenge sets for any RE (or MNER) model (FocalMRE paper, sec. 4.1 "Challenge Set", Table 2).

* **Align-Noise** -- image-text misalignment: ``ratio`` of the records (those with images) get the
  images of another record of the set. The chosen records pass their image lists round in one
  random cycle, so none keeps its own (unless two records share the same images, as the relation
  instances of one MNRE post do; such a record is counted in ``unchanged``).
* **Aug-Noise** -- errors of the grounding / detection models: ``ratio`` of all regions the records'
  images have in a crop dictionary (MRE-MI ``images_vg.pth``) are picked; each is, with equal
  chance, *replaced* by a random region of another image (a false positive) or *deleted* (a false
  negative). The records themselves do not change: the noise is in the dictionary.

Both are deterministic: the same records (dictionary), ratio and seed give the same set on every
machine (``random.Random(f"{challenge}:{seed}:{ratio}")``). They are written as ordinary dataset files
(:func:`write_align_noise`: one file in the input's format; :func:`write_aug_noise`: a folder in the
MRE-MI layout, the records file + ``images_vg.pth`` + ``images_vg/``, crops hard-linked) that every
reader, ``mmie evaluate`` and ``mmie train`` take as they are. The sweep over the paper's ratios is
:mod:`mmie.inference.challenges` (``mmie evaluate --challenge``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

from mmie.data.formats import read_dataset, write_dataset
from mmie.data.formats.crops import read_crop_dict, write_crop_dict
from mmie.data.images import resolve_image
from mmie.data.schema import Post, RelationInstance
from mmie.errors import ConfigError
from mmie.io import atomic_writer

CHALLENGES = ("align-noise", "aug-noise")
# The ratios of the paper's Table 2.
PAPER_RATIOS = {"align-noise": (0.05, 0.1, 0.2, 0.5, 1.0), "aug-noise": (0.1, 0.3, 0.5, 1.0)}
DEFAULT_SEED = 13
CROP_DICT_NAME = "images_vg.pth"
CROP_DIR_NAME = "images_vg"

Record = TypeVar("Record", Post, RelationInstance)


def _check_ratio(ratio: float) -> None:
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"ratio: must be in [0, 1], got {ratio}")


def _rng(challenge: str, seed: int, ratio: float) -> random.Random:
    return random.Random(f"{challenge}:{seed}:{ratio:g}")


def _post(record: Post | RelationInstance) -> Post:
    return record.post if isinstance(record, RelationInstance) else record


# Overloads rather than the Record type variable: mypy narrows a constrained type variable with
# isinstance to an impossible Post-and-RelationInstance subclass and then rejects replace(post=...).
@overload
def _with_images(record: Post, images: list[str]) -> Post: ...
@overload
def _with_images(record: RelationInstance, images: list[str]) -> RelationInstance: ...
def _with_images(record: Post | RelationInstance, images: list[str]) -> Post | RelationInstance:
    if isinstance(record, RelationInstance):
        return dataclasses.replace(record, post=dataclasses.replace(record.post, images=list(images)))
    return dataclasses.replace(record, images=list(images))


@dataclass
class AlignNoise:
    records: list  # the challenge set, in the input order
    shuffled: list[int] = field(default_factory=list)  # indices of the records given other images
    unchanged: int = 0  # chosen records whose donor had the very same images


def align_noise(records: Sequence[Record], ratio: float, seed: int = DEFAULT_SEED) -> AlignNoise:
    """``round(ratio * n)`` of the ``n`` records with images get another record's images (one random cycle)."""
    _check_ratio(ratio)
    with_images = [i for i, record in enumerate(records) if _post(record).images]
    count = round(ratio * len(with_images))
    if ratio > 0 and len(with_images) >= 2:
        count = max(1, count)
    rng = _rng("align-noise", seed, ratio)
    chosen = rng.sample(with_images, count) if count else []
    donors = chosen[1:] + chosen[:1]  # chosen[i] receives the images of chosen[i + 1]: a single cycle
    if len(chosen) == 1:  # a cycle of one: the donor is any other record with images
        donors = [rng.choice([i for i in with_images if i != chosen[0]])]
    result = list(records)
    unchanged = 0
    for receiver, donor in zip(chosen, donors):
        images = _post(records[donor]).images
        unchanged += list(images) == list(_post(records[receiver]).images)
        result[receiver] = _with_images(records[receiver], images)
    return AlignNoise(result, sorted(chosen), unchanged)


@dataclass
class AugNoise:
    crops: dict[Any, list[str]]  # the noisy dictionary (keys the records do not use are kept as they were)
    regions: int = 0  # regions of the records' images in the original dictionary
    replaced: int = 0
    deleted: int = 0


def crop_keys(records: Sequence[Post | RelationInstance], key: str = "image") -> list[Any]:
    """The dictionary keys of the records, first-seen order: their image names, or their ids (MNRE line index)."""
    if key not in ("image", "record"):
        raise ConfigError(f"key: must be 'image' or 'record', got {key!r}")
    keys: dict[Any, None] = {}
    for record in records:
        if key == "record":
            keys[record.id] = None
        else:
            keys.update((ref, None) for ref in _post(record).images)
    return list(keys)


def aug_noise(crops: dict[Any, list[str]], keys: Sequence[Any], ratio: float, seed: int = DEFAULT_SEED) -> AugNoise:
    """Replace or delete ``round(ratio * n)`` of the ``n`` regions that ``crops`` lists under ``keys``."""
    _check_ratio(ratio)
    keys = [key for key in dict.fromkeys(keys) if crops.get(key)]
    entries = [(key, j) for key in keys for j in range(len(crops[key]))]
    rng = _rng("aug-noise", seed, ratio)
    chosen = rng.sample(entries, round(ratio * len(entries))) if entries else []
    replaced: dict[tuple[Any, int], str] = {}
    deleted: set[tuple[Any, int]] = set()
    for entry in chosen:
        others = [other for other in entries if other[0] != entry[0]]  # a region of ANOTHER image: irrelevant
        if others and rng.random() < 0.5:
            other_key, other_j = rng.choice(others)
            replaced[entry] = crops[other_key][other_j]
        else:
            deleted.add(entry)
    noisy = {key: list(names) for key, names in crops.items()}
    for key in keys:
        noisy[key] = [replaced.get((key, j), name) for j, name in enumerate(crops[key]) if (key, j) not in deleted]
    return AugNoise(noisy, len(entries), len(replaced), len(deleted))


# ---------------------------------------------------------------------------------- writing


def _write_note(path: Path, note: dict[str, Any]) -> None:
    with atomic_writer(path) as handle:
        handle.write(json.dumps(note, indent=2, sort_keys=True) + "\n")


def write_align_noise(
    source: str | Path, out: str | Path, ratio: float, seed: int = DEFAULT_SEED, data_format: str | None = None
) -> AlignNoise:
    """Read ``source``, write its Align-Noise set to ``out`` in the same format (plus ``out``.challenge.json)."""
    dataset = read_dataset(source, format=data_format)
    noise = align_noise(dataset.records, ratio, seed)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_dataset(noise.records, out, dataset.format)
    note = {
        "challenge": "align-noise",
        "source": str(source),
        "ratio": ratio,
        "seed": seed,
        "records": len(noise.records),
        "shuffled": len(noise.shuffled),
        "unchanged": noise.unchanged,
    }
    _write_note(out.with_name(out.name + ".challenge.json"), note)
    return noise


def default_crop_dict(source: str | Path) -> Path:
    """The MRE-MI layout: ``images_vg.pth`` beside the split file."""
    return Path(source).parent / CROP_DICT_NAME


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)  # costs no space; a copy where the file system has no hard links
    except OSError:
        shutil.copyfile(source, target)


def write_aug_noise(
    source: str | Path,
    out_dir: str | Path,
    ratio: float,
    seed: int = DEFAULT_SEED,
    *,
    crop_dict: str | Path | None = None,
    crop_dir: str | Path | None = None,
    key: str = "image",
    data_format: str | None = None,
) -> AugNoise:
    """Write ``out_dir/<source name>`` (records as they are), a noisy ``images_vg.pth`` and its ``images_vg/``."""
    dataset = read_dataset(source, format=data_format)
    crop_dict = Path(crop_dict) if crop_dict is not None else default_crop_dict(source)
    if not crop_dict.is_file():
        raise ConfigError(f"{crop_dict}: no crop dictionary (aug-noise acts on one; name it with --crops)")
    crop_dir = Path(crop_dir) if crop_dir is not None else crop_dict.with_name(CROP_DIR_NAME)
    noise = aug_noise(read_crop_dict(crop_dict), crop_keys(dataset.records, key), ratio, seed)
    out_dir = Path(out_dir)
    if out_dir.resolve() == crop_dict.parent.resolve():
        raise ConfigError(f"{out_dir}: is the source folder; write the challenge set elsewhere")
    target_crops = out_dir / CROP_DIR_NAME
    target_crops.mkdir(parents=True, exist_ok=True)
    used = {name for names in noise.crops.values() for name in names}
    for name in sorted(used):
        path = resolve_image(name, crop_dir)  # refuses names that leave the crop folder
        if path.is_file():
            _link_or_copy(path, target_crops / name)
    write_crop_dict(noise.crops, out_dir / CROP_DICT_NAME)
    write_dataset(dataset.records, out_dir / Path(source).name, dataset.format)
    note = {
        "challenge": "aug-noise",
        "source": str(source),
        "crop_dict": str(crop_dict),
        "key": key,
        "ratio": ratio,
        "seed": seed,
        "regions": noise.regions,
        "replaced": noise.replaced,
        "deleted": noise.deleted,
    }
    _write_note(out_dir / "challenge.json", note)
    return noise
