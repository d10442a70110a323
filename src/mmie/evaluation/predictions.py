"""The prediction-file format: JSON lines, one object per input record, in input order.

NER: ``{"id", "tokens", "tags", "n_images"}``; RE: ``{"id", "head": [s, e], "tail": [s, e],
"relation", "score", "scores": {label: probability}, "n_images"}``. Models may add extra keys
(``"relevance"``, ...); readers keep them. Required are ``id`` and ``tags`` (NER) or ``relation``
(RE); the other keys are checked when present. ``docs/predictions.md`` has the full description.

Prediction runs can be long, so :class:`PredictionWriter` flushes every line: a killed run keeps
what it wrote, and ``resume=True`` drops a line cut off by the kill and says how many records are
done. :func:`score_predictions` lines predictions up with gold records and calls the metrics.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from mmie.data.schema import MAX_IMAGES, Post, RelationInstance
from mmie.errors import DataError
from mmie.evaluation.metrics import is_tag, ner_scores, re_scores

TASK_FIELDS = {"ner": "tags", "re": "relation"}


# ---------------------------------------------------------------------- building records


def ner_prediction(post: Post, tags: Sequence[str], **extras: Any) -> dict:
    """The prediction line of one post: its id, tokens, predicted tags and image count."""
    return {
        "id": post.id,
        "tokens": list(post.tokens),
        "tags": list(tags),
        "n_images": post.n_images,
        **extras,
    }


def re_prediction(
    instance: RelationInstance,
    relation: str,
    scores: dict[str, float] | None = None,
    **extras: Any,
) -> dict:
    """The prediction line of one relation instance; ``score`` is the probability of ``relation``."""
    record: dict = {
        "id": instance.id,
        "head": [instance.head.start, instance.head.end],
        "tail": [instance.tail.start, instance.tail.end],
        "relation": relation,
    }
    if scores is not None:
        record["score"] = float(scores[relation]) if relation in scores else None
        record["scores"] = {label: float(p) for label, p in scores.items()}
    record["n_images"] = instance.post.n_images
    record.update(extras)
    return record


# ------------------------------------------------------------------------------ validation


def prediction_task(record: dict, *, path: str | Path | None = None, line: int | None = None) -> str:
    """``"ner"`` when the record has ``tags``, ``"re"`` when it has ``relation``."""
    tasks = [task for task, key in TASK_FIELDS.items() if key in record]
    if len(tasks) != 1:
        raise DataError('a prediction has "tags" (NER) or "relation" (RE), exactly one of them', path=path, line=line)
    return tasks[0]


def validate_prediction(record: Any, *, path: str | Path | None = None, line: int | None = None) -> dict:
    """Check one prediction and return it with ``id`` as a string; raises DataError naming the field."""

    def fail(field: str, message: str) -> DataError:
        return DataError(message, path=path, line=line, field=field)

    def is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def is_number(value: Any) -> bool:
        return (is_int(value) or isinstance(value, float)) and math.isfinite(value)

    def is_strings(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)

    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object, got {type(record).__name__}", path=path, line=line)
    task = prediction_task(record, path=path, line=line)
    record = dict(record)
    if "id" not in record:
        raise fail("id", "missing")
    if not (isinstance(record["id"], str) or is_int(record["id"])):
        raise fail("id", f"expected a string, got {record['id']!r}")
    record["id"] = str(record["id"])
    if "tokens" in record and not is_strings(record["tokens"]):
        raise fail("tokens", "expected a list of strings")
    if "n_images" in record and not (is_int(record["n_images"]) and 0 <= record["n_images"] <= MAX_IMAGES):
        raise fail("n_images", f"expected an integer in 0..{MAX_IMAGES}, got {record['n_images']!r}")
    if task == "ner":
        tags = record["tags"]
        if not is_strings(tags):
            raise fail("tags", "expected a list of strings")
        for position, tag in enumerate(tags):
            if not is_tag(tag):
                raise fail("tags", f"tag {tag!r} at token {position} is not O or B-/I-/E-/S-<type>")
        if "tokens" in record and len(record["tokens"]) != len(tags):
            raise fail("tags", f"{len(tags)} tags for {len(record['tokens'])} tokens")
        return record
    if not isinstance(record["relation"], str) or not record["relation"]:
        raise fail("relation", f"expected a label string, got {record['relation']!r}")
    for key in ("head", "tail"):
        span = record.get(key)
        if key in record and not (
            isinstance(span, list) and len(span) == 2 and all(map(is_int, span)) and 0 <= span[0] < span[1]
        ):
            raise fail(key, f"expected [start, end) token offsets with 0 <= start < end, got {span!r}")
    if record.get("score") is not None and not is_number(record["score"]):
        raise fail("score", f"expected a number, got {record['score']!r}")
    if "scores" in record and not (
        isinstance(record["scores"], dict) and all(is_number(p) for p in record["scores"].values())
    ):
        raise fail("scores", "expected an object mapping labels to numbers")
    return record


# ---------------------------------------------------------------------------- file access


def _scan(path: Path) -> Iterator[tuple[int, int, dict | None, bool]]:
    """Yield ``(line number, byte offset after the line, record, ends with newline)`` per record.

    The record is ``None`` for a last line without its newline that does not parse: the tail a
    killed writer leaves. Blank lines at the end of the file are ignored; any other bad line
    raises DataError.
    """
    offset = 0
    blank_line = None  # the first blank line: an error only if a record follows it
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            offset += len(raw)
            complete = raw.endswith(b"\n")
            if not raw.strip():
                blank_line = blank_line or number
                continue
            if blank_line is not None:
                raise DataError("blank line between records (one JSON object per line)", path=path, line=blank_line)
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                if not complete:
                    yield number, offset, None, complete
                    return
                raise DataError(f"not a JSON object: {error}", path=path, line=number) from None
            yield number, offset, validate_prediction(record, path=path, line=number), complete


def _check_same_task(task: str | None, record: dict, path: Path, line: int) -> str:
    found = prediction_task(record, path=path, line=line)
    if task is not None and found != task:
        raise DataError(f"a {found.upper()} prediction in a file of {task.upper()} predictions", path=path, line=line)
    return found


def read_predictions(path: str | Path) -> list[dict]:
    """Read and check a prediction file; every record comes back with ``id`` as a string."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such prediction file", path=path)
    records: list[dict] = []
    task = None
    for number, _, record, _ in _scan(path):
        if record is None:
            raise DataError(
                "the last line is cut off (an interrupted run?): finish it with "
                "PredictionWriter(path, resume=True) or delete the line",
                path=path,
                line=number,
            )
        task = _check_same_task(task, record, path, number)
        records.append(record)
    return records


