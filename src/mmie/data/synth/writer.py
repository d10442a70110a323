"""Writing a synthetic dataset to disk in the MNER-MI or MRE-MI layout.

DIR/train.txt, val.txt, test.txt    records, through the shared writers (mnermi / mremi)
DIR/images/<id>_<k>.jpg             1..4 images per post
DIR/images_vg/<id>_<k>_<j>.jpg      MRE only: up to 2 grounding crops per image
DIR/images_vg.pth                   MRE only: image name -> crop file names
DIR/synth_meta.jsonl                ground truth about the cues and the deciding setting (never read by the readers)
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mmie.data import write_crop_dict, write_dataset
from mmie.data.synth.common import SynthPost, split_sizes
from mmie.data.synth.images import IMAGE_SIZE, ImagePlan, RenderedImage, grounding_boxes, render_image
from mmie.data.synth.mner import plan_mner
from mmie.data.synth.mre import plan_mre
from mmie.data.synth.settings import SynthMix, deciding_setting
from mmie.errors import ConfigError
from mmie.io import atomic_writer

TASKS = {"mner": (plan_mner, "mnermi"), "mre": (plan_mre, "mremi")}
DEFAULT_POSTS = 600
DEFAULT_SEED = 13
JPEG_QUALITY = 90
CROPS_PER_IMAGE = 2
META_FILE = "synth_meta.jsonl"
_OUTPUTS = ("train.txt", "val.txt", "test.txt", "images", "images_vg", "images_vg.pth", META_FILE)


@dataclass
class SynthSummary:
    """What :func:`generate_dataset` wrote."""

    task: str
    out: Path
    split_sizes: dict[str, int]
    images: int
    crops: int
    ambiguous: int
    labels: dict[str, int] = field(default_factory=dict)
    settings: dict[str, int] = field(default_factory=dict)  # posts by deciding setting


def plan_posts(task: str, posts: int, seed: int, mix: SynthMix | None = None) -> list[SynthPost]:
    """The planned posts (records, image plans, cue ground truth) without rendering anything.

    ``mix`` gives the shares of the deciding settings (default: ``SynthMix()``, the sample of
    before the mechanism settings, byte for byte)."""
    if task not in TASKS:
        raise ConfigError(f"task: unknown synthetic task {task!r}; choose one of {sorted(TASKS)}")
    if posts < 3:
        raise ConfigError(f"posts: need at least 3 posts (one per split), got {posts}")
    return TASKS[task][0](posts, seed, mix)


def generate_dataset(
    task: str,
    out: str | Path,
    posts: int = DEFAULT_POSTS,
    seed: int = DEFAULT_SEED,
    *,
    overwrite: bool = False,
    image_size: int = IMAGE_SIZE,
    mix: SynthMix | None = None,
) -> SynthSummary:
    """Generate a synthetic ``task`` ("mner" or "mre") dataset of ``posts`` posts into ``out``.

    The same ``(task, posts, seed, mix)`` gives byte-identical files. An existing non-empty ``out`` is
    an error unless ``overwrite`` is set; then only the files and folders this generator writes are
    replaced. ``mix`` (:class:`~mmie.data.synth.settings.SynthMix`, e.g. ``PRESETS["mechanisms"]``)
    sets the shares of the deciding settings; see docs/synthetic.md.
    """
    planned = plan_posts(task, posts, seed, mix)
    out = Path(out)
    _prepare(out, overwrite)
    image_dir = out / "images"
    image_dir.mkdir(parents=True)
    crops: dict[str, list[str]] = {}
    if task == "mre":
        (out / "images_vg").mkdir()

    n_images = 0
    for post in planned:
        for plan in post.images:
            rendered = render_image(plan, image_size)
            rendered.image.save(image_dir / plan.name, "JPEG", quality=JPEG_QUALITY)
            n_images += 1
            if task == "mre":
                crops[plan.name] = _write_crops(rendered, plan, out / "images_vg", image_size)

    sizes = split_sizes(posts)
    start = 0
    for split, size in sizes.items():
        chunk = planned[start : start + size]
        write_dataset([post.record for post in chunk], out / f"{split}.txt", TASKS[task][1])
        for post in chunk:
            post.meta["split"] = split
        start += size
    if task == "mre":
        write_crop_dict(crops, out / "images_vg.pth")
    _write_meta(planned, out / META_FILE)
    return SynthSummary(
        task=task,
        out=out,
        split_sizes=sizes,
        images=n_images,
        crops=sum(len(names) for names in crops.values()),
        ambiguous=sum(post.meta["ambiguous"] for post in planned),
        labels=dict(sorted(Counter(post.meta["label"] for post in planned).items())),
        settings=dict(Counter(deciding_setting(post.meta) for post in planned)),
    )


def _write_crops(rendered: RenderedImage, plan: ImagePlan, crop_dir: Path, image_size: int) -> list[str]:
    stem = plan.name.rsplit(".", 1)[0]
    names = []
    # The crop layout has its own stream (derived from the image seed) so crops never shift pixels.
    for j, box in enumerate(grounding_boxes(rendered, seed=plan.seed ^ 0x5EED, k=CROPS_PER_IMAGE, size=image_size)):
        name = f"{stem}_{j}.jpg"
        rendered.image.crop(box).save(crop_dir / name, "JPEG", quality=JPEG_QUALITY)
        names.append(name)
    return names


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {out} exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"out: {out} is not empty; pass --overwrite to replace a synthetic dataset there")
        for name in _OUTPUTS:  # only what this generator writes: never a user's other files
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _write_meta(planned: list[SynthPost], path: Path) -> None:
    with atomic_writer(path) as stream:
        for post in planned:
            stream.write(json.dumps(post.meta, ensure_ascii=False) + "\n")
