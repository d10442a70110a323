"""MNER-MI and MNER-MI-Plus: JSON lines, one post per line, 1-4 images in order.

    {"id": 5302, "text": ["i", "have", ...], "images": ["5302_0.jpg", "5302_1.jpg"], "label": ["O", ..., "B-PER"], "url": "https://..."}

The record id is ``str(id)`` (MNER-MI writes numbers, MNER-MI-Plus also strings such as
``twitter2017-...``). ``MIS`` is read as ``MISC``. ``label: null`` marks an unlabelled post (tags None);
``url`` may be missing or null.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from mmie.data.formats.base import (
    Dataset,
    ReadState,
    RecordChecker,
    check_post_tags,
    read_line_records,
    write_line_records,
)
from mmie.data.formats.jsonl import dump_json, parse_json_object
from mmie.data.schema import Post

NAME = "mnermi"
TASK = "ner"
RECORD_TYPE = Post
SIGNATURE = frozenset({"text", "images"})


def looks_like(record: dict) -> bool:
    return SIGNATURE <= record.keys()


def _post(record: dict, check: RecordChecker) -> Post:
    record_id = check.record_id(check.require(record, "id"))
    tokens = check.tokens(check.require(record, "text"), "text")
    images = check.images(check.require(record, "images"), "images")
    label = check.require(record, "label")
    tags = None if label is None else check.tags(label, tokens, "label")
    url = check.text(record.get("url"), "url", allow_none=True)
    return Post(id=record_id, tokens=tokens, images=images, url=url, tags=tags)


def _json_id(record_id: str) -> Any:
    """Numeric ids are written as numbers, as MNER-MI does, when that reads back to the same string."""
    if 0 < len(record_id) <= 18 and record_id.isascii() and record_id.isdigit() and str(int(record_id)) == record_id:
        return int(record_id)
    return record_id


def _to_dict(post: Post) -> dict:
    return {"id": _json_id(post.id), "text": post.tokens, "images": post.images, "label": post.tags, "url": post.url}


def read(state: ReadState) -> Dataset:
    return state.dataset(NAME, TASK, read_line_records(state, parse_json_object, _post))


def write(posts: list[Post], handle: IO[str], path: Path) -> None:
    for post in posts:
        check_post_tags(post, path)  # a release spelling (B-OTHER) would read back as another tag
    write_line_records(posts, handle, path, _to_dict, dump_json, _post)
