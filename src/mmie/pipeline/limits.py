"""What one extraction may cost, and how a running one is stopped.

:class:`ExtractionLimits` bounds the work of one post: the entities a caller may give, the candidate
pairs the RE model classifies (the pairs past the limit are listed in the result's ``skipped_pairs``,
never silently dropped) and the time it may take. The Python API, ``mmie extract`` and ``mmie serve``
share them (``docs/extraction.md``, "Limits").

A running extraction checks a :class:`StopCheck` between steps (images, model batches): it raises
:class:`ExtractionStopped` once the deadline has passed or the caller's ``threading.Event`` is set
(the service sets it when the client disconnects), so the work stops within one batch.

:class:`ServiceLimits` adds what one HTTP request to ``mmie serve`` may hold (body, images, text) and
how the service queues the extractions; it hands the extraction's part on as ``ExtractionLimits``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal

from mmie.data.schema import MAX_IMAGES
from mmie.errors import DataError, MmieError


@dataclass(frozen=True)
class ExtractionLimits:
    """``max_entities``: entities a caller may give for one post (more is an error naming ``entities``);
    ``max_pairs``: candidate pairs classified per post, the closest ones first (the others are reported
    in ``skipped_pairs``); ``timeout_s``: seconds one post may take (a batch of n posts of ``pipe``:
    n x ``timeout_s``), None for no deadline."""

    max_entities: int = 32
    max_pairs: int = 64
    timeout_s: float | None = 30.0

    def __post_init__(self) -> None:
        if self.max_entities < 1 or self.max_pairs < 0:
            raise MmieError(f"limits: max_entities must be >= 1 and max_pairs >= 0, got {self}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise MmieError(f"limits: timeout_s must be positive or None, got {self.timeout_s}")

    def too_many_entities(self, count: int) -> str | None:
        """Why a post that gives ``count`` entities is refused, or None when they are within the limit
        (the one wording of the Python API, ``mmie extract`` and the service's 422)."""
        if count <= self.max_entities:
            return None
        return f"{count} entities, over the limit of {self.max_entities} per post"


class LimitExceeded(DataError):
    """A post over one of the :class:`ExtractionLimits` (its field names what is over)."""


class ExtractionStopped(MmieError):
    """An extraction stopped before its end: ``reason`` is ``"deadline"`` or ``"cancelled"``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class StopCheck:
    """Raises :class:`ExtractionStopped` when ``cancel`` is set or ``deadline`` (``time.monotonic()``)
    has passed; ``timeout_s`` is only for the message."""

    cancel: threading.Event | None = None
    deadline: float | None = None
    timeout_s: float | None = None

    def __call__(self, step: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise ExtractionStopped("cancelled", f"the extraction was cancelled ({step})")
        if self.deadline is not None and time.monotonic() > self.deadline:
            budget = f" of {self.timeout_s:g} s" if self.timeout_s is not None else ""
            raise ExtractionStopped("deadline", f"the extraction went past its deadline{budget} ({step})")


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
