"""What every format module shares: the Dataset, errors that name file/line/field, field checks.

A format module reads ``(line number, text)`` pairs from :func:`read_lines` and builds records with the
checks of :class:`RecordChecker`; every problem becomes one :class:`RecordError` (a
:class:`~mmie.errors.DataError`) that :class:`ReadState` either raises or, with ``skip_invalid``, keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from mmie.data.schema import MAX_IMAGES, Post, RelationInstance, Span
from mmie.data.tags import TAG_HELP, canonical_tag, irregular_positions
from mmie.errors import DataError

Record = TypeVar("Record", Post, RelationInstance)


class RecordError(DataError):
    """A :class:`DataError` that also carries a short ``reason`` (``"unknown tag"``) to group skipped records by."""

    def __init__(self, reason: str, message: str, **where: Any) -> None:
        self.reason = reason
        super().__init__(message, **where)


@dataclass
class Dataset:
    """The records of one file, plus what reading it found: skipped records and irregular ``I-`` tags."""

    path: Path
    format: str
    task: str  # "ner" (records are Post) or "re" (records are RelationInstance)
    records: list = field(default_factory=list)
    skipped: list[DataError] = field(default_factory=list)
    irregular_tags: int = 0

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator:
        return iter(self.records)


@dataclass
class ReadState:
    """Options and findings of one read: raise the first bad record, or keep going and list them."""

    path: Path
    strict_tags: bool = False
    skip_invalid: bool = False
    skipped: list[DataError] = field(default_factory=list)
    irregular_tags: int = 0

    def attempt(self, build: Callable[[], Record | None]) -> Record | None:
        """``build()``, or None when it raised a DataError that ``skip_invalid`` lets us keep."""
        try:
            record = build()
        except DataError as error:
            if not self.skip_invalid:
                raise
            self.skipped.append(error)
            return None
        # Counted here, once the record is accepted, so skipped records do not count.
        if isinstance(record, Post) and record.tags is not None:
            self.irregular_tags += len(irregular_positions(record.tags))
        return record

    def dataset(self, format_name: str, task: str, records: list) -> Dataset:
        return Dataset(self.path, format_name, task, records, self.skipped, self.irregular_tags)


def read_lines(path: Path) -> Iterator[tuple[int, str | DataError]]:
    """``(1-based line number, text without its line ending)``; a line that is not UTF-8 comes as a DataError.

    Lines are split on ``\\n`` only (not on the Unicode line separators ``str.splitlines`` knows), so a
    token holding U+2028 stays one token. A byte-order mark at the start is dropped.
    """
    try:
        handle = path.open("rb")
    except OSError as error:
        raise DataError(f"cannot open: {error.strerror or error}", path=path) from error
    with handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield (
                    number,
                    RecordError(
                        "not UTF-8", f"not valid UTF-8 (byte {error.start + 1} of the line)", path=path, line=number
                    ),
                )


def read_line_records(
    state: ReadState,
    parse: Callable[[str, RecordChecker], Any],
    build: Callable[[Any, RecordChecker], Record],
) -> list[Record]:
    """Records of a one-record-per-line file (blank lines are passed over; line numbers stay physical)."""
    records = []
    # Declared: mypy cannot infer loop variables that the function below takes as defaults.
    number: int
    text: str | DataError
    for number, text in read_lines(state.path):
        if isinstance(text, str) and not text.strip():
            continue

        def one(number: int = number, text: str | DataError = text) -> Record:
            if isinstance(text, DataError):
                raise text
            check = RecordChecker(state, number)
            return build(parse(text, check), check)

        record = state.attempt(one)
        if record is not None:
            records.append(record)
    return records


def write_line_records(
    records: list[Record],
    handle: IO[str],
    path: Path,
    to_dict: Callable[[Record], dict],
    dump: Callable[[dict], str],
    build: Callable[[Any, RecordChecker], Record],
) -> None:
    """Write one line per record, each first checked by the reader's own ``build``: what is written reads back."""
    state = ReadState(path)
    for number, record in enumerate(records, start=1):
        data = to_dict(record)
        build(data, RecordChecker(state, number))
        handle.write(dump(data) + "\n")


def check_readable(path: Path) -> None:
    if not path.exists():
        raise DataError("no such file", path=path)
    if not path.is_file():
        raise DataError("not a regular file", path=path)


