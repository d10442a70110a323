"""From a raw post (text + 0..4 images) to entities and relations, with one call.

    extractor = mmie.Extractor.from_pretrained(ner="runs/tpm_mi/model", re="runs/glra/model")
    result = extractor("Kawhi Leonard joins the Raptors", images=["a.jpg", open("b.png", "rb").read()])
    for result in extractor.pipe(posts, batch_size=32): ...

Steps, per batch of posts: the text is cut into tokens with character offsets
(:mod:`mmie.pipeline.tokenize`, the Twitter-2017 rule); the images (file paths, bytes or PIL images)
are decoded in memory with the bomb and truncation guards of :mod:`mmie.data.images`; the NER model
tags the tokens (or the caller's entities are used); every ordered pair of entities whose types some
relation label allows (``/per/org/...`` -> a PER head and an ORG tail) becomes a relation instance;
the RE model classifies them, reading the images (and regions: the offline grid provider when the
model was trained on precomputed crops, which uploads do not have) when it is an image model.
The output is a JSON-serialisable dict per post; ``docs/extraction.md`` documents its schema.

The work of a post is bounded (:class:`~mmie.pipeline.limits.ExtractionLimits`): at most
``max_entities`` given entities, ``max_pairs`` candidate pairs classified (the closest first; the others
are listed in ``skipped_pairs``), and a deadline checked between images and model batches, as is the
caller's cancellation event. ``pipe(..., errors="record")`` turns a bad post into an error record in
its place instead of stopping.

An Extractor keeps no per-request state: the decoded images of a call travel with that call, so one
Extractor serves calls from several threads at once (the feature caches it shares are thread-safe).
A post without an id gets its position in the call (``"0"`` for a single post); an id given is a
non-empty string (or an integer).
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from mmie.data.images import InMemoryImages, decode_upload, downscale
from mmie.data.schema import MAX_IMAGES, NO_RELATION, Post, RelationInstance, Span, relation_argument_types
from mmie.data.tags import bio_entities
from mmie.errors import DataError, MmieError
from mmie.inference.loading import LoadedModel, load_model
from mmie.inference.predict import Predictor
from mmie.pipeline.limits import ExtractionLimits, ExtractionStopped, LimitExceeded, StopCheck
from mmie.pipeline.tokenize import Token, tokenize

ImageInput = str | Path | bytes | Image.Image
SCORE_DIGITS = 6
# Candidate pairs per RE model batch (a single post's pairs are batched too, not run one by one).
PAIR_BATCH = 16
ErrorPolicy = Literal["raise", "record"]


@dataclass
class PostInput:
    """One post to extract from: text, images, and optionally the caller's entities (char offsets)."""

    text: str
    images: list[ImageInput] = field(default_factory=list)
    entities: list[dict] | None = None
    id: str | None = None


@dataclass
class _Prepared:
    """A post ready for the models: its tokens, the record the featurizers read, its decoded images."""

    source: PostInput
    id: str
    tokens: list[Token]
    post: Post
    pictures: list[Image.Image]  # decoded, downscaled to what the models read
    sizes: list[tuple[int, int]]  # the pictures' sizes as given
    entities: list[dict] = field(default_factory=list)
    pairs: list[tuple[int, int]] = field(default_factory=list)  # the candidate pairs to classify
    skipped: list[tuple[int, int]] = field(default_factory=list)  # candidates past max_pairs


