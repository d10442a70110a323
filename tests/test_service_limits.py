"""Issue #24 on a real uvicorn server on 127.0.0.1: the work of one request is bounded (entities, candidate
pairs, a deadline, and it stops when the client leaves), the request bodies waiting or in progress are
bounded (503 with Retry-After), and the inputs that used to get a 500 get a 4xx naming their field.
The deadline, cancellation and queue tests run in both service modes (micro-batches, one at a time)."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from extraction_models import crowded_post, running_server, synthetic_images
from mmie.pipeline import Extractor
from mmie.pipeline.limits import StopCheck
from mmie.pipeline.service import ServiceLimits, create_app


@pytest.fixture(scope="module")
def loaded(extraction_models) -> Extractor:
    return Extractor.from_pretrained(ner=extraction_models.ner, re=extraction_models.re)


@contextmanager
def serve(extractor, **limits) -> Iterator[str]:
    with running_server(create_app(extractor, ServiceLimits(**limits))) as url:
        yield url


def health(url: str) -> dict:
    return httpx.get(f"{url}/health").json()["extractions"]


def wait_for(condition, seconds: float = 10.0) -> bool:
    """Poll ``condition`` (bounded): True as soon as it holds, False after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_2000_character_post_with_default_limits_is_answered_fast_with_its_skipped_pairs(loaded):
    text, entities = crowded_post(32, chars=2000)
    assert len(text) == 2000
    with serve(loaded) as url:
        started = time.perf_counter()
        response = httpx.post(f"{url}/extract", json={"text": text, "entities": entities}, timeout=60)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.text[:300]
        body = response.json()
        # 16 PER and 16 LOC: 256 PER -> LOC and 240 PER -> PER candidates; the 64 closest are classified
        assert len(body["skipped_pairs"]) == 256 + 240 - 64
        classified = {(r["head"], r["tail"]) for r in body["relations"]}
        assert not classified & {(p["head"], p["tail"]) for p in body["skipped_pairs"]}
        assert elapsed <= 10, elapsed
        # 40 given entities (the probe's 65-second request) are over the limit of 32: refused at once
        text, entities = crowded_post(40)
        refused = httpx.post(f"{url}/extract", json={"text": text, "entities": entities}, timeout=60)
        assert refused.status_code == 422 and refused.json()["field"] == "entities"
        assert "40 entities, over the limit of 32" in refused.json()["detail"]
        limits = httpx.get(f"{url}/models").json()["limits"]
        assert (limits["max_entities"], limits["max_pairs"], limits["timeout_s"]) == (32, 64, 30.0)


def slow_request(images: list[bytes]) -> dict:
    """96 entities, 4 images: 4,560 candidate pairs, about 30 s of work for the tiny GLRA (when nothing stops it)."""
    text, entities = crowded_post(96)
    return {"text": text, "entities": entities, "images": [base64.b64encode(data).decode() for data in images]}


@pytest.fixture(scope="module")
def images(extraction_models) -> list[bytes]:
    return [path.read_bytes() for path in synthetic_images(extraction_models.images, 4)]


@pytest.mark.parametrize("mode", ["batch", "one-at-a-time"])
def test_the_deadline_stops_the_work_with_a_504_and_the_server_goes_on(loaded, images, mode):
    with serve(loaded, max_entities=128, max_pairs=10_000, timeout_s=1.5, mode=mode) as url:
        started = time.perf_counter()
        response = httpx.post(f"{url}/extract", json=slow_request(images), timeout=60)
        elapsed = time.perf_counter() - started
        assert response.status_code == 504, response.text[:300]
        assert response.json()["field"] == "deadline" and "deadline of 1.5 s" in response.json()["detail"]
        assert elapsed < 5, elapsed
        assert health(url)["timed_out"] == 1 and health(url)["running"] == 0
        assert httpx.post(f"{url}/extract", json={"text": "alice visited paris"}, timeout=60).status_code == 200


@pytest.mark.parametrize("mode", ["batch", "one-at-a-time"])
def test_a_client_that_disconnects_stops_its_extraction(loaded, images, mode):
    with serve(loaded, max_entities=128, max_pairs=10_000, timeout_s=120, mode=mode) as url:
        started = time.perf_counter()
        with pytest.raises(httpx.ReadTimeout):  # the client gives up after 0.5 s and closes the connection
            httpx.post(f"{url}/extract", json=slow_request(images), timeout=0.5)
        assert wait_for(lambda: health(url)["cancelled"] == 1 and health(url)["running"] == 0, 10), health(url)
        assert time.perf_counter() - started < 6  # the 4,560 pairs would take about 30 s
        small = httpx.post(f"{url}/extract", json={"text": "alice visited paris"}, timeout=60)
        assert small.status_code == 200
        assert health(url)["completed"] == 1


