"""Regions of a whole dataset, written in the MRE-MI layout (resumable):

    OUT/images_vg/<image stem>_<j>.png     the crops, j = 0 .. k-1, best region first
    OUT/images_vg.pth                      {image name: [crop file names]} (torch.save of plain str lists)
    OUT/regions.json                       which provider and settings made them

Every image the records name is processed once, with the queries of every record naming it (the
head and tail names of the relation instances, the tagged entities of NER posts; with ``words``
also the post's other content words), or with the same fixed ``queries`` for every image, one
region per query in their order (UMGF's entity-type crops: ``person``, ``location``, ...). The dictionary is the MRE-MI one: :func:`mmie.data.read_crop_dict`
reads it (``weights_only=True``), and :class:`mmie.regions.precomputed.PrecomputedRegions` serves it to
the models like a release's crops.

Resuming: images already in ``OUT/images_vg.pth`` are skipped. An image's crops are written before
the dictionary names them and the dictionary is replaced atomically (every ``save_every`` images, at
the end and when interrupted), so it never names a crop that is not on disk. ``regions.json`` must
match: a build with another provider, other settings or another k refuses to mix into the folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmie.data.formats.crops import read_crop_dict, write_crop_dict
from mmie.data.images import ImageDirs, ImagePolicy, resolve_image
from mmie.data.schema import Post, RelationInstance
from mmie.errors import ConfigError, DataError
from mmie.io import atomic_writer
from mmie.regions.base import ImageSource, RegionProvider
from mmie.regions.precomputed import CROP_DICT_NAME, CROP_DIR_NAME
from mmie.regions.queries import record_queries

META_NAME = "regions.json"
_SEPARATORS = re.compile(r"[\\/]+")
META_FORMAT = "mmie-regions"


@dataclass
class ImageJob:
    """One image to process: its reference, the record that first named it, the queries of every record naming it."""

    ref: str
    record_id: str
    queries: list[str] = field(default_factory=list)


@dataclass
class BuildSummary:
    out: Path
    images: int = 0  # distinct images the records name
    built: int = 0  # processed by this call
    skipped: int = 0  # already in the dictionary (resumed)
    crops: int = 0  # crops written by this call
    unusable: list[str] = field(default_factory=list)  # broken images given no regions (policy "blank")

    def line(self) -> str:
        broken = f", {len(self.unusable)} unusable images given no regions" if self.unusable else ""
        return (
            f"{self.images} images: {self.built} processed ({self.crops} crops), "
            f"{self.skipped} already done{broken}; dictionary {self.out / CROP_DICT_NAME}"
        )


def image_jobs(records: Sequence[Post | RelationInstance], words: bool = False) -> list[ImageJob]:
    """One job per distinct image reference, in first-seen order, with the union of the queries."""
    jobs: dict[str, ImageJob] = {}
    for record in records:
        post = record.post if isinstance(record, RelationInstance) else record
        queries = record_queries(record, words)
        for ref in post.images:
            job = jobs.setdefault(ref, ImageJob(ref, record.id))
            job.queries.extend(q for q in queries if q not in job.queries)
    return list(jobs.values())


def crop_name(ref: str, index: int) -> str:
    """``11573_0.jpg`` -> ``11573_0_<index>.png`` (folders in a reference become ``__``)."""
    stem = ref.rsplit(".", 1)[0] if "." in Path(ref).name else ref
    return f"{_SEPARATORS.sub('__', stem)}_{index}.png"


def _another_split(existing: dict[str, Any], meta: dict[str, Any]) -> bool:
    """The same precomputed settings with another dictionary: the next split of a release that ships one
    dictionary per split (MNRE's, keyed by line index); its images are other images, nothing is mixed."""
    if existing.get("provider") != "precomputed" or meta.get("provider") != "precomputed":
        return False
    return {k: v for k, v in existing.items() if k != "crop_dict"} == {
        k: v for k, v in meta.items() if k != "crop_dict"
    }


def _check_meta(out: Path, meta: dict[str, Any]) -> None:
    path = out / META_NAME
    if path.is_file():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise DataError("not valid JSON; remove the folder or choose another --out", path=path) from None
        if existing != meta and not _another_split(existing, meta):
            raise ConfigError(
                f"{out}: holds regions built with other settings ({path}: {json.dumps(existing, sort_keys=True)}); "
                f"resuming would mix them: choose another --out"
            )
    elif (out / CROP_DICT_NAME).exists():
        raise ConfigError(
            f"{out}: has an {CROP_DICT_NAME} that mmie did not build (no {META_NAME}); "
            f"refusing to add to a release's crops: choose another --out"
        )
    else:
        with atomic_writer(path) as handle:
            handle.write(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def build_regions(
    records: Sequence[Post | RelationInstance],
    image_dir: ImageDirs,
    provider: RegionProvider,
    out: str | Path,
    k: int,
    *,
    words: bool = False,
    queries: Sequence[str] | None = None,
    policy: ImagePolicy = "error",
    progress: bool = True,
    save_every: int = 100,
) -> BuildSummary:
    """Find the top-``k`` regions of every image the records name and write them under ``out``; with
    ``queries``, one region per query instead (crop j answers query j; ``k`` must be their number)."""
    from tqdm.auto import tqdm

    if k < 1:
        raise ConfigError(f"top_k must be at least 1, got {k}")
    if queries is not None:
        queries = [query.strip() for query in queries]
        if not queries or not all(queries):
            raise ConfigError("queries: give at least one non-empty query (e.g. person,location)")
        if k != len(queries):
            raise ConfigError(f"top_k: {k}, but {len(queries)} fixed queries give one region each")
    out = Path(out)
    crop_dir = out / CROP_DIR_NAME
    crop_dir.mkdir(parents=True, exist_ok=True)
    meta = {"format": META_FORMAT, "top_k": k, "words": words, **provider.describe()}
    if queries is not None:
        meta["queries"] = list(queries)
    _check_meta(out, meta)
    dictionary_path = out / CROP_DICT_NAME
    crops = read_crop_dict(dictionary_path) if dictionary_path.exists() else {}
    jobs = image_jobs(records, words)
    summary = BuildSummary(out, images=len(jobs))
    todo = [job for job in jobs if job.ref not in crops]
    summary.skipped = len(jobs) - len(todo)
    unsaved = 0
    try:
        for job in tqdm(todo, unit="img", desc=f"regions ({provider.name})", disable=not progress, dynamic_ncols=True):
            source = ImageSource(job.ref, resolve_image(job.ref, image_dir, job.record_id), job.record_id, "error")
            try:
                if queries is not None:
                    regions = provider.find_per_query(source, queries)
                else:
                    regions = provider.find(source, job.queries, k)
                pictures = [region.image(source) for region in regions]
            except DataError:
                if policy == "error":
                    raise
                summary.unusable.append(job.ref)
                pictures = []
            names = []
            for index, picture in enumerate(pictures):
                names.append(crop_name(job.ref, index))
                with atomic_writer(crop_dir / names[-1], binary=True) as handle:
                    picture.save(handle, format="PNG")
            crops[job.ref] = names
            summary.built += 1
            summary.crops += len(names)
            unsaved += 1
            if unsaved >= save_every:
                write_crop_dict(crops, dictionary_path)
                unsaved = 0
    finally:
        if unsaved or not dictionary_path.exists():
            write_crop_dict(crops, dictionary_path)
    return summary


PROVIDERS = ("grid", "detector", "precomputed")


def create_provider(
    name: str,
    *,
    encoder: str | None = None,
    detector: str | None = None,
    crop_dict: str | Path | None = None,
    crop_dir: str | Path | None = None,
    key: str = "image",
    device: str | None = None,
    cache_dir: str | Path | None = None,
    merge: float = 0.75,
    threshold: float = 0.0,
    iou: float = 0.5,
) -> RegionProvider:
    """A provider by name: ``grid`` (offline: ``encoder``, default EfficientNet-Lite0; frozen features
    through the cache in ``cache_dir`` when given), ``detector`` (``detector``: a zero-shot detection
    model name or folder) or ``precomputed`` (``crop_dict`` and ``crop_dir``, looked up by ``key``)."""
    if name == "grid":
        from mmie.encoders.cache import FeatureCache
        from mmie.encoders.vision import DEFAULT_VISION_ENCODER, load_vision_encoder
        from mmie.regions.grid import GridSaliencyRegions

        vision = load_vision_encoder(encoder or DEFAULT_VISION_ENCODER, frozen=True, device=device)
        cache = FeatureCache(cache_dir, vision) if cache_dir is not None else None
        return GridSaliencyRegions(vision, cache=cache, merge=merge)
    if name == "detector":
        from mmie.regions.detector import DetectorRegions

        if not detector:
            raise ConfigError("the detector provider needs a detector: a model name or folder (--detector)")
        return DetectorRegions(detector, device=device, threshold=threshold, iou=iou)
    if name == "precomputed":
        from mmie.regions.precomputed import PrecomputedRegions

        if crop_dict is None:
            raise ConfigError("the precomputed provider needs a crop dictionary (--crops images_vg.pth)")
        return PrecomputedRegions(crop_dict, crop_dir, key=key)  # type: ignore[arg-type]
    raise ConfigError(f"unknown region provider {name!r} (choose from {', '.join(PROVIDERS)})")
