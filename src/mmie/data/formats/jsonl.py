"""Parsing and dumping for the JSON-lines formats (MNER-MI, MRE-MI)."""

from __future__ import annotations

import json

from mmie.data.formats.base import RecordChecker


def parse_json_object(text: str, check: RecordChecker) -> dict:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise check.fail("invalid JSON", f"invalid JSON ({_first_line(error)})", "record") from None
    return check.mapping(value)


def dump_json(data: dict) -> str:
    line = json.dumps(data, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate cannot be written as UTF-8; escaped, it still reads back to the same string.
        line = json.dumps(data, ensure_ascii=True)
    return line


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
