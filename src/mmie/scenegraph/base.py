"""The scene-graph record and the provider interface.

A scene graph is what a scene-graph detector (MEGA used Neural Motifs on Visual Genome) says about
an image: its objects (a label, a box, a feature vector) and the relation triples between them
(``subject -- predicate -> object``). mmie runs no scene-graph detector: the graphs come from files.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from mmie.errors import MmieError


class SceneGraphUnavailable(MmieError):
    """A provider has no scene graph for an image or record (no file was given, or the file lacks it)."""


@dataclass
class SceneObject:
    """One detected object: its label, its box ``(x0, y0, x1, y1)`` in pixels when known, its feature vector."""

    label: str
    feature: list[float]
    box: tuple[float, float, float, float] | None = None


@dataclass
class SceneGraph:
    """The objects of one image (most confident first) and the relations between them.

    ``relations``: ``(subject, predicate, object)`` with indices into ``objects``. ``text_heads``: the
    dependency parse of the post's words when the file carries it (each word's head index, -1 for the
    root), else None."""

    key: str
    objects: list[SceneObject] = field(default_factory=list)
    relations: list[tuple[int, str, int]] = field(default_factory=list)
    text_heads: list[int] | None = None

    @property
    def edges(self) -> list[tuple[int, int]]:
        """The relation triples as undirected object pairs (the graph structure alignment reads)."""
        return [(subject, target) for subject, _, target in self.relations]


class SceneGraphProvider(ABC):
    """``graph(key)``: the scene graph stored under ``key`` (an image name or a record id)."""

    name: str = "base"

    @abstractmethod
    def graph(self, key: str) -> SceneGraph:
        """The scene graph of one image or record; :class:`SceneGraphUnavailable` when there is none."""

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name}


class NoSceneGraph(SceneGraphProvider):
    """No scene-graph file was given and no detector runs offline: every request says so, nothing is made up."""

    name = "none"
    reason = (
        "no scene-graph file was given (model.scene_graphs), and mmie runs no scene-graph detector: "
        "give a precomputed JSON-lines file (docs/scenegraphs.md)"
    )

    def graph(self, key: str) -> SceneGraph:
        raise SceneGraphUnavailable(f"there is no scene graph for {key!r}: {self.reason}")
