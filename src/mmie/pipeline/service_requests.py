"""How the service reads a request: its body streamed in under the size limit, its fields parsed
(multipart/form-data or JSON, base64 images), checked against :class:`~mmie.pipeline.limits.ServiceLimits`,
and every refusal a :class:`RequestRefused` naming the HTTP status and the field."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from mmie.pipeline.limits import ServiceLimits


class RequestRefused(Exception):
    """A request the service refuses: the HTTP status, a message and the field it is about."""

    def __init__(
        self, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


@dataclass
class _Form:
    text: Any = None
    images: list[tuple[str, Any]] = field(default_factory=list)  # (name for errors, raw bytes or base64 value)
    entities: Any = None


def _too_large(limit: int) -> RequestRefused:
    return RequestRefused(413, f"the request body is over the limit of {limit} bytes", "body")


def declared_size(request: Request, limit: int) -> int:
    """The body's declared size (413 past ``limit``); the limit itself when undeclared (chunked)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise _too_large(limit)
        return int(declared)
    return limit


async def drain(request: Request, limit: int) -> None:
    """Read and drop the body (up to ``limit`` bytes), so that an early answer reaches the client."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            break


async def _chunks(request: Request, limit: int):
    """The body's chunks, refused with 413 as soon as it is past ``limit``."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        if chunk:
            yield chunk


