"""The one record schema of mmie.

Every reader produces these records and every writer consumes them; models never see file
formats. Spans are token offsets ``[start, end)``. Tags are BIO (IOB2) over the canonical types
PER, LOC, ORG, MISC (readers map release spellings such as ``OTHER`` and ``MIS`` to ``MISC``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_IMAGES = 4
ENTITY_TYPES = ("PER", "LOC", "ORG", "MISC")
NO_RELATION = "None"


@dataclass(frozen=True)
class Span:
    """A token span ``[start, end)``; ``name`` is the surface string as the release wrote it."""

    start: int
    end: int
    name: str | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.start < self.end):
            raise ValueError(f"span [{self.start}, {self.end}) is empty or negative")

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass
class Post:
    """A social-media post: tokens, 0..4 ordered image references, optional url and BIO tags."""

    id: str
    tokens: list[str]
    images: list[str] = field(default_factory=list)
    url: str | None = None
    tags: list[str] | None = None

    @property
    def n_images(self) -> int:
        return len(self.images)


@dataclass
class RelationInstance:
    """One relation example: a post, a head span, a tail span and a label (``None`` for no relation).

    ``label`` is ``None`` (the Python value) only for unlabelled input awaiting prediction; the
    "no relation" class is the string ``"None"`` as in the releases (:data:`NO_RELATION`).
    """

    post: Post
    head: Span
    tail: Span
    label: str | None = None

    @property
    def id(self) -> str:
        return self.post.id


def relation_argument_types(label: str) -> tuple[str, str] | None:
    """The entity types a relation label of the MNRE / MRE-MI releases names for its head and tail:
    ``("PER", "ORG")`` for ``/per/org/member_of``; None for a label that names none (``None``, custom)."""
    parts = label.split("/")
    if len(parts) < 4 or parts[0] or not (parts[1].isalpha() and parts[2].isalpha()) or not parts[3]:
        return None
    return parts[1].upper(), parts[2].upper()
