"""How the service runs its extractions: one at a time, or gathered into micro-batches.

Both runners offer the same face to the service: ``await run(job)`` (the job's result, or the
exception its extraction raised), ``waiting`` and ``running`` (for ``/health``), ``retry_after()``
(for a 503's ``Retry-After``), ``full()`` and ``stats()``. A job not yet started leaves the queue when
its task is cancelled (its client left, or its deadline passed while it waited).

* :class:`OneAtATime` runs one extraction at a time, in arrival order: the answers are exactly the
  Python API's, and a request waits for every request ahead of it.
* :class:`MicroBatcher` gathers the requests waiting into micro-batches (at most ``max_batch`` posts;
  the first one waits at most ``max_wait_ms`` for others, counted from when the worker is free: the
  clients of the batch just answered come back within that wait and join the next batch, instead of
  a few requests that arrived during the last batch leaving at once in a batch of their own) and
  runs each batch through
  :meth:`Extractor.extract_each <mmie.pipeline.extractor.Extractor.extract_each>` in its worker
  thread: one model batch for many posts, which a CPU runs several times faster than the posts one
  by one. At most ``max_queue`` requests wait; past that the service answers 503 with Retry-After.
  Each request keeps its own deadline and cancellation: between model batches every job of the batch
  is checked, and a stopped one is answered at once (504, or its client is gone) while the others go
  on; the batch ends early only when all of its jobs are stopped. A post's bad input fails only its
  own request. A service request is one post, so a batch never splits a request.
"""

from __future__ import annotations

import asyncio
import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import Any

from mmie.errors import MmieError
from mmie.pipeline.extractor import Extractor, PostInput
from mmie.pipeline.limits import ExtractionStopped, StopCheck


@dataclass
class Job:
    """One extraction: its input, its deadline (``time.monotonic()``), and the event that stops it."""

    text: str
    images: list[bytes]
    entities: Any
    deadline: float
    cancel: threading.Event = field(default_factory=threading.Event)
    started: bool = False

    def run(self, extractor: Extractor) -> dict:
        return extractor(
            self.text, images=self.images, entities=self.entities, cancel=self.cancel, deadline=self.deadline
        )


class QueueFull(MmieError):
    """The micro-batcher's queue holds ``max_queue`` requests already: the service answers 503."""


class OneAtATime:
    """Runs the jobs one at a time in arrival order, each in a worker thread (the event loop keeps serving).

    Waiting is on an ``asyncio.Lock``: a waiting job is cancelled by cancelling its task.
    """

    mode = "one-at-a-time"

    def __init__(self, extractor: Extractor) -> None:
        self.extractor = extractor
        self.waiting = 0
        self.running = 0
        self.seconds_per_job = 1.0  # a moving average, for Retry-After
        self._lock = asyncio.Lock()

    async def run(self, job: Job) -> dict:
        from starlette.concurrency import run_in_threadpool

        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1
        try:
            job.started = True
            self.running += 1
            began = time.monotonic()
            try:
                return await run_in_threadpool(job.run, self.extractor)
            finally:
                self.running -= 1
                self.seconds_per_job = 0.8 * self.seconds_per_job + 0.2 * (time.monotonic() - began)
        finally:
            self._lock.release()

    def full(self) -> bool:
        return False  # the queue is bounded by the pending bodies and the deadline only

    def retry_after(self) -> int:
        """Seconds after which a refused request may find room: the jobs ahead, at the recent pace."""
        return max(1, min(60, math.ceil(self.seconds_per_job * (self.waiting + self.running + 1))))

    def stats(self) -> dict:
        return {"mode": self.mode}

    def close(self) -> None:
        pass


@dataclass(eq=False)
class _Entry:
    """A job in the micro-batcher: its future (settled once, on the event loop) and its own stop check."""

    job: Job
    future: asyncio.Future
    stop: StopCheck
    queued_at: float = field(default_factory=time.monotonic)
    settled: bool = False  # read and written by the worker thread only


class _BatchStop(StopCheck):
    """The stop check of a micro-batch: a job that is cancelled or past its deadline is answered at once
    (``settle``) and the others go on; when none is left the batch stops."""

    def __init__(self, entries: list[_Entry], settle: Callable[[_Entry, Any], None]) -> None:
        super().__init__()
        self.entries, self.settle = entries, settle

    def __call__(self, step: str) -> None:
        live = 0
        for entry in self.entries:
            if entry.settled:
                continue
            try:
                entry.stop(step)
            except ExtractionStopped as stopped:
                self.settle(entry, stopped)
                continue
            live += 1
        if not live:
            raise ExtractionStopped("cancelled", f"every request of the micro-batch was stopped ({step})")


