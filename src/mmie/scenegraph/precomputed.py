"""Precomputed scene graphs: one JSON-lines file, one object per image (or per record).

    {"image": "twitter_stream_2018_09_04_11_0_2_240.jpg",
     "objects": [{"label": "man", "box": [12, 30, 200, 310], "feature": [0.12, ...]}, ...],
     "relations": [[0, "holding", 1]],
     "text_heads": [1, -1, 1]}

Exactly one of ``image`` (keyed by the image's file name, as the region crop dictionaries are) or
``record`` (keyed by record id: MNRE's line index, as MEGA's per-instance files are) names the
line. ``objects`` (required, most confident first): ``label`` (string, required), ``feature`` (list
of numbers, required), ``box`` (four numbers, optional). ``relations``: ``[subject, predicate,
object]`` triples, indices into ``objects``. ``text_heads`` (optional): the dependency head of each
word of the post (0-based, -1 for the root), for the structural alignment. ``docs/scenegraphs.md``
describes the format.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from mmie.errors import DataError
from mmie.io import atomic_writer
from mmie.scenegraph.base import SceneGraph, SceneGraphProvider, SceneGraphUnavailable, SceneObject

SceneGraphKey = Literal["image", "record"]
_FIELDS = ("image", "record", "objects", "relations", "text_heads")
_OBJECT_FIELDS = ("label", "feature", "box")


def _number_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item) for item in value
    )


def _scene_object(value: Any, index: int, path: Path | None, line: int | None) -> SceneObject:
    where = f"objects[{index}]"
    if not isinstance(value, dict):
        raise DataError("expected an object", path=path, line=line, field=where)
    unknown = sorted(set(value) - set(_OBJECT_FIELDS))
    if unknown:
        raise DataError(
            f"unknown field (known: {', '.join(_OBJECT_FIELDS)})", path=path, line=line, field=f"{where}.{unknown[0]}"
        )
    if not isinstance(value.get("label"), str) or not value["label"]:
        raise DataError("the object's label is required", path=path, line=line, field=f"{where}.label")
    feature = value.get("feature")
    if not _number_list(feature) or not feature:
        raise DataError("expected a non-empty list of finite numbers", path=path, line=line, field=f"{where}.feature")
    box = value.get("box")
    if box is not None and not (_number_list(box) and len(box) == 4):
        raise DataError("expected four numbers x0, y0, x1, y1", path=path, line=line, field=f"{where}.box")
    corners = None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
    return SceneObject(value["label"], [float(x) for x in feature], corners)


def _relation(value: Any, index: int, objects: int, path: Path | None, line: int | None) -> tuple[int, str, int]:
    where = f"relations[{index}]"
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[1], str)):
        raise DataError("expected [subject index, predicate, object index]", path=path, line=line, field=where)
    subject, predicate, target = value
    for end in (subject, target):
        if not isinstance(end, int) or isinstance(end, bool) or not 0 <= end < objects:
            raise DataError(
                f"object index {end!r} is not one of the {objects} objects", path=path, line=line, field=where
            )
    return subject, predicate, target


def parse_scene_graph(record: object, path: Path | None = None, line: int | None = None) -> tuple[str, SceneGraph]:
    """One line's object as ``(key field, SceneGraph)``; DataError naming the file, line and field."""
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object, got {type(record).__name__}", path=path, line=line)
    unknown = sorted(set(record) - set(_FIELDS))
    if unknown:
        raise DataError(f"unknown field (known: {', '.join(_FIELDS)})", path=path, line=line, field=unknown[0])
    keys = [name for name in ("image", "record") if name in record]
    if len(keys) != 1:
        raise DataError("exactly one of image or record names the line", path=path, line=line, field="image")
    key = record[keys[0]]
    if isinstance(key, int) and not isinstance(key, bool):
        key = str(key)
    if not isinstance(key, str) or not key:
        raise DataError("expected a non-empty string", path=path, line=line, field=keys[0])
    objects = record.get("objects")
    if not isinstance(objects, list):
        raise DataError(
            "expected a list of objects (empty: the image shows none)", path=path, line=line, field="objects"
        )
    parsed = [_scene_object(value, index, path, line) for index, value in enumerate(objects)]
    relations = record.get("relations", [])
    if not isinstance(relations, list):
        raise DataError("expected a list of triples", path=path, line=line, field="relations")
    triples = [_relation(value, index, len(parsed), path, line) for index, value in enumerate(relations)]
    heads = record.get("text_heads")
    if heads is not None and not (
        isinstance(heads, list)
        and all(isinstance(h, int) and not isinstance(h, bool) and -1 <= h < len(heads) for h in heads)
    ):
        raise DataError(
            "expected each word's head index (0-based, -1 for the root)", path=path, line=line, field="text_heads"
        )
    return keys[0], SceneGraph(key, parsed, triples, heads)


def read_scene_graphs(path: str | Path, key: SceneGraphKey = "image") -> dict[str, SceneGraph]:
    """Scene graphs by key; every line must be keyed by ``key`` (``image`` or ``record``), every object's
    feature must have the first object's size, and a key may appear once."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such scene-graph file", path=path)
    found: dict[str, SceneGraph] = {}
    size: int | None = None
    for number, text in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise DataError(f"not a JSON object: {error}", path=path, line=number) from None
        field, graph = parse_scene_graph(record, path, number)
        if field != key:
            raise DataError(f"the file is keyed by {key}, this line by {field}", path=path, line=number, field=field)
        if graph.key in found:
            raise DataError(f"a second scene graph for {graph.key!r}", path=path, line=number, field=field)
        for index, item in enumerate(graph.objects):
            size = len(item.feature) if size is None else size
            if len(item.feature) != size:
                raise DataError(
                    f"{len(item.feature)} numbers, earlier objects have {size}",
                    path=path,
                    line=number,
                    field=f"objects[{index}].feature",
                )
        found[graph.key] = graph
    return found


def write_scene_graphs(graphs: Iterable[SceneGraph], path: str | Path, key: SceneGraphKey = "image") -> None:
    """Write scene graphs in the documented format, atomically."""
    with atomic_writer(path) as handle:
        for graph in graphs:
            record: dict[str, Any] = {key: graph.key, "objects": [], "relations": [list(r) for r in graph.relations]}
            for item in graph.objects:
                entry: dict[str, Any] = {"label": item.label, "feature": item.feature}
                if item.box is not None:
                    entry["box"] = list(item.box)
                record["objects"].append(entry)
            if graph.text_heads is not None:
                record["text_heads"] = graph.text_heads
            handle.write(json.dumps(record) + "\n")


class PrecomputedSceneGraphs(SceneGraphProvider):
    """The scene graphs a file gives; a key it does not list is :class:`SceneGraphUnavailable`."""

    name = "precomputed"

    def __init__(self, path: str | Path, key: SceneGraphKey = "image") -> None:
        self.path = Path(path)
        self.key = key
        self.graphs = read_scene_graphs(self.path, key)

    @property
    def feature_size(self) -> int | None:
        """The objects' feature size (None: the file lists no object)."""
        return next((len(o.feature) for g in self.graphs.values() for o in g.objects), None)

    def graph(self, key: str) -> SceneGraph:
        found = self.graphs.get(key) or (self.graphs.get(Path(key).name) if self.key == "image" else None)
        if found is None:
            raise SceneGraphUnavailable(f"{self.path}: no scene graph for {self.key} {key!r}")
        return found

    def describe(self) -> dict:
        return {"provider": self.name, "path": str(self.path), "key": self.key, "graphs": len(self.graphs)}
