"""The format registry: read and write any supported file, and tell formats apart by their content.

==========  ====  ==============================================================
name        task  file
==========  ====  ==============================================================
twitter     ner   Twitter-2015/2017 CoNLL with ``IMGID:`` lines
mnermi      ner   MNER-MI / MNER-MI-Plus JSON lines
mnre        re    MNRE Python dict literals, one per line
mremi       re    MRE-MI JSON lines
==========  ====  ==============================================================

Detection never guesses: a file whose first records fit no format, or more than one, is an error
that asks for ``format=``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from mmie.data.formats import mnermi, mnre, mremi, twitter
from mmie.data.formats.base import Dataset, ReadState, check_readable, check_record_types, read_lines
from mmie.errors import DataError
from mmie.io import atomic_writer

FORMATS: dict[str, ModuleType] = {module.NAME: module for module in (twitter, mnermi, mnre, mremi)}
# Formats with one record per line, told apart by the keys of their records.
_RECORD_FORMATS = (mnermi, mnre, mremi)
# What `convert` writes when no target is named: the multi-image layout of the task.
DEFAULT_TARGET = {"ner": mnermi.NAME, "re": mremi.NAME}
# How many non-blank lines detection looks at: enough to see past a few broken lines and to see that
# the records agree, cheap on big files.
_DETECTION_LINES = 20


def get_format(name: str, path: str | Path | None = None) -> ModuleType:
    if name not in FORMATS:
        raise DataError(f"unknown format {name!r} (known: {', '.join(FORMATS)})", path=path, field="format")
    return FORMATS[name]


def _parse_record(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return mnre.python_literal(text)
    except mnre.LITERAL_ERRORS:
        return None


def detect_format(path: str | Path) -> str:
    """The name of the format of ``path``, from its first records; DataError when unknown or ambiguous.

    Lines that parse as no record, or as a record of no known format, are passed over (the reader
    reports them, with their line, once the format is known) as long as other lines do fit.
    """
    path = Path(path)
    check_readable(path)
    sample = []
    for number, text in read_lines(path):
        if isinstance(text, DataError):
            raise DataError("cannot detect the format: the line is not UTF-8", path=path, line=number)
        if text.strip():
            sample.append((number, text))
        if len(sample) == _DETECTION_LINES:
            break
    if not sample:
        raise DataError("cannot detect the format of an empty file", path=path)
    if twitter.looks_like(sample[0][1]):
        return twitter.NAME
    fits_per_line = []
    for _, text in sample:
        record = _parse_record(text)
        if isinstance(record, dict):
            fits_per_line.append({module.NAME for module in _RECORD_FORMATS if module.looks_like(record)})
    fits_per_line = [fits for fits in fits_per_line if fits]
    if not fits_per_line:
        raise DataError(
            f"unrecognised format: the first {len(sample)} non-blank lines hold no IMGID: line and no"
            f" record of a known format; name the format ({', '.join(FORMATS)})",
            path=path,
        )
    candidates = set.intersection(*fits_per_line)
    if len(candidates) != 1:
        found = "disagree" if not candidates else f"fit {' and '.join(sorted(candidates))}"
        raise DataError(f"ambiguous format: the first records {found}; name the format", path=path)
    return candidates.pop()


def read_dataset(
    path: str | Path, format: str | None = None, *, strict_tags: bool = False, skip_invalid: bool = False
) -> Dataset:
    """Read ``path`` (format detected from the content when None).

    ``strict_tags`` makes an irregular ``I-`` tag an error (by default it loads and is counted in
    ``Dataset.irregular_tags``); ``skip_invalid`` loads the valid records and lists the bad ones in
    ``Dataset.skipped`` instead of raising the first.
    """
    path = Path(path)
    check_readable(path)
    module = get_format(format, path) if format is not None else FORMATS[detect_format(path)]
    return module.read(ReadState(path, strict_tags=strict_tags, skip_invalid=skip_invalid))


def write_dataset(records: Iterable | Dataset, path: str | Path, format: str) -> None:
    """Write ``records`` in ``format``, atomically (``path`` is replaced only once all is written)."""
    path = Path(path)
    module = get_format(format, path)
    records = list(records.records if isinstance(records, Dataset) else records)
    check_record_types(records, module.RECORD_TYPE, module.NAME, path)
    try:
        with atomic_writer(path) as handle:
            module.write(records, handle, path)
    except UnicodeEncodeError as error:
        raise DataError(f"a string cannot be written as UTF-8 ({error.reason})", path=path) from None


def convert_dataset(
    source: str | Path,
    target: str | Path,
    *,
    format: str | None = None,
    to: str | None = None,
    strict_tags: bool = False,
    skip_invalid: bool = False,
) -> Dataset:
    """Read ``source`` and write its records to ``target`` in ``to`` (default: mnermi for NER, mremi for RE)."""
    dataset = read_dataset(source, format, strict_tags=strict_tags, skip_invalid=skip_invalid)
    to = to or DEFAULT_TARGET[dataset.task]
    target_format = get_format(to, target)
    if target_format.TASK != dataset.task:
        raise DataError(
            f"cannot convert {dataset.format} ({dataset.task.upper()}) records to {to} ({target_format.TASK.upper()})",
            path=source,
            field="to",
        )
    write_dataset(dataset.records, target, to)
    return dataset


__all__ = [
    "DEFAULT_TARGET",
    "FORMATS",
    "Dataset",
    "convert_dataset",
    "detect_format",
    "get_format",
    "read_dataset",
    "write_dataset",
]
