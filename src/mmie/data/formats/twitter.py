"""Twitter-2015 / Twitter-2017 (the UMT release): CoNLL-style posts with an ``IMGID:`` line.

    IMGID:17_06_2932
    #	O
    NBA	B-ORG

One ``token<TAB>tag`` line per token, a blank line between posts. The record id is the IMGID and the
post's one image is ``IMGID + ".jpg"``. Twitter-2015 writes ``OTHER`` where Twitter-2017 writes
``MISC``; records hold ``MISC`` and the writer writes the Twitter-2017 spelling.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

from mmie.data.formats.base import Dataset, ReadState, RecordChecker, check_post_tags, read_lines
from mmie.data.schema import Post
from mmie.data.tags import irregular_positions
from mmie.errors import DataError

NAME = "twitter"
TASK = "ner"
RECORD_TYPE = Post
IMGID_PREFIX = "IMGID:"
IMAGE_SUFFIX = ".jpg"


def looks_like(first_line: str) -> bool:
    return first_line.startswith(IMGID_PREFIX)


@dataclass
class _Block:
    """The lines of one post as found in the file; ``image_id`` is None for lines before any IMGID."""

    image_id: str | None
    line: int
    rows: list[tuple[int, str | DataError]] = field(default_factory=list)


def _blocks(path: Path) -> Iterator[_Block]:
    block: _Block | None = None
    for number, text in read_lines(path):
        if isinstance(text, str) and text.startswith(IMGID_PREFIX):
            # A new IMGID line ends the previous post even without the blank line in between.
            if block is not None:
                yield block
            block = _Block(text[len(IMGID_PREFIX) :], number)
        elif isinstance(text, str) and not text.strip():
            if block is not None:
                yield block
            block = None
        elif block is None:
            # Token lines outside any post form one block of their own, reported (or skipped) once.
            block = _Block(None, number, [(number, text)])
        else:
            block.rows.append((number, text))
    if block is not None:
        yield block


def _post(block: _Block, state: ReadState) -> Post:
    check = RecordChecker(state, block.line)
    if block.image_id is None:
        raise check.fail("missing field", f"a post must start with an '{IMGID_PREFIX}<id>' line", "IMGID")
    image_id = block.image_id.strip()
    if not image_id:
        raise check.fail("empty field", "is empty", "IMGID")
    if not block.rows:
        raise check.fail("empty field", "the post has no token lines", "tokens")
    tokens, tags, lines = [], [], []
    for number, text in block.rows:
        if isinstance(text, DataError):
            raise text
        row = RecordChecker(state, number)
        parts = text.split("\t")
        if len(parts) != 2:
            raise row.fail("wrong layout", f"expected 'token<TAB>tag', found {len(parts)} tab-separated fields", "line")
        token, label = parts
        if token == "":
            raise row.fail("empty token", "the token is empty", "token")
        tokens.append(token)
        tags.append(row.tag(label.strip(), "tag"))
        lines.append(number)
    irregular = irregular_positions(tags)
    if irregular and state.strict_tags:
        first = irregular[0]
        raise RecordChecker(state, lines[first]).irregular_tag(tags, first, "tag")
    return Post(id=image_id, tokens=tokens, images=[image_id + IMAGE_SUFFIX], tags=tags)


def read(state: ReadState) -> Dataset:
    posts = [state.attempt(partial(_post, block, state)) for block in _blocks(state.path)]
    return state.dataset(NAME, TASK, [post for post in posts if post is not None])


def _check_writable(post: Post, path: Path) -> None:
    def fail(field_name: str, message: str) -> DataError:
        return DataError(f"post {post.id!r}: {message}", path=path, field=field_name)

    if not post.id or post.id != post.id.strip() or any(c in post.id for c in "\t\r\n"):
        raise fail("id", "an IMGID must be non-empty, without surrounding spaces, tabs or line breaks")
    if post.images != [post.id + IMAGE_SUFFIX]:
        raise fail("images", f"this format stores exactly one image named IMGID{IMAGE_SUFFIX}, found {post.images}")
    if not post.tokens:
        raise fail("tokens", "a post needs at least one token")
    if post.tags is None:
        raise fail("tags", "this format needs one tag per token")
    check_post_tags(post, path)
    for token in post.tokens:
        if token == "" or token.startswith(IMGID_PREFIX) or any(c in token for c in "\t\r\n"):
            raise fail("tokens", f"token {token!r} cannot be written in this format")


def write(posts: list[Post], handle: IO[str], path: Path) -> None:
    for post in posts:
        _check_writable(post, path)
        handle.write(f"{IMGID_PREFIX}{post.id}\n")
        for token, tag in zip(post.tokens, post.tags or []):
            handle.write(f"{token}\t{tag}\n")
        handle.write("\n")
