"""The extraction service: FastAPI over one :class:`~mmie.pipeline.extractor.Extractor`, and its web page.

    mmie serve --ner runs/tpm_mi/model --re runs/glra/model --host 127.0.0.1 --port 8000

Endpoints: ``POST /extract`` (text + up to 4 images, as multipart uploads or base64 in JSON; never a
server path or a URL), ``GET /health``, ``GET /models``, the OpenAPI docs at ``/docs`` and the page at
``/``. Bad input gets a 4xx whose JSON says what and where, ``{"detail": ..., "field": ...}``:
413 for a body over the size limit, 415 for another content type, 422 for everything in the request
(empty or non-UTF-8 text, text too long, too many images, an image too large, truncated or not an
image, wrong field types). The models are loaded once; one lock runs one extraction at a time (the
Extractor itself is safe from several threads, but two cores gain nothing from two at once), so
answers are exactly the Python API's.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from mmie._version import __version__
from mmie.data.schema import MAX_IMAGES
from mmie.errors import DataError
from mmie.pipeline.extractor import Extractor

STATIC = resources.files("mmie.pipeline") / "static"


@dataclass(frozen=True)
class ServiceLimits:
    """What one request may hold; anything past these is refused with a 4xx naming the limit."""

    max_body_bytes: int = 16 * 2**20
    max_images: int = MAX_IMAGES
    max_image_pixels: int = 4096 * 4096
    max_text_chars: int = 2000


class RequestRefused(Exception):
    """A request the service refuses: the HTTP status, a message and the field it is about."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


@dataclass
class _Form:
    text: Any = None
    images: list[tuple[str, Any]] | None = None  # (name for errors, raw bytes or the base64 value)
    entities: Any = None


def create_app(extractor: Extractor, limits: ServiceLimits | None = None) -> FastAPI:
    """The service app over a loaded extractor (the images it decodes obey ``limits.max_image_pixels``)."""
    limits = limits or ServiceLimits()
    extractor.max_pixels = limits.max_image_pixels
    lock = threading.Lock()
    app = FastAPI(
        title="mmie extraction service",
        version=__version__,
        description="Entities and relations of a social-media post with up to 4 images. The page is at /.",
    )

    @app.exception_handler(RequestRefused)
    async def refused(_: Request, error: RequestRefused) -> JSONResponse:
        return JSONResponse({"detail": error.message, "field": error.field}, status_code=error.status)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    @app.get("/models")
    def models() -> dict:
        return {"models": extractor.describe(), "limits": asdict(limits)}

    @app.post("/extract", openapi_extra=_EXTRACT_OPENAPI)
    async def extract(request: Request) -> JSONResponse:
        body = await _read_body(request, limits.max_body_bytes)
        form = _parse(request.headers.get("content-type", ""), body, limits)
        text, images, entities = _validate(form, limits)
        try:
            # A plain lock in a worker thread: the event loop keeps serving /health meanwhile.
            from starlette.concurrency import run_in_threadpool

            result = await run_in_threadpool(_locked, lock, extractor, text, images, entities)
        except DataError as error:
            raise RequestRefused(422, error.message, _field_name(error.field, form)) from None
        return JSONResponse(result)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def _locked(lock: threading.Lock, extractor: Extractor, text: str, images: list[bytes], entities: Any) -> dict:
    with lock:
        return extractor(text, images=images, entities=entities)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is past ``limit`` (declared or streamed)."""
    declared = request.headers.get("content-length")
    too_large = RequestRefused(413, f"the request body is over the limit of {limit} bytes", "body")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(content_type: str, body: bytes, limits: ServiceLimits) -> _Form:
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        return _parse_json(body)
    if kind == "multipart/form-data":
        return _parse_multipart(content_type, body, limits)
    raise RequestRefused(415, "send multipart/form-data (text, images) or application/json", "content-type")


def _parse_json(body: bytes) -> _Form:
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise RequestRefused(422, f"the body is not UTF-8 (byte {error.start})", "body") from None
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


def _parse_multipart(content_type: str, body: bytes, limits: ServiceLimits) -> _Form:
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import create_form_parser

    images: list[tuple[str, Any]] = []  # the form's own list, which on_file fills
    form = _Form(images=images)
    texts: list[bytes] = []

    def on_field(field: Any) -> None:
        name = (field.field_name or b"").decode("latin-1")
        if name == "text":
            texts.append(field.value or b"")
        elif name == "entities":
            form.entities = field.value or b""
        else:
            raise RequestRefused(422, f"unknown form field {name!r} (text, images, entities)", name)

    def on_file(file: Any) -> None:
        name = (file.field_name or b"").decode("latin-1")
        if name == "text":  # a browser may send a pasted text file as the text part
            texts.append(file.file_object.getvalue())
            return
        if name not in ("images", "image"):
            raise RequestRefused(422, f"unknown file field {name!r} (images)", name)
        filename = (file.file_name or b"").decode("utf-8", "replace")
        label = f"images[{len(images)}]" + (f" ({filename})" if filename else "")
        images.append((label, file.file_object.getvalue()))

    headers = {"Content-Type": content_type.encode("latin-1")}
    try:
        parser = create_form_parser(
            headers, on_field, on_file, config={"MAX_MEMORY_FILE_SIZE": limits.max_body_bytes + 1}
        )
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError) as error:
        raise RequestRefused(422, f"malformed multipart body: {error}", "body") from None
    if len(texts) > 1:
        raise RequestRefused(422, "give one text", "text")
    if texts:
        try:
            form.text = texts[0].decode("utf-8")
        except UnicodeDecodeError as error:
            raise RequestRefused(422, f"the text is not UTF-8 (byte {error.start})", "text") from None
    if isinstance(form.entities, bytes):
        try:
            form.entities = json.loads(form.entities.decode("utf-8"))
        except ValueError:
            raise RequestRefused(422, "entities must be a JSON list of {start, end, type}", "entities") from None
    return form


def _validate(form: _Form, limits: ServiceLimits) -> tuple[str, list[bytes], Any]:
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
    if form.entities is not None and not isinstance(form.entities, list):
        raise RequestRefused(422, "entities must be a list of {start, end, type}", "entities")
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


def _field_name(field: str | None, form: _Form) -> str | None:
    """The extractor names images ``images[k]``; the service adds the upload's file name when it has one."""
    if field and field.startswith("images[") and form.images:
        index = field[len("images[") : field.index("]")]
        if index.isdigit() and int(index) < len(form.images):
            return form.images[int(index)][0]
    return field


_EXTRACT_OPENAPI: dict = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {
                        "text": {"type": "string", "description": "the post's text (UTF-8)"},
                        "images": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "maxItems": MAX_IMAGES,
                            "description": "0..4 image files, in order",
                        },
                        "entities": {"type": "string", "description": "optional JSON list of {start, end, type}"},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {
                        "text": {"type": "string"},
                        "images": {
                            "type": "array",
                            "items": {"type": "string", "format": "byte"},
                            "maxItems": MAX_IMAGES,
                            "description": "base64 image bytes (data: URLs too)",
                        },
                        "entities": {"type": "array", "items": {"type": "object"}},
                    },
                }
            },
        },
    },
    "responses": {
        "200": {"description": "the extraction (schema in docs/extraction.md)"},
        "413": {"description": "body over the size limit"},
        "415": {"description": "neither multipart/form-data nor application/json"},
        "422": {"description": "bad input: {detail, field}"},
    },
}


def serve(extractor: Extractor, host: str = "127.0.0.1", port: int = 8000, limits: ServiceLimits | None = None) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(extractor, limits), host=host, port=port, log_level="info")