def _finish(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class MicroBatcher:
    """Gathers waiting jobs into micro-batches run by one worker thread (see the module's docstring).

    The gathering runs on the event loop (so ``started`` and the queue change in one thread); the worker
    thread settles each job's future through ``call_soon_threadsafe``. ``batch_sizes`` counts the
    batches run by their size (``/health``).
    """

    mode = "batch"

    def __init__(
        self, extractor: Extractor, max_batch: int, max_wait_ms: float, max_queue: int, timeout_s: float | None
    ) -> None:
        self.extractor = extractor
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait_ms / 1000, max_queue
        self.timeout_s = timeout_s  # for the deadline's message
        self.queue: collections.deque[_Entry] = collections.deque()
        self.running = 0  # jobs taken into a batch and not yet answered
        self.seconds_per_batch = 1.0  # a moving average, for Retry-After
        self._free_since = 0.0  # when the worker last finished a batch (time.monotonic)
        self.batch_sizes: collections.Counter[int] = collections.Counter()
        self._arrived: asyncio.Event | None = None
        self._collector: asyncio.Task | None = None
        self._batches: SimpleQueue[tuple[list[_Entry], asyncio.Future, asyncio.AbstractEventLoop] | None]
        self._batches = SimpleQueue()
        self._thread: threading.Thread | None = None

    @property
    def waiting(self) -> int:
        return len(self.queue)

    def full(self) -> bool:
        return len(self.queue) >= self.max_queue

    def retry_after(self) -> int:
        """Seconds after which a refused request may find room: the batches ahead, at the recent pace."""
        ahead = math.ceil(len(self.queue) / self.max_batch) + 1
        return max(1, min(60, math.ceil(self.seconds_per_batch * ahead)))

    def stats(self) -> dict:
        return {
            "mode": self.mode,
            "max_batch": self.max_batch,
            "max_wait_ms": self.max_wait * 1000,
            "max_queue": self.max_queue,
            "batches": sum(self.batch_sizes.values()),
            "batch_sizes": {str(size): count for size, count in sorted(self.batch_sizes.items())},
        }

    async def run(self, job: Job) -> dict:
        if self.full():
            raise QueueFull(f"{len(self.queue)} requests are waiting (limit {self.max_queue})")
        self._start()
        assert self._arrived is not None
        stop = StopCheck(job.cancel, job.deadline, self.timeout_s)
        entry = _Entry(job, asyncio.get_running_loop().create_future(), stop)
        self.queue.append(entry)
        self._arrived.set()
        try:
            return await entry.future
        except asyncio.CancelledError:
            if not job.started:
                self.queue.remove(entry)  # still waiting: it leaves the queue now
            else:  # running (the server stops): its part of the batch stops at the next check
                job.cancel.set()
            raise

    def close(self) -> None:
        """Stop gathering and let the worker thread end after its current batch."""
        if self._collector is not None:
            self._collector.cancel()
            self._collector = None
            self._batches.put(None)

    # ------------------------------------------------------------------------------ on the event loop

    def _start(self) -> None:
        if self._collector is None:
            self._arrived = asyncio.Event()
            self._collector = asyncio.ensure_future(self._collect())
            self._thread = threading.Thread(target=self._work, name="mmie-micro-batches", daemon=True)
            self._thread.start()

    async def _gather(self) -> None:
        """Returns once a batch is ready: ``max_batch`` jobs wait, or the first has waited ``max_wait``
        since it came or since the worker became free, whichever is later."""
        assert self._arrived is not None
        while True:
            remaining = None  # nothing waits: until the next arrival
            if self.queue:
                started_waiting = max(self.queue[0].queued_at, self._free_since)
                remaining = started_waiting + self.max_wait - time.monotonic()
                if len(self.queue) >= self.max_batch or remaining <= 0:
                    return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:  # (not the builtin TimeoutError before Python 3.11)
                pass

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._gather()
            batch = [self.queue.popleft() for _ in range(min(self.max_batch, len(self.queue)))]
            for entry in batch:
                entry.job.started = True
            self.running += len(batch)
            self.batch_sizes[len(batch)] += 1
            done = loop.create_future()
            began = time.monotonic()
            self._batches.put((batch, done, loop))
            await done
            self._free_since = time.monotonic()
            self.seconds_per_batch = 0.8 * self.seconds_per_batch + 0.2 * (time.monotonic() - began)

    def _settled(self, entry: _Entry, outcome: Any) -> None:
        self.running -= 1
        if entry.future.done():  # its handler is gone (the server stops)
            return
        if isinstance(outcome, BaseException):
            entry.future.set_exception(outcome)
        else:
            entry.future.set_result(outcome)

    # ------------------------------------------------------------------------------ in the worker thread

    def _work(self) -> None:
        while (item := self._batches.get()) is not None:
            batch, done, loop = item
            try:
                self._run_batch(batch, loop)
            finally:
                loop.call_soon_threadsafe(_finish, done)

    def _run_batch(self, batch: list[_Entry], loop: asyncio.AbstractEventLoop) -> None:
        def settle(entry: _Entry, outcome: Any) -> None:
            entry.settled = True
            loop.call_soon_threadsafe(self._settled, entry, outcome)

        outcomes: list[Any]
        try:
            outcomes = self._extract(batch, settle)
        except Exception as error:  # no post's own check caught it: each post alone, so it fails only its own
            outcomes = [error] if len(batch) == 1 else [self._alone(entry, settle) for entry in batch]
        for entry, outcome in zip(batch, outcomes):
            if not entry.settled:
                settle(entry, outcome)

    def _alone(self, entry: _Entry, settle: Callable[[_Entry, Any], None]) -> Any:
        if entry.settled:
            return None
        try:
            return self._extract([entry], settle)[0]
        except Exception as error:  # answered as the handler answers any error (500), never lost
            return error

    def _extract(self, entries: list[_Entry], settle: Callable[[_Entry, Any], None]) -> list[Any]:
        """Per entry its result or its DataError (ExtractionStopped once all are stopped: each answered)."""
        posts = [PostInput(entry.job.text, list(entry.job.images), entry.job.entities) for entry in entries]
        try:
            return self.extractor.extract_each(posts, _BatchStop(entries, settle), batch_size=self.max_batch)
        except ExtractionStopped as stopped:
            return [stopped] * len(entries)
