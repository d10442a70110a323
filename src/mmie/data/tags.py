"""BIO (IOB2) tags: canonical spelling, the conlleval reading of irregular sequences, entity spans.

Releases spell the fourth type differently (Twitter-2015 ``OTHER``, some MNER-MI releases ``MIS``);
readers map them to ``MISC`` so that every record uses :data:`mmie.data.schema.ENTITY_TYPES`.

Real releases also contain sequences such as ``O I-PER`` or ``B-ORG I-PER``. conlleval (and seqeval's
default mode, which the metrics use) reads an ``I-X`` that does not continue an entity of type X as
the start of a new X entity. Records keep such tags exactly as the file wrote them, so that files
round-trip; :func:`irregular_positions` finds them, so readers can count them or, when asked, refuse them.
"""

from __future__ import annotations

from mmie.data.schema import ENTITY_TYPES

OUTSIDE = "O"
# Release spellings of an entity type -> the canonical type.
TYPE_ALIASES = {"OTHER": "MISC", "MIS": "MISC"}
CANONICAL_TAGS = (OUTSIDE,) + tuple(f"{prefix}-{kind}" for kind in ENTITY_TYPES for prefix in ("B", "I"))
TAG_HELP = "expected O or B-/I- with PER, LOC, ORG, MISC (OTHER and MIS are read as MISC)"


def canonical_tag(tag: str) -> str | None:
    """The canonical spelling of ``tag`` (``B-OTHER`` -> ``B-MISC``), or None when it is not a BIO tag."""
    if tag == OUTSIDE:
        return OUTSIDE
    prefix, dash, kind = tag.partition("-")
    if not dash or prefix not in ("B", "I"):
        return None
    kind = TYPE_ALIASES.get(kind, kind)
    if kind not in ENTITY_TYPES:
        return None
    return f"{prefix}-{kind}"


def irregular_positions(tags: list[str]) -> list[int]:
    """Positions of ``I-X`` tags that do not continue an entity of type X (conlleval starts one there)."""
    positions = []
    previous = OUTSIDE
    for position, tag in enumerate(tags):
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            positions.append(position)
        previous = tag
    return positions


def bio_entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """Entities ``(type, start, end)`` with ``end`` exclusive, chunked the conlleval way (seqeval)."""
    # Imported here: seqeval pulls in scikit-learn (over a second), which reading a file does not need.
    from seqeval.metrics.sequence_labeling import get_entities

    return [(kind, start, last + 1) for kind, start, last in get_entities(list(tags))]