async def read_form(request: Request, content_type: str, limits: ServiceLimits) -> _Form:
    """The request's fields, parsed as the body streams in (multipart parts are kept once, not copied)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        body = bytearray()
        async for chunk in _chunks(request, limits.max_body_bytes):
            body += chunk
        return _parse_json(body)
    if kind == "multipart/form-data":
        collector = _MultipartForm(content_type, limits)
        async for chunk in _chunks(request, limits.max_body_bytes):
            collector.write(chunk)
        return collector.finish()
    await drain(request, limits.max_body_bytes)
    raise RequestRefused(415, "send multipart/form-data (text, images) or application/json", "content-type")


def _parse_json(body: bytes | bytearray) -> _Form:
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise RequestRefused(422, f"the body is not UTF-8 (byte {error.start})", "body") from None
    except RecursionError:
        raise RequestRefused(422, "the JSON is nested too deeply (entities is a flat list)", "body") from None
    except ValueError as error:
        raise RequestRefused(422, f"the body is not valid JSON: {error}", "body") from None
    if not isinstance(payload, dict):
        raise RequestRefused(422, 'the body is a JSON object {"text": ..., "images": [base64, ...]}', "body")
    unknown = set(payload) - {"text", "images", "entities"}
    if unknown:
        raise RequestRefused(422, f"unknown fields {sorted(unknown)} (text, images, entities)", sorted(unknown)[0])
    images = payload.get("images", [])
    if not isinstance(images, list):
        raise RequestRefused(422, "images must be a list of base64 strings", "images")
    return _Form(
        payload.get("text"), [(f"images[{k}]", value) for k, value in enumerate(images)], payload.get("entities")
    )


class _MultipartForm:
    """A multipart/form-data body parsed as it streams in: ``text``, ``images`` (files, or a plain field
    holding the image's bytes), ``entities``. Each part's bytes are kept once; an unknown field or a
    fifth image is refused when its headers arrive, before its data is kept."""

    FIELDS = ("text", "images", "image", "entities")

    def __init__(self, content_type: str, limits: ServiceLimits) -> None:
        from python_multipart.multipart import MultipartParser, parse_options_header

        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if not boundary:
            raise RequestRefused(422, "malformed multipart body: no boundary in the content type", "body")
        self.limits = limits
        self.form = _Form()
        self.texts: list[bytes] = []
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._data = bytearray()
        self._name = ""
        self._filename: str | None = None
        self.ended = False
        callbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": lambda data, start, end: self._data.extend(data[start:end]),
            "on_part_end": self._part_end,
            "on_end": self._end,
        }
        try:
            self.parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        except Exception as error:  # a boundary the parser refuses (too long)
            raise RequestRefused(422, f"malformed multipart body: {error}", "body") from None

    def write(self, chunk: bytes) -> None:
        from python_multipart.exceptions import FormParserError

        try:
            self.parser.write(chunk)
        except (FormParserError, ValueError) as error:
            raise RequestRefused(422, f"malformed multipart body: {error}", "body") from None

    def finish(self) -> _Form:
        if not self.ended:
            raise RequestRefused(422, "malformed multipart body: it ends before its closing boundary", "body")
        if len(self.texts) > 1:
            raise RequestRefused(422, "give one text", "text")
        if self.texts:
            try:
                self.form.text = self.texts[0].decode("utf-8")
            except UnicodeDecodeError as error:
                raise RequestRefused(422, f"the text is not UTF-8 (byte {error.start})", "text") from None
        if isinstance(self.form.entities, bytes):
            self.form.entities = _entities_json(self.form.entities)
        return self.form

    def _part_begin(self) -> None:
        self._disposition, self._data = b"", bytearray()

    def _header_end(self) -> None:
        if bytes(self._header_name).strip().lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name, self._header_value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("latin-1")
        filename = options.get(b"filename")
        self._filename = filename.decode("utf-8", "replace") if filename is not None else None
        if self._name not in self.FIELDS:
            raise RequestRefused(422, f"unknown form field {self._name!r} (text, images, entities)", self._name)
        if self._name in ("images", "image") and len(self.form.images) >= self.limits.max_images:
            raise RequestRefused(
                422, f"{len(self.form.images) + 1} images; a post has at most {self.limits.max_images}", "images"
            )

    def _part_end(self) -> None:
        data, self._data = bytes(self._data), bytearray()
        if self._name == "text":  # a browser may send a pasted text file as the text part
            self.texts.append(data)
        elif self._name == "entities":
            self.form.entities = data
        else:
            label = f"images[{len(self.form.images)}]" + (f" ({self._filename})" if self._filename else "")
            self.form.images.append((label, data))

    def _end(self) -> None:
        self.ended = True


def _entities_json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise RequestRefused(
            422, "entities is nested too deeply (a flat list of {start, end, type})", "entities"
        ) from None
    except ValueError:
        raise RequestRefused(422, "entities must be a JSON list of {start, end, type}", "entities") from None


def validate(form: _Form, limits: ServiceLimits) -> tuple[str, list[bytes], Any]:
    if form.text is None:
        raise RequestRefused(422, "no text", "text")
    if not isinstance(form.text, str):
        raise RequestRefused(422, f"text must be a string, got {type(form.text).__name__}", "text")
    if not form.text.strip():
        raise RequestRefused(422, "the text is empty", "text")
    if len(form.text) > limits.max_text_chars:
        raise RequestRefused(
            422, f"the text has {len(form.text)} characters, over the limit of {limits.max_text_chars}", "text"
        )
    try:
        form.text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(form.text[error.start])
        raise RequestRefused(
            422, f"the text holds a lone surrogate (U+{code:04X} at character {error.start}): not valid Unicode", "text"
        ) from None
    if form.entities is not None and not isinstance(form.entities, list):
        raise RequestRefused(422, "entities must be a list of {start, end, type}", "entities")
    if form.entities is not None and (refusal := limits.extraction_limits().too_many_entities(len(form.entities))):
        raise RequestRefused(422, refusal, "entities")
    images = form.images or []
    if len(images) > limits.max_images:
        raise RequestRefused(422, f"{len(images)} images; a post has at most {limits.max_images}", "images")
    decoded = []
    for name, value in images:
        if isinstance(value, bytes):
            decoded.append(value)
            continue
        if not isinstance(value, str):
            raise RequestRefused(422, f"an image is a base64 string, got {type(value).__name__}", name)
        try:
            decoded.append(base64.b64decode(_strip_data_url(value), validate=True))
        except (binascii.Error, ValueError):
            raise RequestRefused(422, "not valid base64", name) from None
    return form.text, decoded, form.entities


def _strip_data_url(value: str) -> str:
    """``data:image/png;base64,AAAA`` (what a browser's FileReader gives) -> ``AAAA``."""
    return value.split(",", 1)[1] if value.startswith("data:") and "," in value else value


def field_name(field: str | None, images: list[tuple[str, Any]]) -> str | None:
    """The extractor names images ``images[k]``; the service adds the upload's file name when it has one."""
    if field and field.startswith("images[") and images:
        index = field[len("images[") : field.index("]")]
        if index.isdigit() and int(index) < len(images):
            return images[int(index)][0]
    return field
