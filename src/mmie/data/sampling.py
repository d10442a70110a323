"""Low-resource training sets (FocalMRE paper, sec. 5.3.5, Tables 6 and 7): seeded, stratified samples.

    sample_fraction(records, 0.05, seed=42)    5% of the records, every stratum kept in proportion
    sample_per_label(records, 5, seed=42)      K = 5 records of every stratum (all of a smaller one)

The stratum of a relation instance is its relation label (``None`` included: Table 7 keeps K of
every relation type); of a NER post, the set of entity types it holds (posts without entities form
one stratum). Both functions return the chosen records in their original order and are
deterministic: the same records, fraction or K and seed give the same sample on every machine (each
stratum draws from its own ``random.Random`` seeded by ``(seed, stratum)``), and a stratum's choice
does not depend on the other strata.

``sample_fraction`` keeps ``round(fraction * N)`` records (at least one), shared out among the strata
by largest remainder, so the label distribution of the sample is that of the full set up to rounding.
The experiment-config keys ``data.sample_fraction`` / ``data.sample_per_label`` / ``data.sample_seed``
apply these to the training split (docs/challenges.md).
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Sequence
from typing import TypeVar

from mmie.data.schema import Post, RelationInstance
from mmie.errors import ConfigError

Record = TypeVar("Record", Post, RelationInstance)


def stratum(record: Post | RelationInstance) -> Hashable:
    """The stratum a record is sampled in: its relation label (RE) or its set of entity types (NER)."""
    if isinstance(record, RelationInstance):
        return str(record.label)
    kinds = sorted({tag[2:] for tag in record.tags or () if tag[:2] in ("B-", "I-")})
    return "+".join(kinds) or "-"


def strata(records: Sequence[Record]) -> dict[Hashable, list[int]]:
    """Record indices by stratum, strata in first-seen order."""
    groups: dict[Hashable, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(stratum(record), []).append(index)
    return groups


def _draw(indices: list[int], count: int, seed: int, key: Hashable) -> list[int]:
    return random.Random(f"{seed}:{key}").sample(indices, count)


def sample_fraction(records: Sequence[Record], fraction: float, seed: int) -> list[Record]:
    """``round(fraction * len(records))`` records (at least one), stratified; original order kept."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"data.sample_fraction: must be in (0, 1], got {fraction}")
    if not records:
        return []
    groups = strata(records)
    total = max(1, round(fraction * len(records)))
    quotas = {key: fraction * len(indices) for key, indices in groups.items()}
    counts = {key: math.floor(quota) for key, quota in quotas.items()}
    # Largest remainder: the records rounding left over go to the strata closest to their next one.
    leftover = total - sum(counts.values())
    by_remainder = sorted(groups, key=lambda key: (-(quotas[key] - counts[key]), -len(groups[key]), str(key)))
    for key in by_remainder[: max(0, leftover)]:
        counts[key] += 1
    chosen = [i for key, indices in groups.items() for i in _draw(indices, counts[key], seed, key)]
    return [records[i] for i in sorted(chosen)]


def sample_per_label(records: Sequence[Record], k: int, seed: int) -> list[Record]:
    """``k`` records of every stratum (all of a stratum with fewer); original order kept."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"data.sample_per_label: must be an integer >= 1, got {k!r}")
    groups = strata(records)
    chosen = [i for key, indices in groups.items() for i in _draw(indices, min(k, len(indices)), seed, key)]
    return [records[i] for i in sorted(chosen)]


def sample_records(
    records: Sequence[Record], *, fraction: float | None = None, per_label: int | None = None, seed: int
) -> list[Record]:
    """One of the two samples (exactly one of ``fraction`` and ``per_label``; neither: all records)."""
    if fraction is not None and per_label is not None:
        raise ConfigError("data.sample_fraction and data.sample_per_label: give one of them, not both")
    if fraction is not None:
        return sample_fraction(records, fraction, seed)
    if per_label is not None:
        return sample_per_label(records, per_label, seed)
    return list(records)
