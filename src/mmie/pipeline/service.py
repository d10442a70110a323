"""The extraction service: FastAPI over one :class:`~mmie.pipeline.extractor.Extractor`, and its web page.

    mmie serve --ner runs/tpm_mi/model --re runs/glra/model --host 127.0.0.1 --port 8000

Endpoints: ``POST /extract`` (text + up to 4 images, as multipart uploads or base64 in JSON; never a
server path or a URL), ``GET /health``, ``GET /models``, the OpenAPI docs at ``/docs`` and the page at
``/``. Bad input gets a 4xx whose JSON says what and where, ``{"detail": ..., "field": ...}``:
413 for a body over the size limit, 415 for another content type, 422 for everything in the request
(empty or non-UTF-8 text, text too long, too many images or entities, an image too large, truncated
or not an image, wrong field types, JSON nested too deeply).

What one request may cost is bounded (:class:`ServiceLimits`, ``docs/extraction.md``): the bodies
waiting or in progress together (past it: 503 with ``Retry-After``, before the body is kept), the
entities and candidate pairs of a post, and a deadline from the request's arrival (503 when it
passes while the request waits, 504 while it runs). The work stops within one model batch when the
deadline passes or the client disconnects. Images are decoded one at a time, when their request's
turn comes, and downscaled to what the vision encoders read; a second after the last request of a
burst, the memory it freed is handed back to the system.

The models are loaded once. By default (``mode="batch"``) the requests waiting are gathered into
micro-batches run through the Extractor's batched call in one worker thread
(:class:`~mmie.pipeline.batching.MicroBatcher`: ``max_batch`` posts, the first waiting at most
``max_wait_ms``, at most ``max_queue`` waiting, past which a request gets 503 with Retry-After);
``mode="one-at-a-time"`` runs one extraction at a time in arrival order
(:class:`~mmie.pipeline.batching.OneAtATime`). Either way the waiting is asynchronous, so ``/health``
answers meanwhile and a waiting request whose client left or whose deadline passed leaves the queue
at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import ctypes
import ctypes.util
import gc
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from mmie._version import __version__
from mmie.data.schema import MAX_IMAGES
from mmie.errors import DataError, MmieError
from mmie.pipeline.batching import Job, MicroBatcher, OneAtATime, QueueFull
from mmie.pipeline.extractor import Extractor
from mmie.pipeline.limits import ExtractionLimits, ExtractionStopped

STATIC = resources.files("mmie.pipeline") / "static"
POLL_SECONDS = 0.1  # how often a request's handler looks for a disconnected client or a passed deadline


@dataclass(frozen=True)
class ServiceLimits:
    """What one request may hold and cost; anything past these is refused with a 4xx/503 naming the limit."""

    max_body_bytes: int = 16 * 2**20
    max_images: int = MAX_IMAGES
    max_image_pixels: int = 4096 * 4096
    max_text_chars: int = 2000
    max_entities: int = ExtractionLimits.max_entities
    max_pairs: int = ExtractionLimits.max_pairs
    timeout_s: float = 30.0  # from arrival: waiting + work
    max_pending_bytes: int = 64 * 2**20  # request bodies waiting or in progress, together
    mode: Literal["batch", "one-at-a-time"] = "batch"  # how the extractions run (mmie.pipeline.batching)
    max_batch: int = 16  # batch: posts per micro-batch
    max_wait_ms: float = 10.0  # batch: how long the first request of a micro-batch waits for others
    max_queue: int = 32  # batch: requests waiting for a micro-batch; past it, 503 with Retry-After

    def __post_init__(self) -> None:
        if self.mode not in ("batch", "one-at-a-time"):
            raise MmieError(f"service mode: 'batch' or 'one-at-a-time', got {self.mode!r}")
        if self.max_batch < 1 or self.max_queue < 1 or self.max_wait_ms < 0:
            raise MmieError(
                f"service limits: max_batch and max_queue must be >= 1 and max_wait_ms >= 0, got {self.max_batch}, "
                f"{self.max_queue} and {self.max_wait_ms}"
            )

    def extraction_limits(self) -> ExtractionLimits:
        return ExtractionLimits(max_entities=self.max_entities, max_pairs=self.max_pairs, timeout_s=self.timeout_s)


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


# ------------------------------------------------------------------------------ admission and the queue


class _Admission:
    """The bytes of the request bodies admitted and not yet answered; a request that would go past
    ``limit`` is refused (one request alone is always admitted, as the body limit bounds it)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.reserved = 0

    def reserve(self, size: int) -> bool:
        if self.reserved and self.reserved + size > self.limit:
            return False
        self.reserved += size
        return True

    def release(self, size: int) -> None:
        self.reserved -= size


