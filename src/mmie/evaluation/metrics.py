"""The metrics of the field: entity-level NER scores and relation-classification scores.

Both tasks reduce to the same count per example: which labelled units the gold holds, which the
prediction holds and which of them agree. For NER a unit is an entity ``(type, start, end)``; for
RE it is the instance's label when that label is not the no-relation class. Micro precision,
recall and F1 then follow from the summed counts (overall, per type and per group of posts with
the same number of images), so both tasks share one summary and one breakdown.

NER entities are chunked by seqeval. The default reading (``mode="conlleval"``) is the one of the
papers' reference code (conlleval, and seqeval's default mode used by the UMT/HVPNeT lineage): a
span starting with ``I-`` opens an entity. ``mode="strict"`` is seqeval's strict IOB2 mode, where
such a span is not an entity at all. ``docs/metrics.md`` works through the difference.

Every value is a fraction in [0, 1]; a ratio with a zero denominator is 0 (nothing predicted, or
no gold), never a division error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOB2, Entities

from mmie.data.schema import ENTITY_TYPES, MAX_IMAGES, NO_RELATION
from mmie.errors import DataError

NER_MODES = ("conlleval", "strict")
_ENTITY_PREFIXES = ("B", "I", "E", "S")
# BIOES is read by rewriting it to IOB2: a valid BIOES sequence chunks to the same entities.
_BIOES_TO_IOB2 = {"E": "I", "S": "B"}


@dataclass
class _Tally:
    """Labelled units of one example, by type: in the gold, in the prediction, in both."""

    gold: Counter[str] = field(default_factory=Counter)
    predicted: Counter[str] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)
    exact: bool = True  # the whole example is right (RE accuracy)


def prf(correct: int, predicted: int, support: int) -> dict:
    """Precision, recall and F1 from counts (0 where a denominator is 0), with the counts."""
    precision = correct / predicted if predicted else 0.0
    recall = correct / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
        "predicted": predicted,
        "correct": correct,
    }


# --------------------------------------------------------------------------------------- NER


def to_iob2(tags: Sequence[str]) -> list[str]:
    """Rewrite BIOES tags to IOB2 (``E-X`` -> ``I-X``, ``S-X`` -> ``B-X``); IOB2 passes unchanged."""
    return [_BIOES_TO_IOB2[tag[0]] + tag[1:] if tag[:1] in _BIOES_TO_IOB2 and tag[1:2] == "-" else tag for tag in tags]


def is_tag(tag: object) -> bool:
    """``O`` or ``B-``/``I-``/``E-``/``S-`` followed by a type (IOB2 or BIOES)."""
    return isinstance(tag, str) and (tag == "O" or (len(tag) > 2 and tag[0] in _ENTITY_PREFIXES and tag[1] == "-"))


def _check_tags(tags: Sequence[str], where: str) -> None:
    for position, tag in enumerate(tags):
        if not is_tag(tag):
            raise DataError(f"tag {tag!r} at token {position} is not O or B-/I-/E-/S-<type>", field=where)


def ner_entities(tags: Sequence[str], mode: str = "conlleval") -> set[tuple[str, int, int]]:
    """The entities of one tag sequence as ``(type, start, end)`` with ``end`` exclusive.

    ``mode="conlleval"``: seqeval's default chunking, which reads like conlleval (``O I-PER``
    is a PER entity, ``B-ORG I-PER`` is an ORG then a PER). ``mode="strict"``: seqeval's strict
    IOB2 scheme (an entity must open with ``B-`` and continue with ``I-`` of the same type).
    """
    iob2 = to_iob2(tags)
    if mode == "conlleval":
        return {(kind, start, end + 1) for kind, start, end in get_entities(iob2)}
    if mode == "strict":
        return {(e.tag, e.start, e.end) for e in Entities([iob2], IOB2).entities[0]}
    raise ValueError(f"unknown NER mode {mode!r}; expected one of {NER_MODES}")


def _ner_tally(gold: Sequence[str], pred: Sequence[str], mode: str) -> _Tally:
    gold_entities = ner_entities(gold, mode)
    pred_entities = ner_entities(pred, mode)
    return _Tally(
        gold=Counter(kind for kind, _, _ in gold_entities),
        predicted=Counter(kind for kind, _, _ in pred_entities),
        correct=Counter(kind for kind, _, _ in gold_entities & pred_entities),
        exact=gold_entities == pred_entities,
    )


def ner_scores(
    gold: list[list[str]],
    pred: list[list[str]],
    n_images: list[int] | None = None,
    *,
    mode: str = "conlleval",
) -> dict:
    """Entity-level micro P/R/F1, overall and per type (and by number of images when given).

    Returns ``{"precision", "recall", "f1", "support", "predicted", "correct", "n", "mode",
    "per_type": {type: {...}}, "by_images": {...}}``; ``support`` counts gold entities,
    ``predicted`` predicted ones, ``correct`` exact matches (type, start and end), ``n`` sequences.
    """
    if mode not in NER_MODES:
        raise ValueError(f"unknown NER mode {mode!r}; expected one of {NER_MODES}")
    _check_lengths(gold, pred, n_images)
    tallies = []
    for index, (gold_tags, pred_tags) in enumerate(zip(gold, pred)):
        _check_tags(gold_tags, f"gold[{index}]")
        _check_tags(pred_tags, f"pred[{index}]")
        if len(gold_tags) != len(pred_tags):
            raise DataError(f"gold has {len(gold_tags)} tags, the prediction {len(pred_tags)}", field=f"pred[{index}]")
        tallies.append(_ner_tally(gold_tags, pred_tags, mode))
    return {**_scores(tallies, n_images, "per_type", accuracy=False), "mode": mode}


# ---------------------------------------------------------------------------------------- RE


def re_scores(
    gold: list[str],
    pred: list[str],
    n_images: list[int] | None = None,
    no_relation: str = NO_RELATION,
) -> dict:
    """Accuracy over all instances and micro P/R/F1 over the labels other than ``no_relation``.

    Predicting ``no_relation`` for a related pair costs recall, predicting a relation for an
    unrelated pair costs precision, and a wrong relation costs both. Returns ``{"accuracy",
    "precision", "recall", "f1", "support", "predicted", "correct", "n", "per_relation":
    {label: {...}}, "by_images": {...}}`` (``per_relation`` leaves ``no_relation`` out).
    """
    _check_lengths(gold, pred, n_images)
    tallies = []
    for index, (gold_label, pred_label) in enumerate(zip(gold, pred)):
        for side, label in (("gold", gold_label), ("pred", pred_label)):
            if not isinstance(label, str) or not label:
                raise DataError(f"relation label {label!r} is not a non-empty string", field=f"{side}[{index}]")
        related = {"gold": gold_label != no_relation, "pred": pred_label != no_relation}
        tallies.append(
            _Tally(
                gold=Counter([gold_label] if related["gold"] else []),
                predicted=Counter([pred_label] if related["pred"] else []),
                correct=Counter([gold_label] if related["gold"] and gold_label == pred_label else []),
                exact=gold_label == pred_label,
            )
        )
    return _scores(tallies, n_images, "per_relation", accuracy=True)


# ------------------------------------------------------------------------- shared summaries


def _check_lengths(gold: Sequence, pred: Sequence, n_images: Sequence[int] | None) -> None:
    if len(gold) != len(pred):
        raise DataError(f"{len(gold)} gold examples but {len(pred)} predictions", field="pred")
    if n_images is None:
        return
    if len(n_images) != len(gold):
        raise DataError(f"{len(gold)} examples but {len(n_images)} image counts", field="n_images")
    for index, count in enumerate(n_images):
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_IMAGES:
            raise DataError(f"image count {count!r} is not an integer in 0..{MAX_IMAGES}", field=f"n_images[{index}]")


def _type_order(kind: str) -> tuple[int, str]:
    # The canonical entity types first in their usual order, anything else alphabetically.
    return (ENTITY_TYPES.index(kind), "") if kind in ENTITY_TYPES else (len(ENTITY_TYPES), kind)


def _summary(tallies: Sequence[_Tally], per_key: str, accuracy: bool) -> dict:
    gold: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    for tally in tallies:
        gold.update(tally.gold)
        predicted.update(tally.predicted)
        correct.update(tally.correct)
    summary: dict = {}
    if accuracy:
        summary["accuracy"] = sum(t.exact for t in tallies) / len(tallies) if tallies else 0.0
    summary.update(prf(sum(correct.values()), sum(predicted.values()), sum(gold.values())))
    summary["n"] = len(tallies)
    kinds = sorted(set(gold) | set(predicted), key=_type_order)
    summary[per_key] = {kind: prf(correct[kind], predicted[kind], gold[kind]) for kind in kinds}
    return summary


def image_groups(n_images: Sequence[int]) -> dict[str, list[int]]:
    """Example indices by image count: "1".."4" always, "0" when present, "single", "multi", "whole".

    "single" is exactly one image, "multi" two or more; text-only posts ("0") count only in "whole".
    """
    groups: dict[str, list[int]] = {}
    if any(count == 0 for count in n_images):
        groups["0"] = [i for i, count in enumerate(n_images) if count == 0]
    for count in range(1, MAX_IMAGES + 1):
        groups[str(count)] = [i for i, c in enumerate(n_images) if c == count]
    groups["single"] = groups["1"]
    groups["multi"] = [i for i, count in enumerate(n_images) if count >= 2]
    groups["whole"] = list(range(len(n_images)))
    return groups


def _scores(tallies: list[_Tally], n_images: Sequence[int] | None, per_key: str, accuracy: bool) -> dict:
    scores = _summary(tallies, per_key, accuracy)
    if n_images is not None:
        scores["by_images"] = {
            key: _summary([tallies[i] for i in indices], per_key, accuracy)
            for key, indices in image_groups(n_images).items()
        }
    return scores


# ------------------------------------------------------------------ per-relation table (FocalMRE Table 4)


def per_relation_rows(scores: dict) -> list[dict]:
    """One row per relation of ``re_scores(...)`` output, most frequent gold relation first (Table 4 order):
    ``{"relation", "support", "predicted", "correct", "precision", "recall", "f1"}``. Relations only
    predicted (support 0) come last."""
    per_relation = scores.get("per_relation")
    if per_relation is None:
        raise DataError("has no per-relation scores (not the metrics of a relation model)", field="per_relation")
    rows = [
        {
            "relation": name,
            **{key: values[key] for key in ("support", "predicted", "correct", "precision", "recall", "f1")},
        }
        for name, values in per_relation.items()
    ]
    return sorted(rows, key=lambda row: (-row["support"], row["relation"]))


def render_per_relation(rows: Sequence[dict]) -> str:
    """The rows of :func:`per_relation_rows` as a Markdown table: ``relation (support)`` and P / R / F1 in %."""
    lines = ["| relation (support) | P | R | F1 |", "|---|---:|---:|---:|"]
    for row in rows:
        lines.append(
            f"| {row['relation']} ({row['support']}) | {100 * row['precision']:.2f} | "
            f"{100 * row['recall']:.2f} | {100 * row['f1']:.2f} |"
        )
    return "\n".join(lines)
