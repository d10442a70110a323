"""MRE-MI: JSON lines, one relation instance per line, 1-4 images in order.

    {"id": "11573", "tokens": ["Jason", "Isaacs", ...], "h": {"name": "Jason Isaacs", "pos": [0, 2]},
     "t": {"name": "Emma Hewitt", "pos": [3, 5]}, "images": ["11573_0.jpg"], "relation": "/per/per/couple"}

Spans are ``[start, end)`` and each ``name`` must equal the spanned tokens joined by spaces.
``relation: null`` marks an unlabelled instance (label None); ``"None"`` is the no-relation class.
The visual-grounding crops (``images_vg.pth``) are read by :mod:`mmie.data.formats.crops`.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from mmie.data.formats.base import (
    Dataset,
    ReadState,
    RecordChecker,
    read_line_records,
    relation_label,
    span_entity,
    write_line_records,
)
from mmie.data.formats.jsonl import dump_json, parse_json_object
from mmie.data.schema import Post, RelationInstance

NAME = "mremi"
TASK = "re"
RECORD_TYPE = RelationInstance
SIGNATURE = frozenset({"tokens", "h", "t"})


def looks_like(record: dict) -> bool:
    return SIGNATURE <= record.keys()


def _instance(record: dict, check: RecordChecker) -> RelationInstance:
    record_id = check.record_id(check.require(record, "id"))
    tokens = check.tokens(check.require(record, "tokens"), "tokens")
    head = check.span(check.require(record, "h"), tokens, "h")
    tail = check.span(check.require(record, "t"), tokens, "t")
    images = check.images(check.require(record, "images"), "images")
    label = relation_label(check, check.require(record, "relation"))
    return RelationInstance(Post(id=record_id, tokens=tokens, images=images), head, tail, label)


def _to_dict(instance: RelationInstance) -> dict:
    tokens = instance.post.tokens
    return {
        "id": instance.post.id,
        "tokens": tokens,
        "h": span_entity(instance.head, tokens),
        "t": span_entity(instance.tail, tokens),
        "images": instance.post.images,
        "relation": instance.label,
    }


def read(state: ReadState) -> Dataset:
    return state.dataset(NAME, TASK, read_line_records(state, parse_json_object, _instance))


def write(instances: list[RelationInstance], handle: IO[str], path: Path) -> None:
    write_line_records(instances, handle, path, _to_dict, dump_json, _instance)