def release_freed_memory() -> None:
    """Free the garbage a burst leaves (request bodies held by exception frames are cyclic garbage) and
    give the heap's free pages back to the system, which glibc keeps otherwise (``malloc_trim``; a
    no-op without glibc). A full collection takes about 0.2 s with the demo models loaded."""
    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:
        pass


class _WhenIdle:
    """Runs :func:`release_freed_memory` once the service has been idle (no request body pending) for
    ``delay`` seconds: after a burst, not between the requests of one."""

    def __init__(self, admission: _Admission, delay: float = 1.0) -> None:
        self.admission = admission
        self.delay = delay
        self._timer: asyncio.TimerHandle | None = None
        self.releases = 0

    def request_done(self) -> None:
        if self.admission.reserved:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.delay, self._fire)

    def _fire(self) -> None:
        from starlette.concurrency import run_in_threadpool

        self._timer = None
        if not self.admission.reserved:
            self.releases += 1
            asyncio.ensure_future(run_in_threadpool(release_freed_memory))


@dataclass
class _Counters:
    completed: int = 0
    refused_busy: int = 0  # 503: no room for the body or in the queue, or the deadline passed while waiting
    timed_out: int = 0  # 504: the deadline passed while the extraction ran
    cancelled: int = 0  # the client disconnected before the answer


# ------------------------------------------------------------------------------ the app


