"""Issue #23, the service's micro-batches, on a real uvicorn server on 127.0.0.1: many concurrent clients
with different posts get the answers of the Python API called one post at a time (to the stated
tolerance), the batch size and the wait really gather requests (``/health`` counts the batches by
size), and a full queue is answered 503 with Retry-After."""

from __future__ import annotations

import base64
import copy
import math
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from extraction_models import crowded_post, running_server
from mmie.data import read_dataset
from mmie.errors import DataError, MmieError
from mmie.pipeline import Extractor
from mmie.pipeline.service import ServiceLimits, create_app
from test_score_cli import run
from test_service_limits import Blocking, health, post_in_thread, wait_for

# A post batched with others is padded to the longest of its batch: its scores may differ from the post
# alone in the last float bits, which the 6 digits of a score can show. Labels, spans, tokens and the
# pairs classified or skipped must be identical.
SCORE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def extractor(extraction_models) -> Extractor:
    return Extractor.from_pretrained(ner=extraction_models.ner, re=extraction_models.re)


def runner(url: str) -> dict:
    return httpx.get(f"{url}/health").json()["runner"]


def posts_of_the_sample(extraction_models, count: int) -> list[dict]:
    """Distinct posts of the synthetic sample the RE model was trained on: text and 1..4 image files."""
    sample = extraction_models.images.parent
    posts, seen = [], set()
    for split in ("test.txt", "val.txt", "train.txt"):
        for instance in read_dataset(sample / split).records:
            post = instance.post
            if post.id not in seen:
                seen.add(post.id)
                images = [(sample / "images" / ref).read_bytes() for ref in post.images]
                posts.append({"text": " ".join(post.tokens), "images": images})
    return posts[:count]


def assert_close(got, want, where: str) -> None:
    """Equal, but for floats (scores, relevance) within SCORE_TOLERANCE."""
    if isinstance(want, float) and isinstance(got, (float, int)):
        assert math.isclose(got, want, abs_tol=SCORE_TOLERANCE), (where, got, want)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), (where, got, want)
        for key in want:
            assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (where, got, want)
        for k, (a, b) in enumerate(zip(got, want)):
            assert_close(a, b, f"{where}[{k}]")
    else:
        assert got == want, (where, got, want)


def test_concurrent_clients_get_the_python_api_answers(extraction_models, extractor):
    limits = ServiceLimits(max_pairs=6, max_batch=8, max_wait_ms=50, max_queue=64, timeout_s=120)
    direct = copy.copy(extractor)  # the Python API under the service's limits, called one post at a time
    direct.limits = limits.extraction_limits()
    direct.max_pixels = limits.max_image_pixels
    posts = posts_of_the_sample(extraction_models, 36)
    for count in (6, 8, 10):  # given entities: more candidate pairs than max_pairs, some skipped
        text, entities = crowded_post(count)
        posts.append({"text": text, "images": posts[count]["images"], "entities": entities})
    truncated = posts[0]["images"][0][:300]
    posts.append({"text": "alice visited paris", "images": [posts[1]["images"][0], truncated]})  # per-post errors
    posts.append({"text": "bob visited rome", "entities": [{"start": 0, "end": 99, "type": "PER"}]})
    posts.append({"text": "carol visited rome", "entities": crowded_post(40)[1]})  # over max_entities
    expected: list[dict] = []
    for post in posts:
        try:
            expected.append(direct(post["text"], images=post.get("images"), entities=post.get("entities")))
        except DataError as error:
            expected.append({"status": 422, "field": error.field})
    assert sum("status" in want for want in expected) == 3
    assert sum(bool(want.get("skipped_pairs")) for want in expected) >= 3

    def call(k: int) -> tuple[int, httpx.Response]:
        post = posts[k % len(posts)]
        body = {"text": post["text"], "images": [base64.b64encode(data).decode() for data in post.get("images", [])]}
        if post.get("entities") is not None:
            body["entities"] = post["entities"]
        return k, client.post(f"{url}/extract", json=body)

    with running_server(create_app(extractor, limits)) as url:
        with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=32)) as client:
            with ThreadPoolExecutor(32) as pool:
                answers = list(pool.map(call, range(4 * len(posts))))
        for k, response in answers:
            want = expected[k % len(posts)]
            if "status" in want:
                assert response.status_code == 422 and response.json()["field"] == want["field"], (k, response.text)
            else:
                assert response.status_code == 200, (k, response.text[:300])
                assert_close(response.json(), want, f"request {k}")
        sizes = {int(size): count for size, count in runner(url)["batch_sizes"].items()}
        # every request but the 4 with too many entities (refused before the queue) ran in a batch
        assert sum(size * count for size, count in sizes.items()) == 4 * (len(posts) - 1)
        assert max(sizes) > 1 and max(sizes) <= 8, sizes  # they were batched, never past max_batch