class Extractor:
    """Entities (NER model, or given) and relations (RE model) of raw posts; either model may be absent."""

    def __init__(
        self,
        ner: LoadedModel | None = None,
        re: LoadedModel | None = None,
        max_pixels: int | None = None,
        include_none: bool = False,
        limits: ExtractionLimits | None = None,
    ) -> None:
        """``max_pixels``: refuse larger images (None: Pillow's bomb guard only); ``include_none``: also list
        the candidate pairs classified ``None`` (no relation) in ``relations``; ``limits``: the work one
        post may cost (:class:`ExtractionLimits`, whose defaults are safe)."""
        if ner is None and re is None:
            raise MmieError("an Extractor needs an NER model, an RE model or both")
        if ner is not None and ner.task != "ner":
            raise MmieError(f"{ner.path}: the ner model is a {ner.task} model")
        if re is not None and re.task != "re":
            raise MmieError(f"{re.path}: the re model is a {re.task} model")
        self.ner, self.re = ner, re
        self.max_pixels = max_pixels
        self.include_none = include_none
        self.limits = limits or ExtractionLimits()
        caches: dict = {}  # one in-memory feature cache per vision encoder: an upload is encoded once
        self._ner = (
            Predictor(ner.model, ner.processor.for_uploads(caches), with_tag_scores=True) if ner is not None else None
        )
        self._re = Predictor(re.model, re.processor.for_uploads(caches)) if re is not None else None
        self._typed_labels = self._label_type_table()
        self.image_side = self._image_side()

    @classmethod
    def from_pretrained(
        cls, ner: str | Path | None = None, re: str | Path | None = None, device: str | None = None, **options: Any
    ) -> Extractor:
        """Load the model folders (``<run>/model``) once; nothing they name is downloaded."""
        return cls(
            ner=load_model(ner, device=device) if ner is not None else None,
            re=load_model(re, device=device) if re is not None else None,
            **options,
        )

    # ------------------------------------------------------------------------------ public API

    def __call__(
        self,
        text: str,
        images: Sequence[ImageInput] | None = None,
        entities: list[dict] | None = None,
        id: str | None = None,
        *,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> dict:
        """The extraction of one post (see ``docs/extraction.md`` for the output schema).

        Raises DataError for bad input (LimitExceeded past a limit) and ExtractionStopped when
        ``cancel`` is set or the deadline passes: ``deadline`` (a ``time.monotonic()`` value) when
        given, else ``limits.timeout_s`` from now.
        """
        post = PostInput(text, list(images or []), entities, id)
        stop = self._stop_check(1, cancel, deadline)
        [result] = self._extract([post], 1, stop, "raise")
        return result

    def pipe(
        self,
        posts: Iterable[str | Mapping | PostInput],
        batch_size: int = 32,
        progress: bool = False,
        *,
        errors: ErrorPolicy = "raise",
        cancel: threading.Event | None = None,
    ) -> Iterator[dict]:
        """Extractions of many posts, in order, ``batch_size`` posts per model batch.

        A post is a string, a :class:`PostInput` or a mapping with ``text`` and optionally ``images``,
        ``entities`` and ``id``. ``errors="record"``: a post that cannot be extracted (bad input, over a
        limit, its batch past the deadline) gives ``{"id", "error": {"kind", "field", "message"}}`` in
        its place and the others go on; ``"raise"``: the first such error is raised. A set ``cancel``
        always raises ExtractionStopped.
        """
        from tqdm.auto import tqdm

        bar = tqdm(unit="post", desc="extract", disable=not progress, dynamic_ncols=True)
        try:
            chunk: list[PostInput | dict] = []
            for index, post in enumerate(posts):
                try:
                    chunk.append(as_post_input(post, index))
                except DataError as error:
                    if errors == "raise":
                        raise
                    chunk.append(error_record(_raw_id(post, index), error))
                if len(chunk) == batch_size:
                    yield from self._extract_chunk(chunk, batch_size, cancel, errors)
                    bar.update(len(chunk))
                    chunk = []
            if chunk:
                yield from self._extract_chunk(chunk, batch_size, cancel, errors)
                bar.update(len(chunk))
        finally:
            bar.close()

    def extract_each(self, posts: Sequence[PostInput], stop: StopCheck, batch_size: int = 32) -> list[dict | DataError]:
        """Posts of separate callers through the models together (the service's micro-batches): for each,
        what ``self(post.text, post.images, post.entities, post.id)`` alone gives, its result or the
        DataError it would raise, so one caller's bad post fails only its own. ``stop`` is checked between
        images and model batches; the ExtractionStopped it raises ends the whole call."""
        outcomes = self._extract(list(posts), batch_size, stop, "return")
        # a post alone is post "0" (its images are numbered by position in the call, its id is not)
        return [
            {**outcome, "id": _post_id(post.id, 0)} if isinstance(outcome, dict) else outcome
            for post, outcome in zip(posts, outcomes)
        ]

    def describe(self) -> dict:
        """The loaded models: folder, registry name, labels, image use (``GET /models``)."""
        return {
            task: _describe(loaded, predictor)
            for task, loaded, predictor in (("ner", self.ner, self._ner), ("re", self.re, self._re))
            if loaded is not None and predictor is not None  # a predictor exactly for each loaded model
        }

    # ------------------------------------------------------------------------------ steps

    def _stop_check(self, posts: int, cancel: threading.Event | None, deadline: float | None) -> StopCheck:
        """The stop condition of a call on ``posts`` posts: ``deadline`` when given, else the limit's."""
        timeout = self.limits.timeout_s
        if deadline is None and timeout is not None:
            deadline = time.monotonic() + timeout * posts
        return StopCheck(cancel, deadline, timeout * posts if timeout is not None else None)

    def _extract_chunk(
        self, chunk: list[PostInput | dict], batch_size: int, cancel: threading.Event | None, errors: ErrorPolicy
    ) -> list[dict]:
        """One ``pipe`` batch; its deadline is ``limits.timeout_s`` per post of the batch."""
        stop = self._stop_check(len(chunk), cancel, None)
        inputs = [post for post in chunk if isinstance(post, PostInput)]
        try:
            done = iter(self._extract(inputs, batch_size, stop, errors))
        except ExtractionStopped as stopped:
            if errors == "raise" or stopped.reason == "cancelled":
                raise
            records = [error_record(_raw_id(post, number), stopped) for number, post in enumerate(inputs)]
            done = iter(records)
        return [next(done) if isinstance(post, PostInput) else post for post in chunk]

    def _extract(
        self, inputs: list[PostInput], batch_size: int, stop: StopCheck, errors: ErrorPolicy | Literal["return"]
    ) -> list[Any]:
        """Per post its result, or in its place: its error record (``"record"``) or its DataError (``"return"``)."""
        uploads = InMemoryImages()  # this call's pictures, by reference; gone with the call
        outcomes: list[_Prepared | dict | DataError] = []
        for number, post in enumerate(inputs):
            try:
                outcomes.append(self._prepare(post, number, uploads, stop))
            except DataError as error:
                if errors == "raise":
                    raise
                outcomes.append(error if errors == "return" else error_record(_raw_id(post, number), error))
        prepared = [item for item in outcomes if isinstance(item, _Prepared)]
        self._find_entities(prepared, batch_size, uploads, stop)
        relations = self._classify_pairs(prepared, max(batch_size, PAIR_BATCH), uploads, stop)
        results = iter(self._result(item, relations.get(index, [])) for index, item in enumerate(prepared))
        return [next(results) if isinstance(item, _Prepared) else item for item in outcomes]

    def _prepare(self, source: PostInput, number: int, uploads: InMemoryImages, stop: StopCheck) -> _Prepared:
        identifier = _post_id(source.id, number)
        where = f"post {identifier}: " if source.id is not None else ""
        text = _checked_text(source.text, f"{where}text")
        tokens = tokenize(text)
        if not tokens:
            raise DataError("the text has no tokens (empty, blank or only URLs)", field=f"{where}text")
        if len(source.images) > MAX_IMAGES:
            raise DataError(f"{len(source.images)} images; a post has at most {MAX_IMAGES}", field=f"{where}images")
        if source.entities is not None:
            if not isinstance(source.entities, list):
                raise DataError("entities must be a list of {start, end, type}", field=f"{where}entities")
            if refusal := self.limits.too_many_entities(len(source.entities)):
                raise LimitExceeded(refusal, field=f"{where}entities")
        elif self._ner is None:
            raise DataError("no NER model is loaded: give the post's entities", field=f"{where}entities")
        pictures, sizes = [], []
        for k, image in enumerate(source.images):  # one at a time, each checked against the deadline
            stop("decoding the images")
            picture, size = self._decode(image, f"{where}images[{k}]")
            pictures.append(picture)
            sizes.append(size)
        refs = [f"post-{number}-image-{k}" for k in range(len(pictures))]
        uploads.images.update(zip(refs, pictures))
        post = Post(id=identifier, tokens=[token.text for token in tokens], images=refs)
        item = _Prepared(source, post.id, tokens, post, pictures, sizes)
        if source.entities is not None:
            item.entities = [
                _given_entity(e, tokens, text, f"{where}entities[{i}]") for i, e in enumerate(source.entities)
            ]
        return item

    def _image_side(self) -> int | None:
        """The longest image side any loaded model reads (None: no image model, or one of unknown size)."""
        readers = [p.processor for p in (self._ner, self._re) if p is not None and p.processor.reads_images]
        sides = [processor.image_side for processor in readers]
        if not sides or any(side is None for side in sides):
            return None
        return max(side for side in sides if side is not None)

    def _decode(self, image: ImageInput, name: str) -> tuple[Image.Image, tuple[int, int]]:
        """One image -> (RGB downscaled to :attr:`image_side`, its size as given)."""
        if isinstance(image, Image.Image):
            width, height = image.size
            if self.max_pixels is not None and width * height > self.max_pixels:
                raise DataError(f"too large image: {width} x {height} pixels, more than {self.max_pixels}", field=name)
            return downscale(image.convert("RGB"), self.image_side), (width, height)  # the caller's image stays
        if isinstance(image, (str, Path)):  # the Python API and the CLI only: the service never passes paths
            try:
                data = Path(image).read_bytes()
            except OSError as error:
                raise DataError(f"cannot read the image: {error.strerror or error}", path=image, field=name) from None
            return decode_upload(data, f"{name} ({image})", self.max_pixels, self.image_side)
        if isinstance(image, (bytes, bytearray, memoryview)):
            return decode_upload(bytes(image), name, self.max_pixels, self.image_side)
        raise DataError(f"an image is a file path, bytes or a PIL image, got {type(image).__name__}", field=name)

    def _find_entities(
        self, prepared: list[_Prepared], batch_size: int, uploads: InMemoryImages, stop: StopCheck
    ) -> None:
        todo = [item for item in prepared if item.source.entities is None]
        if not todo:
            return
        assert self._ner is not None
        posts = [item.post for item in todo]
        lines = self._ner.iter_predictions(posts, batch_size=batch_size, progress=False, images=uploads)
        for item, line in zip(todo, _checked(lines, stop, "finding the entities")):
            for kind, start, end in bio_entities(line["tags"]):
                score = sum(line["tag_scores"][start:end]) / (end - start)
                item.entities.append(_entity(item.tokens, item.source.text, kind, start, end, score, "model"))

    def _candidate_pairs(self, entities: list[dict]) -> list[tuple[int, int]]:
        return [
            (h, t)
            for h, t in itertools.permutations(range(len(entities)), 2)
            if self._allowed_labels(entities[h]["type"], entities[t]["type"])
        ]

    def _select_pairs(self, item: _Prepared) -> None:
        """The candidate pairs to classify: all of them, or the ``max_pairs`` closest (fewest tokens
        between head and tail; ties in order), the others kept in ``skipped`` for the result."""
        candidates = self._candidate_pairs(item.entities)
        if len(candidates) <= self.limits.max_pairs:
            item.pairs = candidates
            return
        spans = [entity["tokens"] for entity in item.entities]

        def gap(pair: tuple[int, int]) -> int:
            (head_start, head_end), (tail_start, tail_end) = spans[pair[0]], spans[pair[1]]
            return max(0, tail_start - head_end, head_start - tail_end)

        ranked = sorted(range(len(candidates)), key=lambda k: (gap(candidates[k]), k))
        kept = set(ranked[: self.limits.max_pairs])
        item.pairs = [pair for k, pair in enumerate(candidates) if k in kept]
        item.skipped = [pair for k, pair in enumerate(candidates) if k not in kept]

    def _allowed_labels(self, head_type: str, tail_type: str) -> list[str]:
        """The relation labels a (head, tail) pair of these types may get, ``None`` excluded."""
        return [
            label
            for label, types in self._typed_labels.items()
            if label != NO_RELATION and (types is None or types == (head_type, tail_type))
        ]

    def _label_type_table(self) -> dict[str, tuple[str, str] | None]:
        labels = self.re.labels if self.re is not None else []
        table = {label: relation_argument_types(label) for label in labels}
        if not any(types is not None for types in table.values()):  # labels name no types: no filter
            return dict.fromkeys(labels)
        return table

    def _classify_pairs(
        self, prepared: list[_Prepared], batch_size: int, uploads: InMemoryImages, stop: StopCheck
    ) -> dict[int, list[dict]]:
        if self._re is None:
            return {}
        instances, owners = [], []
        for index, item in enumerate(prepared):
            self._select_pairs(item)
            for head, tail in item.pairs:
                pair = (item.entities[head], item.entities[tail])
                spans = [Span(entity["tokens"][0], entity["tokens"][1], entity["text"]) for entity in pair]
                instances.append(RelationInstance(item.post, spans[0], spans[1]))
                owners.append((index, head, tail))
        found: dict[int, list[dict]] = {}
        lines = self._relation_lines(instances, [index for index, _, _ in owners], batch_size, uploads)
        for (index, head, tail), line in zip(owners, _checked(lines, stop, "classifying the candidate pairs")):
            entities = prepared[index].entities
            allowed = self._allowed_labels(entities[head]["type"], entities[tail]["type"]) + [NO_RELATION]
            relation = max(allowed, key=lambda label: line["scores"].get(label, -1.0))
            found.setdefault(index, []).append(
                {
                    "head": head,
                    "tail": tail,
                    "relation": relation,
                    "score": round(line["scores"][relation], SCORE_DIGITS),
                    **({"relevance": line["relevance"]} if "relevance" in line else {}),
                }
            )
        return found

    def _relation_lines(
        self, instances: list[RelationInstance], posts: list[int], batch_size: int, uploads: InMemoryImages
    ) -> Iterator[dict]:
        """The RE model's prediction lines of ``instances`` (``posts``: the post of each, in order).

        A model that reads a post once for all its pairs (``reads_post_once``) gets batches of whole
        posts, ``batch_size`` posts at most, so each post is encoded once; the others get
        ``batch_size`` pairs per batch."""
        assert self._re is not None
        if not self._re.model.reads_post_once:
            return self._re.iter_predictions(instances, batch_size=batch_size, progress=False, images=uploads)
        batches: list[list[RelationInstance]] = []
        for number, (_, group) in enumerate(itertools.groupby(zip(posts, instances), key=lambda pair: pair[0])):
            if number % batch_size == 0:
                batches.append([])
            batches[-1].extend(instance for _, instance in group)
        return itertools.chain.from_iterable(
            self._re.iter_predictions(batch, batch_size=len(batch), progress=False, images=uploads) for batch in batches
        )

    def _result(self, item: _Prepared, pairs: list[dict]) -> dict:
        image_relevance = _image_relevance(pairs, len(item.sizes))
        return {
            "id": item.id,
            "text": item.source.text,
            "tokens": [{"text": t.text, "start": t.start, "end": t.end} for t in item.tokens],
            "entities": item.entities,
            "relations": [pair for pair in pairs if self.include_none or pair["relation"] != NO_RELATION],
            "skipped_pairs": [{"head": head, "tail": tail} for head, tail in item.skipped],
            "images": [
                {"index": k, "width": width, "height": height, "relevance": image_relevance[k]}
                for k, (width, height) in enumerate(item.sizes)
            ],
        }


# ------------------------------------------------------------------------------ helpers


def as_post_input(post: str | Mapping | PostInput, index: int) -> PostInput:
    """A post as the pipeline takes it, from a string, a mapping or a PostInput (errors name the index)."""
    if isinstance(post, PostInput):
        return post if post.id is not None else dataclasses.replace(post, id=str(index))
    if isinstance(post, str):
        return PostInput(post, id=str(index))
    if isinstance(post, Mapping):
        unknown = set(post) - {"text", "images", "entities", "id"}
        if unknown:
            raise DataError(f"unknown keys {sorted(unknown)} (text, images, entities, id)", field=f"posts[{index}]")
        if "text" not in post:
            raise DataError("no text", field=f"posts[{index}]: text")
        images = post.get("images") or []
        if not isinstance(images, (list, tuple)):
            raise DataError("images must be a list", field=f"posts[{index}]: images")
        entities = post.get("entities")
        if entities is not None and not isinstance(entities, list):
            raise DataError("entities must be a list", field=f"posts[{index}]: entities")
        identifier = post.get("id")
        identifier = _post_id(identifier, index, f"posts[{index}]: id") if identifier is not None else str(index)
        return PostInput(post["text"], list(images), entities, identifier)
    raise DataError(f"a post is a string or a mapping, got {type(post).__name__}", field=f"posts[{index}]")


def error_record(identifier: str, error: MmieError) -> dict:
    """What ``pipe(errors="record")`` gives in place of a post it could not extract."""
    if isinstance(error, ExtractionStopped):
        kind, field_name, message = error.reason, None, error.message
    else:
        kind = "limit" if isinstance(error, LimitExceeded) else "invalid"
        field_name, message = getattr(error, "field", None), getattr(error, "message", str(error))
    return {"id": identifier, "error": {"kind": kind, "field": field_name, "message": message}}


def _raw_id(post: Any, index: int) -> str:
    """The id of a post that could not be read, for its error record (its position when unusable)."""
    identifier = post.get("id") if isinstance(post, Mapping) else getattr(post, "id", None)
    try:
        return _post_id(identifier, index)
    except DataError:
        return str(index)


def _post_id(identifier: Any, number: int, name: str = "id") -> str:
    """A post's id: a non-empty string (an integer is taken as its digits); its position when absent."""
    if identifier is None:
        return str(number)
    if isinstance(identifier, int) and not isinstance(identifier, bool):
        return str(identifier)
    if not isinstance(identifier, str) or not identifier:
        raise DataError(f"an id is a non-empty string, got {identifier!r:.40}", field=name)
    return identifier


def _checked_text(text: Any, name: str) -> str:
    """The post's text, which must be a string that is valid Unicode (no lone surrogate)."""
    if not isinstance(text, str):
        raise DataError(f"text must be a string, got {type(text).__name__}", field=name)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        raise DataError(
            f"the text holds a lone surrogate (U+{code:04X} at character {error.start}): not valid Unicode", field=name
        ) from None
    return text


def _checked(lines: Iterable[dict], stop: StopCheck, step: str) -> Iterator[dict]:
    """``lines`` with a stop check before each one: the model's next batch is computed only if allowed."""
    iterator = iter(lines)
    while True:
        stop(step)
        try:
            yield next(iterator)
        except StopIteration:
            return


def _entity(tokens: list[Token], text: str, kind: str, start: int, end: int, score: float | None, source: str) -> dict:
    """An entity over tokens ``[start, end)``: its characters, type, score and where it came from."""
    first, last = tokens[start], tokens[end - 1]
    return {
        "text": text[first.start : last.end],
        "type": kind,
        "start": first.start,
        "end": last.end,
        "tokens": [start, end],
        "score": round(score, SCORE_DIGITS) if score is not None else None,
        "source": source,
    }


def _given_entity(entity: Any, tokens: list[Token], text: str, name: str) -> dict:
    """A caller's entity ``{"start", "end", "type"}`` (character offsets) on the tokens it covers."""
    if not isinstance(entity, Mapping) or not {"start", "end", "type"} <= set(entity):
        raise DataError('an entity is {"start": char, "end": char, "type": "PER"}', field=name)
    start, end, kind = entity["start"], entity["end"], entity["type"]
    if not (isinstance(start, int) and isinstance(end, int) and isinstance(kind, str)) or not 0 <= start < end <= len(
        text
    ):
        raise DataError(f"start/end must be character offsets with 0 <= start < end <= {len(text)}", field=name)
    covered = [k for k, token in enumerate(tokens) if token.start < end and start < token.end]
    if not covered:
        raise DataError(f"characters [{start}, {end}) hold no token", field=name)
    return _entity(tokens, text, kind, covered[0], covered[-1] + 1, None, "given")


def _image_relevance(pairs: list[dict], count: int) -> list[float | None]:
    """Per image, the highest relevance any candidate pair gave it (None when no pair read it)."""
    best: list[float | None] = [None] * count
    for pair in pairs:
        for k, value in enumerate(pair.get("relevance") or []):
            if k < count:
                best[k] = value if best[k] is None else max(best[k], value)
    return best


def _describe(loaded: LoadedModel, predictor: Predictor) -> dict:
    processor = predictor.processor
    return {
        "path": str(loaded.path),
        "model": loaded.model.registry_name,
        "labels": loaded.labels,
        "reads_images": processor.reads_images,
        "image_slots": processor.image_slots,
        "regions": processor.region_source,
    }