def create_app(extractor: Extractor, limits: ServiceLimits | None = None) -> FastAPI:
    """The service app over a loaded extractor (whose image and work limits it sets from ``limits``)."""
    limits = limits or ServiceLimits()
    extractor = copy.copy(extractor)  # the service's limits, without changing the caller's extractor
    extractor.max_pixels = limits.max_image_pixels
    extractor.limits = limits.extraction_limits()
    admission = _Admission(limits.max_pending_bytes)
    idle = _WhenIdle(admission)
    runner: OneAtATime | MicroBatcher = (
        OneAtATime(extractor)
        if limits.mode == "one-at-a-time"
        else MicroBatcher(extractor, limits.max_batch, limits.max_wait_ms, limits.max_queue, limits.timeout_s)
    )
    counters = _Counters()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        runner.close()

    app = FastAPI(
        title="mmie extraction service",
        version=__version__,
        description="Entities and relations of a social-media post with up to 4 images. The page is at /.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestRefused)
    async def refused(_: Request, error: RequestRefused) -> JSONResponse:
        return JSONResponse(
            {"detail": error.message, "field": error.field}, status_code=error.status, headers=error.headers
        )

    @app.get("/health")
    def health() -> dict:
        return {
            "status": "ok",
            "version": __version__,
            "extractions": {
                "running": runner.running,
                "waiting": runner.waiting,
                "pending_body_bytes": admission.reserved,
                **asdict(counters),
                "memory_releases": idle.releases,
            },
            "runner": runner.stats(),
        }

    @app.get("/models")
    def models() -> dict:
        return {"models": extractor.describe(), "limits": asdict(limits)}

    @app.post("/extract", openapi_extra=_EXTRACT_OPENAPI)
    async def extract(request: Request) -> JSONResponse:
        arrival = time.monotonic()
        content_type = request.headers.get("content-type", "")
        size = _declared_size(request, limits.max_body_bytes)
        if runner.full():  # refused before the body is read, as when it could not be queued
            counters.refused_busy += 1
            await _drain(request, limits.max_body_bytes)
            idle.request_done()
            raise _queue_full(runner)
        if not admission.reserve(size):
            counters.refused_busy += 1
            await _drain(request, limits.max_body_bytes)  # read and drop: the client gets the 503, not a reset
            idle.request_done()
            why = (
                f"{admission.reserved} bytes of requests are waiting or in progress (limit {limits.max_pending_bytes})"
            )
            raise _busy(runner, why, "body")
        names: list[tuple[str, Any]] = []  # the images' names for error messages (with their file names)
        try:
            form = await _read_form(request, content_type, limits)
            text, images, entities = _validate(form, limits)
            names = [(name, None) for name, _ in form.images]
            del form  # the base64 strings: only the decoded bytes wait for the job
            job = Job(text, images, entities, deadline=arrival + limits.timeout_s)
            result = await _run(request, runner, job, limits, counters)
        except DataError as error:
            raise RequestRefused(422, error.message, _field_name(error.field, names)) from None
        finally:
            admission.release(size)
            idle.request_done()
        counters.completed += 1
        return JSONResponse(result)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def _busy(runner: OneAtATime | MicroBatcher, why: str, field: str) -> RequestRefused:
    """A 503 saying why, with the seconds after which the runner may have room."""
    return RequestRefused(
        503, f"the service is busy: {why}; retry later", field, {"Retry-After": str(runner.retry_after())}
    )


def _queue_full(runner: OneAtATime | MicroBatcher) -> RequestRefused:
    return _busy(runner, f"{runner.waiting} requests are waiting for the models, as many as its queue holds", "queue")


async def _run(
    request: Request, runner: OneAtATime | MicroBatcher, job: Job, limits: ServiceLimits, counters: _Counters
) -> dict:
    """Run ``job`` on ``runner``, stopping it when the client disconnects or the deadline passes."""
    task = asyncio.ensure_future(runner.run(job))
    reason = None
    while True:
        done, _ = await asyncio.wait({task}, timeout=POLL_SECONDS)
        if done:
            break
        if reason is not None:
            continue
        if await request.is_disconnected():
            reason = "disconnected"
        elif time.monotonic() > job.deadline:
            reason = "deadline"
        else:
            continue
        if not job.started:  # still waiting: leave the queue now
            task.cancel()
            break
        if reason == "disconnected":  # the deadline the extractor checks itself
            job.cancel.set()
    try:
        return await task
    except QueueFull:
        counters.refused_busy += 1
        raise _queue_full(runner) from None
    except asyncio.CancelledError:
        if reason is None:  # the handler itself is cancelled (the server stops)
            raise
        if reason == "disconnected":
            counters.cancelled += 1
            raise RequestRefused(499, "the client disconnected", None) from None
        counters.refused_busy += 1
        why = f"the request waited its whole deadline of {limits.timeout_s:g} s for earlier requests"
        raise _busy(runner, why, "deadline") from None
    except ExtractionStopped as stopped:
        if stopped.reason == "cancelled":
            counters.cancelled += 1
            raise RequestRefused(499, "the client disconnected", None) from None
        counters.timed_out += 1
        raise RequestRefused(
            504, f"{stopped.message}; send fewer entities or images, or raise --timeout", "deadline"
        ) from None


def _declared_size(request: Request, limit: int) -> int:
    """The body's declared size (413 past ``limit``); the limit itself when undeclared (chunked)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise RequestRefused(413, f"the request body is over the limit of {limit} bytes", "body")
        return int(declared)
    return limit


async def _drain(request: Request, limit: int) -> None:
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
            raise RequestRefused(413, f"the request body is over the limit of {limit} bytes", "body")
        if chunk:
            yield chunk


async def _read_form(request: Request, content_type: str, limits: ServiceLimits) -> _Form:
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
    await _drain(request, limits.max_body_bytes)
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
    try:
        form.text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(form.text[error.start])
        raise RequestRefused(
            422, f"the text holds a lone surrogate (U+{code:04X} at character {error.start}): not valid Unicode", "text"
        ) from None
    if form.entities is not None and not isinstance(form.entities, list):
        raise RequestRefused(422, "entities must be a list of {start, end, type}", "entities")
    if form.entities is not None and len(form.entities) > limits.max_entities:
        raise RequestRefused(
            422, f"{len(form.entities)} entities, over the limit of {limits.max_entities} per post", "entities"
        )
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


def _field_name(field: str | None, images: list[tuple[str, Any]]) -> str | None:
    """The extractor names images ``images[k]``; the service adds the upload's file name when it has one."""
    if field and field.startswith("images[") and images:
        index = field[len("images[") : field.index("]")]
        if index.isdigit() and int(index) < len(images):
            return images[int(index)][0]
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
        "503": {
            "description": "busy: no room for the body or in the queue, or the deadline passed while waiting (Retry-After)"
        },
        "504": {"description": "the deadline passed while the extraction ran"},
    },
}


def serve(extractor: Extractor, host: str = "127.0.0.1", port: int = 8000, limits: ServiceLimits | None = None) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(extractor, limits), host=host, port=port, log_level="info")
