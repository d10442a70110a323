"""What `mmie llm` asks and how: the messages (images as data URLs, seeded demonstrations), the cache
key, and the client's retries against a real HTTP server on 127.0.0.1 that answers 429 / 500 first."""

from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from mmie.data.schema import Post
from mmie.errors import ConfigError, DataError
from mmie.llm.cache import AnswerCache, answer_key
from mmie.llm.client import ChatClient, LlmError, chat_url
from mmie.llm.run import LlmSettings, _Asker
from mmie.llm.templates import TEMPLATES

POSTS = [
    Post(str(i), ["Alice", "visited", "Paris", str(i)], [f"{i}_0.jpg", f"{i}_1.jpg"], tags=["B-PER", "O", "B-LOC", "O"])
    for i in range(6)
]


def _asker(tmp_path, **settings) -> _Asker:
    base = {"base_url": "http://127.0.0.1:1", "model": "m", "image_dir": tmp_path}
    return _Asker(LlmSettings(**{**base, **settings}), TEMPLATES["mner-mi-gpt4"], [], POSTS, None)


def test_images_go_as_jpeg_data_urls_before_the_text(tmp_path):
    for post in POSTS:
        for number, ref in enumerate(post.images):
            Image.new("RGB", (1600, 400), ("red", "blue")[number]).save(tmp_path / ref.replace(".jpg", ".png"))
            (tmp_path / ref.replace(".jpg", ".png")).rename(tmp_path / ref)  # a PNG named .jpg: re-encoded anyway
    first = _asker(tmp_path, images="first").question(0, POSTS[0]).messages[-1]["content"]
    every = _asker(tmp_path, images="all").question(0, POSTS[0]).messages[-1]["content"]
    assert [part["type"] for part in first] == ["image_url", "text"]
    assert [part["type"] for part in every] == ["image_url", "image_url", "text"]
    url = every[1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    picture = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert picture.format == "JPEG" and picture.size == (768, 192)  # longer side brought to 768
    assert picture.getpixel((10, 10))[2] > 200  # the second image is the blue one
    assert _asker(tmp_path).question(0, POSTS[0]).messages[-1]["content"].startswith("Please identify")


def test_a_missing_image_names_the_record(tmp_path):
    with pytest.raises(DataError, match="missing image of record '0'"):
        _asker(tmp_path, images="first").question(0, POSTS[0])
    with pytest.raises(ConfigError, match="needs image_dir"):
        _Asker(LlmSettings(base_url="u", model="m", images="all"), TEMPLATES["mner-mi-gpt4"], [], POSTS, None)


def test_demonstrations_are_drawn_per_record_from_the_seed(tmp_path):
    def demos(seed: int, index: int) -> list[str]:
        messages = _asker(tmp_path, demonstrations=2, seed=seed).question(index, POSTS[index]).messages
        assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
        assert json.loads(messages[1]["content"]) == {
            "Person": ["Alice"],
            "Organization": [],
            "Location": ["Paris"],
            "Miscellaneous": [],
        }
        return [m["content"] for m in messages[:-1:2]]

    assert demos(0, 1) == demos(0, 1)  # the same question on every run
    draws = {tuple(demos(seed, index)) for seed in range(3) for index in range(3)}
    assert len(draws) > 3  # other seeds and other records draw other demonstrations


def test_the_cache_key_changes_with_what_is_asked(tmp_path):
    messages = [{"role": "user", "content": "x"}]
    key = answer_key("m", "qa4re@1", messages, {"max_tokens": 8})
    assert key == answer_key("m", "qa4re@1", [{"content": "x", "role": "user"}], {"max_tokens": 8})
    others = [
        answer_key("m2", "qa4re@1", messages, {"max_tokens": 8}),
        answer_key("m", "qa4re@2", messages, {"max_tokens": 8}),
        answer_key("m", "qa4re@1", [{"role": "user", "content": "y"}], {"max_tokens": 8}),
        answer_key("m", "qa4re@1", messages, {"max_tokens": 9}),
    ]
    assert len({key, *others}) == 5
    cache = AnswerCache(tmp_path / "cache")
    cache.put(key, {"answer": "B", "usage": {"total_tokens": 3}})
    assert cache.get(key)["answer"] == "B" and cache.get(others[0]) is None and len(cache) == 1
    cache.path(others[0]).parent.mkdir(exist_ok=True)
    cache.path(others[0]).write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match="unreadable cached answer"):
        cache.get(others[0])


class _Flaky(BaseHTTPRequestHandler):
    """Answers 429 (Retry-After: 0), then 500, then a chat completion; 400 for model "bad"."""

    statuses: list[int] = []
    seen: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the handler's API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        status = 400 if body["model"] == "bad" else (self.statuses.pop(0) if self.statuses else 200)
        payload = {"choices": [{"message": {"content": "B"}, "finish_reason": "stop"}], "model": body["model"]}
        payload["usage"] = {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}
        data = json.dumps(payload if status == 200 else {"error": {"message": f"status {status}"}}).encode()
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Flaky.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_429_and_5xx_are_retried_with_back_off_and_the_usage_is_kept(flaky_server):
    _Flaky.statuses = [429, 500]
    client = ChatClient(flaky_server, "tiny", "sk-test", backoff=0.01, max_retries=3)
    result = client.complete([{"role": "user", "content": "x"}], {"max_tokens": 4}, request="record 1")
    client.close()
    assert result.text == "B" and result.usage == {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}
    assert client.stats.requests == 3 and client.stats.retries == 2
    assert {seen["path"] for seen in _Flaky.seen} == {"/v1/chat/completions"}
    assert _Flaky.seen[0]["auth"] == "Bearer sk-test" and _Flaky.seen[0]["body"]["max_tokens"] == 4


def test_a_refused_request_fails_at_once_and_retries_run_out(flaky_server):
    client = ChatClient(flaky_server, "bad", backoff=0.01, max_retries=3)
    with pytest.raises(LlmError, match="record 2: HTTP 400: .*status 400"):
        client.complete([{"role": "user", "content": "x"}], {}, request="record 2")
    assert client.stats.requests == 1
    _Flaky.statuses = [503, 503, 503]
    client = ChatClient(flaky_server, "tiny", backoff=0.01, max_retries=2)
    with pytest.raises(LlmError, match="failed after 3 attempts .*HTTP 503"):
        client.complete([{"role": "user", "content": "x"}], {}, request="record 3")


def test_the_endpoint_url_may_be_given_with_or_without_v1():
    for given in ("http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/chat/completions"):
        assert chat_url(given) == "http://h:8000/v1/chat/completions"
