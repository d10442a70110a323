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

An Extractor keeps no per-request state: the decoded images of a call travel with that call, so one
Extractor serves calls from several threads at once (the feature caches it shares are thread-safe).
A post without an id gets its position in the call (``"0"`` for a single post).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from mmie.data.images import InMemoryImages, decode_image_bytes
from mmie.data.schema import MAX_IMAGES, NO_RELATION, Post, RelationInstance, Span, relation_argument_types
from mmie.data.tags import bio_entities
from mmie.errors import DataError, MmieError
from mmie.inference.loading import LoadedModel, load_model
from mmie.inference.predict import Predictor
from mmie.pipeline.tokenize import Token, tokenize

ImageInput = str | Path | bytes | Image.Image
SCORE_DIGITS = 6


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
    pictures: list[Image.Image]
    entities: list[dict] = field(default_factory=list)


class Extractor:
    """Entities (NER model, or given) and relations (RE model) of raw posts; either model may be absent."""

    def __init__(
        self,
        ner: LoadedModel | None = None,
        re: LoadedModel | None = None,
        max_pixels: int | None = None,
        include_none: bool = False,
    ) -> None:
        """``max_pixels``: refuse larger images (None: Pillow's bomb guard only); ``include_none``: also list
        the candidate pairs classified ``None`` (no relation) in ``relations``."""
        if ner is None and re is None:
            raise MmieError("an Extractor needs an NER model, an RE model or both")
        if ner is not None and ner.task != "ner":
            raise MmieError(f"{ner.path}: the ner model is a {ner.task} model")
        if re is not None and re.task != "re":
            raise MmieError(f"{re.path}: the re model is a {re.task} model")
        self.ner, self.re = ner, re
        self.max_pixels = max_pixels
        self.include_none = include_none
        caches: dict = {}  # one in-memory feature cache per vision encoder: an upload is encoded once
        self._ner = (
            Predictor(ner.model, ner.processor.for_uploads(caches), with_tag_scores=True) if ner is not None else None
        )
        self._re = Predictor(re.model, re.processor.for_uploads(caches)) if re is not None else None
        self._typed_labels = self._label_type_table()

    @classmethod
    def from_pretrained(
        cls, ner: str | Path | None = None, re: str | Path | None = None, device: str | None = None, **options: Any
    ) -> Extractor:
        """Load the model folders (``<run>/model``) once; offline, nothing is downloaded."""
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
    ) -> dict:
        """The extraction of one post (see ``docs/extraction.md`` for the output schema)."""
        return next(iter(self.pipe([PostInput(text, list(images or []), entities, id)], batch_size=1)))

    def pipe(
        self, posts: Iterable[str | Mapping | PostInput], batch_size: int = 32, progress: bool = False
    ) -> Iterator[dict]:
        """Extractions of many posts, in order, ``batch_size`` posts per model batch.

        A post is a string, a :class:`PostInput` or a mapping with ``text`` and optionally ``images``,
        ``entities`` and ``id``.
        """
        from tqdm.auto import tqdm

        bar = tqdm(unit="post", desc="extract", disable=not progress, dynamic_ncols=True)
        try:
            chunk: list[PostInput] = []
            for index, post in enumerate(posts):
                chunk.append(as_post_input(post, index))
                if len(chunk) == batch_size:
                    yield from self._extract(chunk, batch_size)
                    bar.update(len(chunk))
                    chunk = []
            if chunk:
                yield from self._extract(chunk, batch_size)
                bar.update(len(chunk))
        finally:
            bar.close()

    def describe(self) -> dict:
        """The loaded models: folder, registry name, labels, image use (``GET /models``)."""
        return {
            task: _describe(loaded, predictor)
            for task, loaded, predictor in (("ner", self.ner, self._ner), ("re", self.re, self._re))
            if loaded is not None and predictor is not None  # a predictor exactly for each loaded model
        }

    # ------------------------------------------------------------------------------ steps

    def _extract(self, inputs: list[PostInput], batch_size: int) -> list[dict]:
        uploads = InMemoryImages()  # this call's pictures, by reference; gone with the call
        prepared = [self._prepare(post, number, uploads) for number, post in enumerate(inputs)]
        self._find_entities(prepared, batch_size, uploads)
        relations = self._classify_pairs(prepared, batch_size, uploads)
        return [self._result(item, relations.get(index, [])) for index, item in enumerate(prepared)]

    def _prepare(self, source: PostInput, number: int, uploads: InMemoryImages) -> _Prepared:
        where = f"post {source.id}: " if source.id is not None else ""
        if not isinstance(source.text, str):
            raise DataError(f"text must be a string, got {type(source.text).__name__}", field=f"{where}text")
        tokens = tokenize(source.text)
        if not tokens:
            raise DataError("the text has no tokens (empty, blank or only URLs)", field=f"{where}text")
        if len(source.images) > MAX_IMAGES:
            raise DataError(f"{len(source.images)} images; a post has at most {MAX_IMAGES}", field=f"{where}images")
        pictures = [self._decode(image, f"{where}images[{k}]") for k, image in enumerate(source.images)]
        refs = [f"post-{number}-image-{k}" for k in range(len(pictures))]
        uploads.images.update(zip(refs, pictures))
        post = Post(id=source.id or str(number), tokens=[token.text for token in tokens], images=refs)
        item = _Prepared(source, post.id, tokens, post, pictures)
        if source.entities is not None:
            item.entities = [
                _given_entity(e, tokens, source.text, f"{where}entities[{i}]") for i, e in enumerate(source.entities)
            ]
        elif self._ner is None:
            raise DataError("no NER model is loaded: give the post's entities", field=f"{where}entities")
        return item

    def _decode(self, image: ImageInput, name: str) -> Image.Image:
        if isinstance(image, Image.Image):
            width, height = image.size
            if self.max_pixels is not None and width * height > self.max_pixels:
                raise DataError(f"too large image: {width} x {height} pixels, more than {self.max_pixels}", field=name)
            return image.convert("RGB")
        if isinstance(image, (str, Path)):  # the Python API and the CLI only: the service never passes paths
            try:
                data = Path(image).read_bytes()
            except OSError as error:
                raise DataError(f"cannot read the image: {error.strerror or error}", path=image, field=name) from None
            return decode_image_bytes(data, f"{name} ({image})", self.max_pixels)
        if isinstance(image, (bytes, bytearray, memoryview)):
            return decode_image_bytes(bytes(image), name, self.max_pixels)
        raise DataError(f"an image is a file path, bytes or a PIL image, got {type(image).__name__}", field=name)

    def _find_entities(self, prepared: list[_Prepared], batch_size: int, uploads: InMemoryImages) -> None:
        todo = [item for item in prepared if item.source.entities is None]
        if not todo:
            return
        assert self._ner is not None
        posts = [item.post for item in todo]
        lines = self._ner.iter_predictions(posts, batch_size=batch_size, progress=False, images=uploads)
        for item, line in zip(todo, lines):
            for kind, start, end in bio_entities(line["tags"]):
                score = sum(line["tag_scores"][start:end]) / (end - start)
                item.entities.append(_entity(item.tokens, item.source.text, kind, start, end, score, "model"))

    def _candidate_pairs(self, entities: list[dict]) -> list[tuple[int, int]]:
        return [
            (h, t)
            for h, t in itertools.permutations(range(len(entities)), 2)
            if self._allowed_labels(entities[h]["type"], entities[t]["type"])
        ]

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
        self, prepared: list[_Prepared], batch_size: int, uploads: InMemoryImages
    ) -> dict[int, list[dict]]:
        if self._re is None:
            return {}
        instances, owners = [], []
        for index, item in enumerate(prepared):
            for head, tail in self._candidate_pairs(item.entities):
                pair = (item.entities[head], item.entities[tail])
                spans = [Span(entity["tokens"][0], entity["tokens"][1], entity["text"]) for entity in pair]
                instances.append(RelationInstance(item.post, spans[0], spans[1]))
                owners.append((index, head, tail))
        found: dict[int, list[dict]] = {}
        lines = self._re.iter_predictions(instances, batch_size=batch_size, progress=False, images=uploads)
        for (index, head, tail), line in zip(owners, lines):
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

    def _result(self, item: _Prepared, pairs: list[dict]) -> dict:
        image_relevance = _image_relevance(pairs, len(item.pictures))
        return {
            "id": item.id,
            "text": item.source.text,
            "tokens": [{"text": t.text, "start": t.start, "end": t.end} for t in item.tokens],
            "entities": item.entities,
            "relations": [pair for pair in pairs if self.include_none or pair["relation"] != NO_RELATION],
            "images": [
                {"index": k, "width": picture.width, "height": picture.height, "relevance": image_relevance[k]}
                for k, picture in enumerate(item.pictures)
            ],
        }


# ------------------------------------------------------------------------------ helpers


def as_post_input(post: str | Mapping | PostInput, index: int) -> PostInput:
    """A post as the pipeline takes it, from a string, a mapping or a PostInput (errors name the index)."""
    if isinstance(post, PostInput):
        return post
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
        return PostInput(post["text"], list(images), entities, str(identifier if identifier is not None else index))
    raise DataError(f"a post is a string or a mapping, got {type(post).__name__}", field=f"posts[{index}]")


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
