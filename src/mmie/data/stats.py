"""Dataset statistics: what `mmie data stats` prints, as a JSON-serialisable dict for Python users too.

NER files count posts, tokens and entities by type (entities are read from the BIO tags the conlleval
way, as the metrics read them). RE files count instances, distinct posts (by their token sequence:
one post carries many instances), and relations by label. Both report the images-per-post histogram,
irregular ``I-`` tags, and the records skipped with ``skip_invalid`` grouped by reason.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from mmie.data.formats.base import Dataset
from mmie.data.images import ImageDirs, check_images
from mmie.data.schema import ENTITY_TYPES, Post
from mmie.data.tags import bio_entities
from mmie.errors import DataError


def skip_reason(error: DataError) -> str:
    """The short reason a record was skipped for (``"unknown tag"``), to group skipped records by."""
    return getattr(error, "reason", None) or error.field or "invalid"


def skipped_by_reason(skipped: list[DataError]) -> dict[str, int]:
    return dict(Counter(skip_reason(error) for error in skipped).most_common())


def _histogram(counts: Counter) -> dict[str, int]:
    return {str(key): counts[key] for key in sorted(counts)}


def _ner_stats(posts: list[Post]) -> dict:
    entities: Counter = Counter({kind: 0 for kind in ENTITY_TYPES})
    for post in posts:
        entities.update(kind for kind, _, _ in bio_entities(post.tags or []))
    return {
        "posts": len(posts),
        "tokens": sum(len(post.tokens) for post in posts),
        "unlabelled_posts": sum(post.tags is None for post in posts),
        "entities": dict(entities),
        "entities_total": sum(entities.values()),
        "images_per_post": _histogram(Counter(post.n_images for post in posts)),
    }


def _re_stats(instances: list) -> dict:
    # One post carries several instances (one per entity pair); posts are told apart by their tokens.
    distinct_posts = {tuple(instance.post.tokens) for instance in instances}
    relations = Counter(instance.label for instance in instances if instance.label is not None)
    return {
        "instances": len(instances),
        "posts": len(distinct_posts),
        "tokens": sum(len(tokens) for tokens in distinct_posts),
        "unlabelled_instances": sum(instance.label is None for instance in instances),
        "relations": dict(relations.most_common()),
        "relation_labels": len(relations),
        "overlapping_pairs": sum(instance.head.overlaps(instance.tail) for instance in instances),
        "images_per_instance": _histogram(Counter(instance.post.n_images for instance in instances)),
    }


def dataset_stats(dataset: Dataset, image_dir: ImageDirs | None = None) -> dict:
    """Counts for one dataset; with ``image_dir``, also decode every image and report the affected ones."""
    stats: dict[str, Any] = {"path": str(dataset.path), "format": dataset.format, "task": dataset.task}
    stats.update(_ner_stats(dataset.records) if dataset.task == "ner" else _re_stats(dataset.records))
    stats["irregular_tags"] = dataset.irregular_tags
    stats["skipped"] = len(dataset.skipped)
    stats["skipped_by_reason"] = skipped_by_reason(dataset.skipped)
    if image_dir is not None:
        posts = dataset.records if dataset.task == "ner" else [instance.post for instance in dataset.records]
        stats["images"] = check_images(posts, image_dir).to_dict()
    return stats


def render_stats(stats: dict) -> str:
    """A plain-text table of :func:`dataset_stats` for people."""
    rows: list[tuple[str, str]] = [("format", f"{stats['format']} ({stats['task'].upper()})")]
    if stats["task"] == "ner":
        rows += [("posts", f"{stats['posts']:,}"), ("tokens", f"{stats['tokens']:,}")]
        rows += [("entities", f"{stats['entities_total']:,}")]
        rows += [(f"  {kind}", f"{count:,}") for kind, count in stats["entities"].items()]
        histogram = stats["images_per_post"]
        histogram_name = "images per post"
    else:
        rows += [("instances", f"{stats['instances']:,}"), ("posts (distinct texts)", f"{stats['posts']:,}")]
        rows += [("tokens", f"{stats['tokens']:,}"), ("relation labels", str(stats["relation_labels"]))]
        rows += [(f"  {label}", f"{count:,}") for label, count in stats["relations"].items()]
        rows += [("overlapping head/tail", f"{stats['overlapping_pairs']:,}")]
        histogram = stats["images_per_instance"]
        histogram_name = "images per instance"
    rows += [(histogram_name, "")] + [(f"  {images}", f"{count:,}") for images, count in histogram.items()]
    rows += [("irregular I- tags", f"{stats['irregular_tags']:,}"), ("skipped records", f"{stats['skipped']:,}")]
    rows += [(f"  {reason}", f"{count:,}") for reason, count in stats["skipped_by_reason"].items()]
    if "images" in stats:
        images = stats["images"]
        rows += [("images loaded", f"{images['loaded']:,}"), ("images affected", f"{images['affected']:,}")]
        rows += [(f"  {reason}", f"{count:,}") for reason, count in images["by_reason"].items()]
    width = max(len(name) for name, _ in rows)
    lines = [str(Path(stats["path"]))] + [f"  {name:<{width}}  {value}".rstrip() for name, value in rows]
    return "\n".join(lines)
