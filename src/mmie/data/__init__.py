"""Datasets of mmie: the record schema, readers and writers of the releases' formats, crop dictionaries.

    >>> from mmie.data import read_dataset, write_dataset
    >>> dataset = read_dataset("twitter2017/train.txt")          # format detected from the content
    >>> write_dataset(dataset, "train.jsonl", format="mnermi")

See docs/formats.md for the formats, how they map to records, and the errors.
"""

from __future__ import annotations

from mmie.data.formats import (
    DEFAULT_TARGET,
    FORMATS,
    Dataset,
    convert_dataset,
    detect_format,
    read_dataset,
    write_dataset,
)
from mmie.data.formats.crops import read_crop_dict, write_crop_dict
from mmie.data.schema import ENTITY_TYPES, MAX_IMAGES, NO_RELATION, Post, RelationInstance, Span

__all__ = [
    "DEFAULT_TARGET",
    "ENTITY_TYPES",
    "FORMATS",
    "MAX_IMAGES",
    "NO_RELATION",
    "Dataset",
    "Post",
    "RelationInstance",
    "Span",
    "convert_dataset",
    "detect_format",
    "read_crop_dict",
    "read_dataset",
    "write_crop_dict",
    "write_dataset",
]
