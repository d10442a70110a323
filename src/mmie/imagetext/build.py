"""``mmie imagetext build``: the image text of every image a dataset names, in the precomputed format.

    provider = HubImageText("facebook/detr-resnet-50", "object-detection", cache_dir="cache/imagetext")
    report = build_image_text(["data/train.txt", "data/dev.txt"], "data/images", provider, "data/tags.jsonl")

Each image is read once (images shared by several records are looked up once), the provider's own
cache keeps what was already made, and the output file is written atomically at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mmie.data import read_dataset
from mmie.data.images import resolve_image
from mmie.data.schema import RelationInstance
from mmie.imagetext.base import ImageText, ImageTextProvider
from mmie.imagetext.precomputed import write_image_text


def dataset_images(paths: Sequence[str | Path], data_format: str | None = None) -> list[tuple[str, str]]:
    """``(image name, record id)`` of every image the files name, first appearance first, no repeats."""
    seen: dict[str, str] = {}
    for path in paths:
        for record in read_dataset(path, data_format).records:
            post = record.post if isinstance(record, RelationInstance) else record
            for ref in post.images:
                seen.setdefault(ref, post.id)
    return list(seen.items())


def build_image_text(
    paths: Sequence[str | Path],
    image_dir: str | Path,
    provider: ImageTextProvider,
    out: str | Path,
    *,
    data_format: str | None = None,
) -> list[ImageText]:
    """Run ``provider`` over the images of ``paths`` (found in ``image_dir``) and write ``out``."""
    entries = []
    for ref, record_id in dataset_images(paths, data_format):
        entries.append(provider.text(ref, resolve_image(ref, image_dir, record_id)))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_image_text(entries, out)
    return entries
