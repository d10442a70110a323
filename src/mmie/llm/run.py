"""Run a dataset split through a chat model and score its answers like any model's predictions.

    settings = LlmSettings(base_url="http://127.0.0.1:8000", model="Qwen/Qwen2-VL-7B-Instruct",
                           images="all", image_dir="data/mre_mi/images", demonstrations=3)
    summary = run_llm("data/mre_mi/test.txt", "runs/llm/qwen2vl_all", settings, train_path="data/mre_mi/train.txt")

The output folder is a run folder that ``mmie report`` and ``mmie score`` read:

* ``predictions/test.jsonl``: mmie's prediction lines, in the split's order;
* ``metrics.json``: the scores of :mod:`mmie.evaluation` under ``"test"`` (the split run, whatever
  its name), and the data fingerprints;
* ``answers.jsonl``: every answer as the model wrote it, what was read from it, its status
  (``ok``, ``unparseable``, ``unmapped``: an entity not in the post or an option not offered), the
  token counts and whether it came from the cache;
* ``summary.json``: the counts (requests, cached, unparseable, unmapped) and the token totals;
* ``config.yaml``: the settings (without the key) and the row name ``mmie report`` shows.

Answers are cached as they arrive (:mod:`mmie.llm.cache`, default ``<out>/cache``), so a run that was
killed is run again with the same command: cached answers are not asked again.
"""

from __future__ import annotations

import base64
import io
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from mmie.data import read_dataset
from mmie.data.images import downscale, load_image
from mmie.data.releases import fingerprint
from mmie.data.schema import NO_RELATION, Post, RelationInstance
from mmie.errors import ConfigError, DataError
from mmie.evaluation.predictions import ner_prediction, re_prediction, score_predictions
from mmie.io import atomic_writer, write_atomic
from mmie.llm.cache import AnswerCache, answer_key
from mmie.llm.client import ChatClient, ChatResult, LlmError
from mmie.llm.parsing import entities_to_tags, parse_ner_answer, parse_re_answer
from mmie.llm.templates import (
    DEFAULT_TEMPLATE,
    EntityTypes,
    PromptTemplate,
    get_template,
    gold_answer,
    instance_names,
    re_choices,
    user_text,
    verbalise,
)

ImageMode = Literal["none", "first", "all"]
Record = Post | RelationInstance


