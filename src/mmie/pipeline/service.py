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
import copy
import ctypes
import ctypes.util
import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from mmie._version import __version__
from mmie.data.schema import MAX_IMAGES
from mmie.errors import DataError
from mmie.pipeline.batching import Job, MicroBatcher, OneAtATime, QueueFull
from mmie.pipeline.extractor import Extractor
from mmie.pipeline.limits import ExtractionStopped, ServiceLimits
from mmie.pipeline.service_requests import RequestRefused, declared_size, drain, field_name, read_form, validate

STATIC = resources.files("mmie.pipeline") / "static"
POLL_SECONDS = 0.1  # how often a request's handler looks for a disconnected client or a passed deadline


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
        size = declared_size(request, limits.max_body_bytes)
        if runner.full():  # refused before the body is read, as when it could not be queued
            counters.refused_busy += 1
            await drain(request, limits.max_body_bytes)
            idle.request_done()
            raise _queue_full(runner)
        if not admission.reserve(size):
            counters.refused_busy += 1
            await drain(request, limits.max_body_bytes)  # read and drop: the client gets the 503, not a reset
            idle.request_done()
            why = (
                f"{admission.reserved} bytes of requests are waiting or in progress (limit {limits.max_pending_bytes})"
            )
            raise _busy(runner, why, "body")
        names: list[tuple[str, Any]] = []  # the images' names for error messages (with their file names)
        try:
            form = await read_form(request, content_type, limits)
            text, images, entities = validate(form, limits)
            names = [(name, None) for name, _ in form.images]
            del form  # the base64 strings: only the decoded bytes wait for the job
            job = Job(text, images, entities, deadline=arrival + limits.timeout_s)
            result = await _run(request, runner, job, limits, counters)
        except DataError as error:
            raise RequestRefused(422, error.message, field_name(error.field, names)) from None
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
