"""Corpora of posts for ``mmie extract --input``: JSON lines or Parquet in, one result record per post out.

Both engines (in-process and Ray) read a corpus with :func:`read_posts` and turn its lines into result
records with :func:`extract_lines`, so they write the same records for the same input.

A corpus file is JSON lines (one post a line: ``{"id", "text", "images": [paths], "entities"?}``) or,
when its name ends in ``.parquet``, a Parquet table with those columns (a null is an absent field). Image
paths resolve against the file's folder. Errors name the file and the line (a Parquet file: the row,
counted from 1). Parquet goes through pyarrow, which the ``ray`` extra installs.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmie.errors import DataError, MmieError

if TYPE_CHECKING:
    from mmie.pipeline.extractor import Extractor

PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass
class CorpusLine:
    """A post of the input file: its line number and the post, or the error that line holds."""

    number: int
    post: dict | None = None
    error: DataError | None = None


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def pyarrow_modules() -> tuple[Any, Any]:
    """``pyarrow`` and ``pyarrow.parquet``, or an error saying how to install them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise MmieError("Parquet files need pyarrow: pip install 'mmie[ray]' (or pyarrow)") from None
    return pyarrow, pyarrow.parquet


def read_posts(path: Path, skip_invalid: bool) -> list[CorpusLine]:
    """The posts of a JSON-lines or Parquet file, each with its line (row) number. Ids must be unique
    non-empty strings (or integers); a post without one gets its line number. A bad line is an error
    naming FILE:LINE, or with ``skip_invalid`` a line holding its error."""
    rows = _parquet_rows(path) if is_parquet(path) else _json_rows(path)
    lines: list[CorpusLine] = []
    seen: dict[str, tuple[int, bool]] = {}  # id -> (its line, whether it is that line's number)
    for number, row in rows:
        try:
            post = row() if callable(row) else row
            checked, assigned = _check_post(post, path, number, seen)
        except DataError as error:
            if not skip_invalid:
                raise
            lines.append(CorpusLine(number, error=error))
            continue
        seen[checked["id"]] = (number, assigned)
        lines.append(CorpusLine(number, checked))
    return lines


def _json_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, a function parsing that line) for every non-blank line of a JSON-lines file."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read the posts: {error.strerror or error}", path=path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(f"not UTF-8 (byte {error.start})", path=path, line=line) from None
    for number, raw in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028 is no line end
        if raw.strip():
            yield number, lambda raw=raw, number=number: _parse_json(raw, path, number)


def _parse_json(raw: str, path: Path, number: int) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise DataError("nested too deeply", path=path, line=number, field="record") from None
    except ValueError as error:
        raise DataError(f"not valid JSON: {error}", path=path, line=number, field="record") from None


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(row number from 1, the row without its null fields) of a Parquet file."""
    pyarrow, parquet = pyarrow_modules()
    try:
        table = parquet.read_table(path)
    except (OSError, pyarrow.ArrowException) as error:  # ArrowInvalid: not Parquet
        raise DataError(f"cannot read the posts as Parquet: {error}", path=path) from None
    for number, row in enumerate(table.to_pylist(), start=1):
        yield number, {key: value for key, value in row.items() if value is not None}


def _check_post(post: Any, path: Path, number: int, seen: dict[str, tuple[int, bool]]) -> tuple[dict, bool]:
    """One line's post, and whether its id is its line number (it gave none)."""
    if not isinstance(post, dict):
        raise DataError('a post is {"id": ..., "text": "...", "images": [...]}', path=path, line=number)
    if not isinstance(post.get("text"), str):
        raise DataError("a post has a text (a string)", path=path, line=number, field="text")
    identifier = post.get("id", number)
    if isinstance(identifier, int) and not isinstance(identifier, bool):
        identifier = str(identifier)
    if not isinstance(identifier, str) or not identifier.strip():
        raise DataError(f"an id is a non-empty string, got {identifier!r:.40}", path=path, line=number, field="id")
    if identifier in seen:
        other, assigned = seen[identifier]
        if "id" not in post:
            message = f"no id, so it gets its line number, {identifier!r}, which is the id of line {other}"
        else:
            message = f"id {identifier!r} appears twice (also line {other}{', by its line number' if assigned else ''})"
        raise DataError(message, path=path, line=number, field="id")
    images = post.get("images") or []
    if not isinstance(images, list) or not all(isinstance(ref, str) for ref in images):
        raise DataError("images must be a list of file paths", path=path, line=number, field="images")
    return {**post, "id": identifier, "images": [str(path.parent / ref) for ref in images]}, "id" not in post