class LlmSettings(BaseModel):
    """Everything that decides what is asked and how (the key is read, never saved)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    model: str
    api_key: str | None = Field(default=None, exclude=True)
    template: str | None = None  # None: the task's default (mner-mi-gpt4, qa4re)
    images: ImageMode = "none"
    image_dir: Path | None = None
    image_max_side: int | None = 768  # images are re-encoded as JPEG, longer side at most this
    demonstrations: int = Field(default=0, ge=0)
    seed: int = 0
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = 0.0
    concurrency: int = Field(default=4, ge=1, le=64)
    timeout: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    backoff: float = Field(default=1.0, ge=0)
    limit: int | None = Field(default=None, ge=1)  # the first N records only
    name: str | None = None  # the row name in reports


@dataclass
class LlmSummary:
    records: int
    requests: int  # HTTP requests sent, retries included
    retries: int
    from_cache: int
    asked: int
    unparseable: int
    unmapped: int  # answers with at least one entity / option that does not map
    unmapped_entities: int
    tokens: dict[str, int] = field(default_factory=dict)
    scores: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "scores"}


@dataclass
class _Question:
    index: int
    record: Record
    messages: list[dict]
    key: str
    choices: dict[str, str] | None
    option_texts: dict[str, str] | None


def image_data_url(ref: str, image_dir: Path, record_id: str, max_side: int | None) -> str:
    """An image of a post as a ``data:image/jpeg;base64,...`` URL (decoded with mmie's guards, re-encoded)."""
    picture = downscale(load_image(ref, image_dir, "error", record_id=record_id), max_side)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _post(record: Record) -> Post:
    return record.post if isinstance(record, RelationInstance) else record


def read_entity_types(path: str | Path) -> dict[tuple[str, int, int, int, int], EntityTypes]:
    """``{"id", "head": [s, e], "tail": [s, e], "head_type", "tail_type"}`` lines -> types by instance."""
    path = Path(path)
    table = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise DataError(f"cannot read: {error.strerror or error}", path=path) from None
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
            key = (str(row["id"]), *map(int, row["head"]), *map(int, row["tail"]))
            table[key] = (str(row["head_type"]).upper(), str(row["tail_type"]).upper())
        except (ValueError, KeyError, TypeError) as error:
            raise DataError(f"not an entity-type line ({error!r})", path=path, line=number) from None
    return table  # type: ignore[return-value]


class _Asker:
    """Builds the messages of each record: demonstrations, then the record (with its images)."""

    def __init__(
        self,
        settings: LlmSettings,
        template: PromptTemplate,
        labels: Sequence[str],
        train: Sequence[Record],
        entity_types: Mapping[tuple, EntityTypes] | None,
    ) -> None:
        self.settings = settings
        self.template = template
        self.labels = list(labels)
        self.train = list(train)
        self.entity_types = entity_types or {}
        if settings.images != "none" and settings.image_dir is None:
            raise ConfigError("images: 'first' or 'all' needs image_dir (--image-dir)")
        if settings.demonstrations and len(self.train) < settings.demonstrations:
            raise ConfigError(
                f"demonstrations: {settings.demonstrations} asked for, the training split has {len(self.train)} records"
            )

    def types(self, instance: RelationInstance) -> EntityTypes | None:
        key = (str(instance.id), instance.head.start, instance.head.end, instance.tail.start, instance.tail.end)
        return self.entity_types.get(key)

    def choices(self, record: Record) -> dict[str, str] | None:
        if isinstance(record, RelationInstance):
            return re_choices(record, self.labels, self.types(record))
        return None

    def question(self, index: int, record: Record) -> _Question:
        messages: list[dict] = []
        if self.settings.demonstrations:
            # Each record its own demonstrations, drawn from the seed and its position: reruns and any
            # concurrency draw the same ones.
            rng = random.Random(self.settings.seed * 1_000_003 + index)
            for example in rng.sample(self.train, self.settings.demonstrations):
                choices = self.choices(example)
                messages.append({"role": "user", "content": user_text(self.template, example, choices)})
                messages.append({"role": "assistant", "content": gold_answer(example, choices)})
        choices = self.choices(record)
        text = user_text(self.template, record, choices)
        post = _post(record)
        refs = {"none": [], "first": post.images[:1], "all": post.images}[self.settings.images]
        if refs:
            assert self.settings.image_dir is not None
            parts: list[dict] = [
                {
                    "type": "image_url",
                    "image_url": {
                        "url": image_data_url(ref, self.settings.image_dir, post.id, self.settings.image_max_side)
                    },
                }
                for ref in refs
            ]
            messages.append({"role": "user", "content": [*parts, {"type": "text", "text": text}]})
        else:
            messages.append({"role": "user", "content": text})
        parameters = {"max_tokens": self.settings.max_tokens, "temperature": self.settings.temperature}
        key = answer_key(self.settings.model, self.template.key, messages, parameters)
        option_texts = None
        if isinstance(record, RelationInstance) and choices is not None:
            head, tail = instance_names(record)
            option_texts = {
                letter: verbalise(label, head, tail) for letter, label in choices.items() if label != NO_RELATION
            }
        return _Question(index, record, messages, key, choices, option_texts)


def _read_answer(question: _Question, answer: str) -> tuple[dict, dict]:
    """The prediction line of one answer and what is logged about it."""
    record = question.record
    if isinstance(record, RelationInstance):
        assert question.choices is not None
        parsed = parse_re_answer(answer, question.choices, question.option_texts)
        if parsed.label is None:
            status = "unmapped" if parsed.letter else "unparseable"
        else:
            status = "ok"
        line = re_prediction(record, parsed.label or NO_RELATION)
        log: dict[str, Any] = {"status": status, "letter": parsed.letter, "label": parsed.label}
        return line, {**log, "error": parsed.error, "options": question.choices}
    ner = parse_ner_answer(answer)
    if ner.error is not None:
        line = ner_prediction(record, ["O"] * len(record.tokens))
        return line, {"status": "unparseable", "error": ner.error, "entities": [], "unmapped": []}
    tags, unmapped = entities_to_tags(record.tokens, ner.entities)
    log = {
        "status": "unmapped" if unmapped else "ok",
        "entities": [list(pair) for pair in ner.entities],
        "unmapped": unmapped,
        "unknown_keys": ner.unknown_keys,
    }
    return ner_prediction(record, tags), log


def run_llm(
    data_path: str | Path,
    out_dir: str | Path,
    settings: LlmSettings,
    *,
    train_path: str | Path | None = None,
    data_format: str | None = None,
    cache_dir: str | Path | None = None,
    entity_types: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LlmSummary:
    """Ask the model about every record of ``data_path``; write the run folder ``out_dir`` (see the module)."""
    started = time.monotonic()
    dataset = read_dataset(data_path, data_format)
    records: list[Record] = list(dataset.records)[: settings.limit]
    template = get_template(settings.template or DEFAULT_TEMPLATE[dataset.task], dataset.task)
    train: list[Record] = []
    labels: list[str] = []
    if train_path is not None:
        train_set = read_dataset(train_path, data_format)
        if train_set.task != dataset.task:
            raise ConfigError(f"the training split is {train_set.task.upper()}, the data is {dataset.task.upper()}")
        train = list(train_set.records)
    elif settings.demonstrations:
        raise ConfigError("demonstrations need the training split (--train)")
    if dataset.task == "re":
        source = train or records
        labels = sorted({str(r.label) for r in source if isinstance(r, RelationInstance) and r.label} | {NO_RELATION})
    types = read_entity_types(entity_types) if entity_types is not None else None
    asker = _Asker(settings, template, labels, train, types)
    questions = [asker.question(index, record) for index, record in enumerate(records)]

    out = Path(out_dir)
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    cache = AnswerCache(cache_dir if cache_dir is not None else out / "cache")
    answers: dict[int, tuple[dict, bool]] = {}
    missing = []
    for question in questions:
        entry = cache.get(question.key)
        if entry is None:
            missing.append(question)
        else:
            answers[question.index] = (entry, True)
    client = ChatClient(
        settings.base_url,
        settings.model,
        settings.api_key,
        timeout=settings.timeout,
        max_retries=settings.max_retries,
        backoff=settings.backoff,
    )
    parameters = {"max_tokens": settings.max_tokens, "temperature": settings.temperature}
    failures: list[str] = []

    def ask(question: _Question) -> dict:
        result: ChatResult = client.complete(question.messages, parameters, request=f"record {question.index + 1}")
        entry = {
            "model": settings.model,
            "template": template.key,
            "answer": result.text,
            "usage": result.usage,
            "finish_reason": result.finish_reason,
            "served_by": result.model,
        }
        cache.put(question.key, entry)  # on disk before anything else: a kill now loses nothing
        return entry

    pool = ThreadPoolExecutor(max_workers=settings.concurrency)
    try:
        futures = {pool.submit(ask, question): question for question in missing}
        for done, future in enumerate(as_completed(futures), start=1):
            question = futures[future]
            try:
                answers[question.index] = (future.result(), False)
            except LlmError as error:
                failures.append(str(error))
            if progress is not None:
                progress(done, len(missing))
    finally:
        # On Ctrl-C the questions not yet sent are dropped (what arrived is cached), not all asked first.
        pool.shutdown(wait=True, cancel_futures=True)
        client.close()
    if failures:
        raise LlmError(
            f"{len(failures)} of {len(missing)} requests failed; the {len(answers)} answers received are cached "
            f"in {cache.folder}, run again to ask only for the rest. First: {failures[0]}"
        )

    summary = LlmSummary(
        records=len(records),
        requests=client.stats.requests,
        retries=client.stats.retries,
        from_cache=sum(cached for _, cached in answers.values()),
        asked=len(missing),
        unparseable=0,
        unmapped=0,
        unmapped_entities=0,
    )
    predictions = []
    with atomic_writer(out / "answers.jsonl") as log_file:
        for question in questions:
            entry, cached = answers[question.index]
            line, log = _read_answer(question, entry["answer"])
            predictions.append(line)
            summary.unparseable += log["status"] == "unparseable"
            summary.unmapped += log["status"] == "unmapped"
            summary.unmapped_entities += len(log.get("unmapped", [])) + int(
                dataset.task == "re" and log["status"] == "unmapped"
            )
            for name, count in entry.get("usage", {}).items():
                summary.tokens[name] = summary.tokens.get(name, 0) + int(count)
            row = {"index": question.index, "id": question.record.id, "key": question.key, "cached": cached}
            row.update({"answer": entry["answer"], **log, "usage": entry.get("usage", {})})
            log_file.write(json.dumps(row, ensure_ascii=False) + "\n")
    with atomic_writer(out / "predictions" / "test.jsonl") as handle:
        for line in predictions:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    summary.scores = score_predictions(
        records,  # type: ignore[arg-type]  # all Post or all RelationInstance: one dataset
        predictions,
        task=dataset.task,
        gold_path=dataset.path,
        pred_path=out / "predictions" / "test.jsonl",
    )
    summary.seconds = round(time.monotonic() - started, 3)
    data: dict[str, Any] = {"test": fingerprint(dataset.path)}
    if train_path is not None:
        data["train"] = fingerprint(train_path)
    write_atomic(out / "metrics.json", json.dumps({"test": summary.scores, "data": data}, indent=1))
    write_atomic(out / "summary.json", json.dumps(summary.to_dict(), indent=1))
    row_name = (
        settings.name or f"{settings.model} ({template.key}, images: {settings.images}, k={settings.demonstrations})"
    )
    config = {
        "name": row_name,
        "task": dataset.task,
        "llm": {**settings.model_dump(mode="json"), "template": template.key},
        "data": {"test": str(data_path), "train": str(train_path) if train_path else None, "limit": settings.limit},
    }
    write_atomic(out / "config.yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return summary
