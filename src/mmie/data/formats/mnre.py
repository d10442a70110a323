"""MNRE (v2): one relation instance per line, written as a Python dict literal (not JSON).

    {'token': ['RT', '@WLWT', ':', 'Bill', 'Cosby', ...], 'h': {'name': 'Bill Cosby', 'pos': [3, 5]},
     't': {'name': 'Hollywood Walk of Fame', 'pos': [8, 12]}, 'img_id': 'twitter_stream_....jpg',
     'relation': '/per/misc/present_in'}

Lines are parsed with :func:`ast.literal_eval` (never ``eval``). The file has no ids: the record id
is the 0-based line index, which is also how the auxiliary crop dictionaries of this lineage are keyed,
so the writer does not store ids (nor urls) and a post holds exactly one image, ``img_id``.
"""

from __future__ import annotations

import ast
import warnings
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
from mmie.data.schema import Post, RelationInstance
from mmie.errors import DataError

NAME = "mnre"
TASK = "re"
RECORD_TYPE = RelationInstance
SIGNATURE = frozenset({"token", "h", "t", "img_id"})


def looks_like(record: dict) -> bool:
    return SIGNATURE <= record.keys()


# What ast.literal_eval raises on text that is not a literal (deep nesting and huge input included).
LITERAL_ERRORS = (ValueError, TypeError, SyntaxError, MemoryError, RecursionError)


def python_literal(text: str) -> object:
    """``ast.literal_eval`` of one line (never ``eval``); raises one of :data:`LITERAL_ERRORS`."""
    with warnings.catch_warnings():
        # A backslash such as '\o' in a string is a compiler warning, not a problem of the data.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=SyntaxWarning)
        return ast.literal_eval(text.strip())


def parse_literal(text: str, check: RecordChecker) -> dict:
    try:
        value = python_literal(text)
    except LITERAL_ERRORS as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise check.fail("invalid literal", f"not a Python literal ({reason})", "record") from None
    return check.mapping(value)


def _instance(record: dict, check: RecordChecker) -> RelationInstance:
    tokens = check.tokens(check.require(record, "token"), "token")
    head = check.span(check.require(record, "h"), tokens, "h")
    tail = check.span(check.require(record, "t"), tokens, "t")
    image = check.text(check.require(record, "img_id"), "img_id")
    if not image:
        raise check.fail("empty field", "is empty", "img_id")
    label = relation_label(check, check.require(record, "relation"))
    post = Post(id=str(check.line - 1), tokens=tokens, images=[image])
    return RelationInstance(post, head, tail, label)


def _to_dict(instance: RelationInstance) -> dict:
    tokens = instance.post.tokens
    return {
        "token": tokens,
        "h": span_entity(instance.head, tokens),
        "t": span_entity(instance.tail, tokens),
        "img_id": instance.post.images[0],
        "relation": instance.label,
    }


def read(state: ReadState) -> Dataset:
    return state.dataset(NAME, TASK, read_line_records(state, parse_literal, _instance))


def write(instances: list[RelationInstance], handle: IO[str], path: Path) -> None:
    for number, instance in enumerate(instances, start=1):
        if len(instance.post.images) != 1:
            raise DataError(
                f"instance {instance.id!r}: MNRE stores exactly one image (img_id), found {len(instance.post.images)}",
                path=path,
                line=number,
                field="img_id",
            )
    write_line_records(instances, handle, path, _to_dict, repr, _instance)