def extract_lines(
    extractor: Extractor,
    lines: list[CorpusLine],
    path: Path,
    batch_size: int,
    skip_invalid: bool,
    progress: bool = False,
) -> Generator[dict, None, None]:
    """The result record of each line, in order: the extraction, or an error record naming its line.

    A post the extractor finds invalid (an unreadable image, a lone surrogate ...) raises a DataError
    naming ``path``:line unless ``skip_invalid``; a post over a limit always gets an error record.
    """
    posts = (line.post for line in lines if line.post is not None)
    results = extractor.pipe(posts, batch_size=batch_size, progress=progress, errors="record")
    try:
        for line in lines:
            if line.post is None:  # a line that holds no post (--skip-invalid): its error, by line number
                assert line.error is not None
                yield {"id": None, "line": line.number, "error": error_fields(line.error)}
                continue
            result = next(results)
            if "error" in result:
                if result["error"]["kind"] == "invalid" and not skip_invalid:
                    problem = result["error"]
                    raise DataError(problem["message"], path=path, line=line.number, field=problem["field"])
                result = {"id": result["id"], "line": line.number, "error": result["error"]}
            yield result
    finally:
        close = getattr(results, "close", None)
        if close is not None:  # the progress bar ends before a message
            close()


def json_line(result: dict) -> str:
    return json.dumps(result, ensure_ascii=False, allow_nan=False) + "\n"


def error_fields(error: DataError) -> dict:
    return {"kind": "invalid", "field": error.field, "message": error.message}


# ------------------------------------------------------------------------------ Parquet results

# A result record's columns (docs/extraction.md has the JSON schema); an error record fills ``id``,
# ``line`` and ``error``, a result the others. A field a record lacks is null.
_INDEX = ("head", "tail")


def result_schema(pyarrow: Any) -> Any:
    """The Parquet schema of result records (``pyarrow`` passed in: it is imported only when needed)."""
    pa = pyarrow
    integer, number, text = pa.int64(), pa.float64(), pa.string()
    return pa.schema(
        [
            ("id", text),
            ("line", integer),
            ("text", text),
            ("tokens", pa.list_(pa.struct([("text", text), ("start", integer), ("end", integer)]))),
            (
                "entities",
                pa.list_(
                    pa.struct(
                        [
                            ("text", text),
                            ("type", text),
                            ("start", integer),
                            ("end", integer),
                            ("tokens", pa.list_(integer)),
                            ("score", number),
                            ("source", text),
                        ]
                    )
                ),
            ),
            (
                "relations",
                pa.list_(
                    pa.struct(
                        [*((name, integer) for name in _INDEX), ("relation", text), ("score", number)]
                        + [("relevance", pa.list_(number))]
                    )
                ),
            ),
            ("skipped_pairs", pa.list_(pa.struct([(name, integer) for name in _INDEX]))),
            (
                "images",
                pa.list_(
                    pa.struct([("index", integer), ("width", integer), ("height", integer), ("relevance", number)])
                ),
            ),
            ("error", pa.struct([("kind", text), ("field", text), ("message", text)])),
        ]
    )


def parquet_table(records: list[dict]) -> Any:
    """The records as a table of :func:`result_schema`; a field it has no column for is an error, so
    nothing a record holds is dropped silently."""
    pyarrow, _ = pyarrow_modules()
    schema = result_schema(pyarrow)
    columns = set(schema.names)
    for record in records:
        unknown = set(record) - columns
        if unknown:
            raise MmieError(f"result field(s) {sorted(unknown)} have no Parquet column; write JSON lines instead")
    return pyarrow.Table.from_pylist(records, schema=schema)


def read_results(path: Path) -> list[dict]:
    """The result records of a JSON-lines or Parquet results file, as dicts equal to the JSON records
    (a Parquet null of a field the record did not have is dropped: top-level fields but ``id``, and a
    relation's ``relevance``)."""
    if not is_parquet(path):
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    _, parquet = pyarrow_modules()
    records = []
    for row in parquet.read_table(path).to_pylist():
        record = {key: value for key, value in row.items() if value is not None or key == "id"}
        for relation in record.get("relations") or []:
            if relation.get("relevance") is None:
                relation.pop("relevance", None)
        records.append(record)
    return records