class Blocking:
    """Stands in for an Extractor in the queue tests: a call runs until ``release`` is set, or until it is
    cancelled (it ignores the deadline, so the test decides how long it runs)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.max_pixels = None
        self.limits = None

    def describe(self) -> dict:
        return {}

    def __call__(self, text, images=None, entities=None, id=None, *, cancel=None, deadline=None) -> dict:
        stop = StopCheck(cancel)
        while not self.release.wait(0.01):
            stop("blocked")
        return {"id": "0", "text": text, "images": len(images or [])}

    def extract_each(self, posts, stop, batch_size=32) -> list[dict]:
        """The micro-batcher's call: blocks until ``release`` (ignoring the deadlines, as above)."""
        while not self.release.wait(0.01):
            pass
        return [{"id": "0", "text": post.text, "images": len(post.images)} for post in posts]


def post_in_thread(url: str, body: dict, answers: dict, name: str) -> threading.Thread:
    def send() -> None:
        answers[name] = httpx.post(f"{url}/extract", json=body, timeout=60)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("mode", ["batch", "one-at-a-time"])
def test_a_request_still_waiting_at_its_deadline_gets_503_with_retry_after(mode):
    blocking = Blocking()
    answers: dict[str, httpx.Response] = {}
    with serve(blocking, timeout_s=1.0, mode=mode) as url:
        first = post_in_thread(url, {"text": "alice"}, answers, "first")
        assert wait_for(lambda: health(url)["running"] == 1)
        started = time.perf_counter()
        waiting = httpx.post(f"{url}/extract", json={"text": "bob"}, timeout=60)
        assert waiting.status_code == 503, waiting.text
        assert waiting.json()["field"] == "deadline" and "busy" in waiting.json()["detail"]
        assert int(waiting.headers["retry-after"]) >= 1
        assert 0.9 < time.perf_counter() - started < 3
        blocking.release.set()
        first.join(timeout=10)
        assert answers["first"].status_code == 200
        assert health(url)["refused_busy"] == 1


@pytest.mark.parametrize("mode", ["batch", "one-at-a-time"])
def test_request_bodies_waiting_or_in_progress_are_bounded(mode):
    blocking = Blocking()
    answers: dict[str, httpx.Response] = {}
    image = base64.b64encode(os.urandom(450_000)).decode()  # a 600 kB body
    body = {"text": "alice", "images": [image]}
    with serve(blocking, max_pending_bytes=2**20, mode=mode) as url:
        first = post_in_thread(url, body, answers, "first")
        assert wait_for(lambda: health(url)["running"] == 1)
        assert health(url)["pending_body_bytes"] > 600_000
        refused = httpx.post(f"{url}/extract", json=body, timeout=60)  # a second 600 kB would pass 1 MiB
        assert refused.status_code == 503 and refused.json()["field"] == "body"
        assert "busy" in refused.json()["detail"] and int(refused.headers["retry-after"]) >= 1
        small = post_in_thread(url, {"text": "bob"}, answers, "small")  # a small one still fits, and waits
        assert wait_for(lambda: health(url)["waiting"] == 1)
        blocking.release.set()
        first.join(timeout=10)
        small.join(timeout=10)
        assert answers["first"].status_code == 200 and answers["small"].status_code == 200
        assert health(url)["pending_body_bytes"] == 0
        assert httpx.post(f"{url}/extract", json=body, timeout=60).status_code == 200  # room again
        # a second after the burst, its freed memory is handed back (garbage collected, heap trimmed)
        assert wait_for(lambda: health(url)["memory_releases"] >= 1, 5)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_inputs_that_used_to_get_a_500_get_a_4xx_naming_their_field(loaded):
    json_type = {"content-type": "application/json"}
    cases = {
        "lone surrogate in the JSON text": (
            dict(content=b'{"text": "alice \\ud800 visited"}', headers=json_type),
            "text",
            "lone surrogate (U+D800 at character 6)",
        ),
        "entities nested 100k deep (JSON)": (
            dict(content=('{"text": "alice", "entities": ' + nested(100_000) + "}").encode(), headers=json_type),
            "body",
            "nested too deeply",
        ),
        "entities nested 100k deep (multipart)": (
            dict(files=[("text", (None, "alice")), ("entities", (None, nested(100_000)))]),
            "entities",
            "nested too deeply",
        ),
        "images as a plain form field": (
            dict(files=[("text", (None, "alice")), ("images", (None, "/etc/passwd"))]),  # no file name
            "images[0]",
            "undecodable image: not an image file Pillow can read",
        ),
        "an upload that is no image": (
            dict(data={"text": "alice"}, files=[("images", ("x.png", b"GIF89a but not really"))]),
            "images[0] (x.png)",
            "undecodable image: not an image file Pillow can read (unknown format)",
        ),
    }
    with serve(loaded, max_body_bytes=2 * 2**20) as url, httpx.Client(timeout=60) as client:
        for name, (request, field, words) in cases.items():
            response = client.post(f"{url}/extract", **request)
            assert response.status_code == 422, (name, response.status_code, response.text[:300])
            body = response.json()
            assert body["field"] == field and words in body["detail"], (name, body)
            assert "BytesIO" not in body["detail"] and " at 0x" not in body["detail"], (name, body)
        assert client.get(f"{url}/health").json()["status"] == "ok"
        json.dumps(client.get(f"{url}/models").json())