def test_the_batch_size_and_the_wait_gather_the_requests_waiting(extractor):
    def send(url: str, count: int) -> list[int]:
        with ThreadPoolExecutor(count) as pool:
            return list(
                pool.map(
                    lambda k: (
                        httpx.post(f"{url}/extract", json={"text": f"alice visited paris {k}"}, timeout=60).status_code
                    ),
                    range(count),
                )
            )

    # a long wait: 12 requests at once make full batches of 4
    with running_server(create_app(extractor, ServiceLimits(max_batch=4, max_wait_ms=5000))) as url:
        assert send(url, 12) == [200] * 12
        assert runner(url)["batch_sizes"] == {"4": 3}
        assert runner(url)["max_batch"] == 4 and runner(url)["max_wait_ms"] == 5000
    # a batch larger than the requests: the first waits for the others, all run in one batch
    with running_server(create_app(extractor, ServiceLimits(max_batch=64, max_wait_ms=1500))) as url:
        assert send(url, 10) == [200] * 10
        assert runner(url)["batch_sizes"] == {"10": 1}
    # no wait: a request sent alone runs alone
    with running_server(create_app(extractor, ServiceLimits(max_batch=64, max_wait_ms=0))) as url:
        for k in range(3):
            assert httpx.post(f"{url}/extract", json={"text": f"bob visited rome {k}"}, timeout=60).status_code == 200
        assert runner(url)["batch_sizes"] == {"1": 3}
    # one at a time: no micro-batches
    with running_server(create_app(extractor, ServiceLimits(mode="one-at-a-time"))) as url:
        assert send(url, 4) == [200] * 4
        assert runner(url) == {"mode": "one-at-a-time"}


def test_a_full_queue_is_answered_503_with_retry_after():
    blocking = Blocking()
    answers: dict[str, httpx.Response] = {}
    limits = ServiceLimits(max_batch=1, max_queue=2, max_wait_ms=0)
    with running_server(create_app(blocking, limits)) as url:  # type: ignore[arg-type]
        threads = [post_in_thread(url, {"text": "alice"}, answers, "running")]
        assert wait_for(lambda: health(url)["running"] == 1)
        threads += [post_in_thread(url, {"text": f"bob {k}"}, answers, f"waiting {k}") for k in range(2)]
        assert wait_for(lambda: health(url)["waiting"] == 2)
        refused = httpx.post(f"{url}/extract", json={"text": "carol"}, timeout=60)
        assert refused.status_code == 503, refused.text
        assert refused.json()["field"] == "queue" and "busy" in refused.json()["detail"]
        assert int(refused.headers["retry-after"]) >= 1
        assert health(url)["refused_busy"] == 1 and health(url)["pending_body_bytes"] > 0
        blocking.release.set()
        for thread in threads:
            thread.join(timeout=10)
        assert [answers[name].status_code for name in ("running", "waiting 0", "waiting 1")] == [200] * 3
        assert runner(url)["batch_sizes"] == {"1": 3}
        assert health(url)["pending_body_bytes"] == 0 and health(url)["waiting"] == 0


def test_a_waiting_request_whose_client_leaves_leaves_the_queue():
    blocking = Blocking()
    answers: dict[str, httpx.Response] = {}
    with running_server(create_app(blocking, ServiceLimits(max_batch=1, max_wait_ms=0))) as url:  # type: ignore[arg-type]
        first = post_in_thread(url, {"text": "alice"}, answers, "first")
        assert wait_for(lambda: health(url)["running"] == 1)
        with pytest.raises(httpx.ReadTimeout):  # waits behind the first, gives up after 0.5 s
            httpx.post(f"{url}/extract", json={"text": "bob"}, timeout=0.5)
        assert wait_for(lambda: health(url)["cancelled"] == 1 and health(url)["waiting"] == 0), health(url)
        blocking.release.set()
        first.join(timeout=10)
        assert answers["first"].status_code == 200
        assert runner(url)["batch_sizes"] == {"1": 1}  # the one that left never ran


def test_the_service_settings_are_checked(tmp_path, capsys):
    for bad in (dict(mode="parallel"), dict(max_batch=0), dict(max_queue=0), dict(max_wait_ms=-1)):
        with pytest.raises(MmieError, match="service"):
            ServiceLimits(**bad)
    # `mmie serve` refuses a mode it does not know before it loads a model
    code, _, err = run(["serve", "--re", str(tmp_path / "no-model"), "--mode", "parallel"], capsys)
    assert code == 2 and "service mode: 'batch' or 'one-at-a-time', got 'parallel'" in err, err


def test_a_request_that_waited_through_a_batch_still_waits_for_the_next_arrivals():
    # The wait counts from when the worker is free: a request that came while a batch ran does not
    # leave alone the moment that batch ends, it gathers the clients coming back right after it.
    blocking = Blocking()
    answers: dict[str, httpx.Response] = {}
    limits = ServiceLimits(max_batch=4, max_wait_ms=1500)
    with running_server(create_app(blocking, limits)) as url:  # type: ignore[arg-type]
        threads = [post_in_thread(url, {"text": "alice"}, answers, "first")]
        assert wait_for(lambda: health(url)["running"] == 1)  # a batch of one, blocked
        threads.append(post_in_thread(url, {"text": "bob"}, answers, "during"))
        assert wait_for(lambda: health(url)["waiting"] == 1)
        time.sleep(1.6)  # "during" has now waited longer than max_wait since it came
        blocking.release.set()
        assert wait_for(lambda: health(url)["running"] == 0)
        threads.append(post_in_thread(url, {"text": "carol"}, answers, "after"))  # within the wait
        for thread in threads:
            thread.join(30)
        assert [answers[name].status_code for name in ("first", "during", "after")] == [200] * 3
        assert runner(url)["batch_sizes"] == {"1": 1, "2": 1}