class RecordChecker:
    """Field checks for the record on one line; each failure raises a RecordError naming file, line, field."""

    def __init__(self, state: ReadState, line: int) -> None:
        self.state = state
        self.line = line

    def fail(self, reason: str, message: str, field_name: str | None = None) -> RecordError:
        return RecordError(reason, message, path=self.state.path, line=self.line, field=field_name)

    def mapping(self, value: Any, what: str = "record") -> dict:
        if not isinstance(value, dict):
            raise self.fail("wrong type", f"expected an object (dict), found {type(value).__name__}", what)
        return value

    def require(self, record: dict, key: str, prefix: str = "") -> Any:
        if key not in record:
            raise self.fail("missing field", "missing field", prefix + key)
        return record[key]

    def text(self, value: Any, field_name: str, *, allow_none: bool = False) -> str | None:
        if value is None and allow_none:
            return None
        if not isinstance(value, str):
            raise self.fail("wrong type", f"expected a string, found {type(value).__name__}", field_name)
        return value

    def record_id(self, value: Any, field_name: str = "id") -> str:
        # Releases write ids as numbers (MNER-MI) or strings (MRE-MI, MNER-MI-Plus); records hold strings.
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.fail("wrong type", f"expected a string or integer, found {type(value).__name__}", field_name)
        if value == "":
            raise self.fail("empty field", "is empty", field_name)
        return str(value)

    def string_list(self, value: Any, field_name: str) -> list[str]:
        if not isinstance(value, list):
            raise self.fail("wrong type", f"expected a list of strings, found {type(value).__name__}", field_name)
        for position, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(
                    "wrong type",
                    f"expected a list of strings, found {type(item).__name__} at position {position}",
                    field_name,
                )
        return list(value)

    def tokens(self, value: Any, field_name: str) -> list[str]:
        tokens = self.string_list(value, field_name)
        if not tokens:
            raise self.fail("empty field", "a post needs at least one token", field_name)
        for position, token in enumerate(tokens):
            if token == "":
                raise self.fail("empty token", f"token {position} is an empty string", field_name)
        return tokens

    def images(self, value: Any, field_name: str) -> list[str]:
        images = self.string_list(value, field_name)
        if len(images) > MAX_IMAGES:
            raise self.fail("too many images", f"{len(images)} images, at most {MAX_IMAGES}", field_name)
        for position, image in enumerate(images):
            if image == "":
                raise self.fail("empty field", f"image {position} is an empty string", field_name)
        return images

    def tag(self, label: str, field_name: str, position: int | None = None) -> str:
        tag = canonical_tag(label)
        if tag is None:
            where = "" if position is None else f" at position {position}"
            raise self.fail("unknown tag", f"unknown tag {label!r}{where} ({TAG_HELP})", field_name)
        return tag

    def irregular_tag(self, tags: list[str], position: int, field_name: str) -> RecordError:
        previous = tags[position - 1] if position else "the start"
        return self.fail(
            "irregular tag",
            f"{tags[position]} at position {position} does not continue an entity (after {previous});"
            " it loads without strict_tags (read as conlleval does)",
            field_name,
        )

    def tags(self, value: Any, tokens: list[str], field_name: str) -> list[str]:
        """Canonical BIO tags, one per token; with ``strict_tags`` an irregular ``I-`` tag is an error."""
        labels = self.string_list(value, field_name)
        if len(labels) != len(tokens):
            raise self.fail("length mismatch", f"{len(labels)} tags for {len(tokens)} tokens", field_name)
        tags = [self.tag(label, field_name, position) for position, label in enumerate(labels)]
        irregular = irregular_positions(tags)
        if irregular and self.state.strict_tags:
            raise self.irregular_tag(tags, irregular[0], field_name)
        return tags

    def span(self, value: Any, tokens: list[str], field_name: str) -> Span:
        """A ``{"name": ..., "pos": [start, end)}`` entity; the name must equal the spanned tokens joined by spaces."""
        entity = self.mapping(value, field_name)
        name = self.text(self.require(entity, "name", field_name + "."), field_name + ".name")
        pos = self.require(entity, "pos", field_name + ".")
        if (
            not isinstance(pos, (list, tuple))
            or len(pos) != 2
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in pos)
        ):
            raise self.fail("wrong type", f"expected [start, end] integers, found {pos!r:.60}", field_name + ".pos")
        start, end = pos
        if start >= end:
            raise self.fail("empty span", f"span [{start}, {end}) is empty", field_name + ".pos")
        if start < 0 or end > len(tokens):
            raise self.fail(
                "span out of range", f"span [{start}, {end}) is outside the {len(tokens)} tokens", field_name + ".pos"
            )
        spanned = " ".join(tokens[start:end])
        if name != spanned:
            raise self.fail(
                "name mismatch", f"{name!r} does not equal the spanned tokens {spanned!r}", field_name + ".name"
            )
        return Span(start, end, name)


def relation_label(check: RecordChecker, value: Any) -> str | None:
    """A relation label; null means unlabelled (awaiting prediction), ``"None"`` is the no-relation class."""
    label = check.text(value, "relation", allow_none=True)
    if label == "":
        raise check.fail("empty field", "is empty", "relation")
    return label


def check_record_types(records: list, expected: type, format_name: str, path: Path) -> None:
    for index, record in enumerate(records):
        if not isinstance(record, expected):
            raise DataError(
                f"format {format_name} holds {expected.__name__} records; record {index} is {type(record).__name__}",
                path=path,
                field="records",
            )


def check_post_tags(post: Post, path: Path) -> None:
    """A writer's check that tags are canonical BIO, one per token (what the readers load back)."""
    if post.tags is None:
        return
    if len(post.tags) != len(post.tokens):
        raise DataError(
            f"post {post.id!r}: {len(post.tags)} tags for {len(post.tokens)} tokens", path=path, field="tags"
        )
    for tag in post.tags:
        if canonical_tag(tag) != tag:
            raise DataError(f"post {post.id!r}: {tag!r} is not a canonical BIO tag", path=path, field="tags")


def span_entity(span: Span, tokens: list[str]) -> dict:
    """The release's entity dict; a span without a name gets the spanned tokens, as the releases write it."""
    name = span.name if span.name is not None else " ".join(tokens[span.start : span.end])
    return {"name": name, "pos": [span.start, span.end]}