class PredictionWriter:
    """Write predictions as JSON lines, flushing each line so an interrupted run loses nothing.

    ``resume=False`` starts the file afresh. ``resume=True`` keeps the records already in the file
    (dropping a last line cut off by a kill) and appends; :attr:`already_written` says how many
    input records to skip and :attr:`existing_ids` which ones they were.

        with PredictionWriter("pred.jsonl", resume=True) as writer:
            for post in posts[writer.already_written:]:
                writer.write(ner_prediction(post, tagger(post)))
    """

    def __init__(self, path: str | Path, resume: bool = False) -> None:
        self.path = Path(path)
        self.task: str | None = None
        self.existing_ids: list[str] = []
        keep_bytes = 0
        needs_newline = False
        if resume and self.path.exists():
            for number, offset, record, complete in _scan(self.path):
                if record is None:
                    break  # the cut-off tail: truncated below
                self.task = _check_same_task(self.task, record, self.path, number)
                self.existing_ids.append(record["id"])
                keep_bytes, needs_newline = offset, not complete
        self.already_written = len(self.existing_ids)
        self.written = self.already_written
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream: IO[bytes] = open(self.path, "r+b" if keep_bytes else "wb")
        self._stream.truncate(keep_bytes)
        self._stream.seek(keep_bytes)
        if needs_newline:  # a complete last record whose newline the kill cut off
            self._stream.write(b"\n")
            self._stream.flush()

    def write(self, record: dict) -> None:
        """Check ``record``, append it as one line and flush it to the operating system."""
        line = self.written + 1
        record = validate_prediction(record, path=self.path, line=line)
        self.task = _check_same_task(self.task, record, self.path, line)
        try:
            text = json.dumps(record, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise DataError(f"not JSON-serialisable: {error}", path=self.path, line=line) from None
        self._stream.write(text.encode("utf-8") + b"\n")
        self._stream.flush()
        self.written += 1

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ------------------------------------------------------------------------------- scoring


def _aligned(gold: Sequence, predictions: Sequence[dict], pred_path: str | Path | None) -> None:
    """Predictions line up with gold records by position; their ids must agree."""
    for index, (record, prediction) in enumerate(zip(gold, predictions)):
        if str(record.id) != prediction["id"]:
            raise DataError(
                f"prediction id {prediction['id']!r} but gold record {index + 1} has id {record.id!r} "
                "(predictions must follow the gold file's order)",
                path=pred_path,
                line=index + 1,
                field="id",
            )
    if len(gold) != len(predictions):
        raise DataError(
            f"{len(predictions)} predictions for {len(gold)} gold records",
            path=pred_path,
            line=min(len(gold), len(predictions)) + 1,
        )


def ner_metric_inputs(
    posts: Sequence[Post],
    predictions: Sequence[dict],
    *,
    gold_path: str | Path | None = None,
    pred_path: str | Path | None = None,
) -> tuple[list[list[str]], list[list[str]], list[int]]:
    """Gold tags, predicted tags and image counts for :func:`ner_scores`, after checking alignment."""
    _aligned(posts, predictions, pred_path)
    gold_tags, pred_tags = [], []
    for index, (post, prediction) in enumerate(zip(posts, predictions)):
        if post.tags is None:
            raise DataError(f"gold record {post.id!r} has no tags", path=gold_path, field="tags")
        tokens = prediction.get("tokens")
        if tokens is not None and tokens != post.tokens:
            position = next((i for i, (a, b) in enumerate(zip(tokens, post.tokens)) if a != b), None)
            detail = (
                f"token {position} is {tokens[position]!r}, the gold has {post.tokens[position]!r}"
                if position is not None
                else f"{len(tokens)} tokens, the gold has {len(post.tokens)}"
            )
            raise DataError(
                f"{detail} (predictions made on another version of the data?)",
                path=pred_path,
                line=index + 1,
                field="tokens",
            )
        if len(prediction["tags"]) != len(post.tags):
            raise DataError(
                f"{len(prediction['tags'])} tags, the gold post has {len(post.tags)} tokens",
                path=pred_path,
                line=index + 1,
                field="tags",
            )
        gold_tags.append(list(post.tags))
        pred_tags.append(list(prediction["tags"]))
    return gold_tags, pred_tags, [post.n_images for post in posts]


def re_metric_inputs(
    instances: Sequence[RelationInstance],
    predictions: Sequence[dict],
    *,
    gold_path: str | Path | None = None,
    pred_path: str | Path | None = None,
) -> tuple[list[str], list[str], list[int]]:
    """Gold labels, predicted labels and image counts for :func:`re_scores`, after checking alignment."""
    _aligned(instances, predictions, pred_path)
    for index, (instance, prediction) in enumerate(zip(instances, predictions)):
        if instance.label is None:
            raise DataError(f"gold record {instance.id!r} has no relation label", path=gold_path, field="relation")
        for key, span in (("head", instance.head), ("tail", instance.tail)):
            if key in prediction and prediction[key] != [span.start, span.end]:
                raise DataError(
                    f"{prediction[key]} but the gold {key} is [{span.start}, {span.end}]",
                    path=pred_path,
                    line=index + 1,
                    field=key,
                )
    gold = [str(instance.label) for instance in instances]
    pred = [prediction["relation"] for prediction in predictions]
    return gold, pred, [instance.post.n_images for instance in instances]


def score_predictions(
    gold: Sequence[Post] | Sequence[RelationInstance],
    predictions: Sequence[dict],
    *,
    task: str | None = None,
    gold_path: str | Path | None = None,
    pred_path: str | Path | None = None,
    mode: str = "conlleval",
) -> dict:
    """Metrics of predictions against gold records (task from the records when not given).

    ``mode`` is the NER chunking (see :func:`mmie.evaluation.metrics.ner_entities`).
    """
    if task is None:
        task = "re" if gold and isinstance(gold[0], RelationInstance) else "ner"
    if predictions and prediction_task(predictions[0]) != task:
        raise DataError(
            f"the gold file is a {task.upper()} dataset but the predictions are not", path=pred_path, line=1
        )
    paths = {"gold_path": gold_path, "pred_path": pred_path}
    if task == "ner":
        return ner_scores(*ner_metric_inputs(gold, predictions, **paths), mode=mode)  # type: ignore[arg-type]
    return re_scores(*re_metric_inputs(gold, predictions, **paths))  # type: ignore[arg-type]


def score_by_group(
    gold: Sequence[Post] | Sequence[RelationInstance],
    predictions: Sequence[dict],
    group_of: Mapping[str, str],
    *,
    task: str | None = None,
    gold_path: str | Path | None = None,
    pred_path: str | Path | None = None,
    mode: str = "conlleval",
) -> tuple[dict[str, dict], dict[str, list[int]]]:
    """Metrics of the examples of each group (``group_of``: record id -> group), and ``"whole"``.

    Returns ``(scores by group, example indices by group)``; records without a group count only in
    ``"whole"``. The whole file is scored (and its alignment checked) first, so a misaligned
    prediction file fails naming its line."""
    whole = score_predictions(gold, predictions, task=task, gold_path=gold_path, pred_path=pred_path, mode=mode)
    records: list[Any] = list(gold)
    indices: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        group = group_of.get(str(record.id))
        if group is not None:
            indices.setdefault(group, []).append(index)
    scores = {
        group: score_predictions(
            [records[i] for i in members],
            [predictions[i] for i in members],
            task=task,
            mode=mode,
        )
        for group, members in indices.items()
    }
    scores["whole"] = whole
    indices["whole"] = list(range(len(gold)))
    return scores, indices
