"""A client of an OpenAI-compatible chat-completions endpoint (hosted APIs, vLLM, llama.cpp's server,
``transformers serve``), with retries and back-off, over httpx.

Retried: HTTP 429 and 5xx (waiting what ``Retry-After`` says when it says it), time-outs and
connection errors, with exponential back-off (``backoff * 2**attempt`` seconds, at most 60). Any
other HTTP error is the request's fault and fails at once with the server's message. One client is
shared by the worker threads (httpx's client is thread-safe).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mmie.errors import MmieError

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_WAIT = 60.0


class LlmError(MmieError):
    """A request the endpoint refused, or one that kept failing after every retry."""


@dataclass
class ChatResult:
    text: str
    usage: dict[str, int]  # prompt_tokens, completion_tokens, total_tokens as the endpoint reported them
    finish_reason: str | None
    model: str | None  # the model the endpoint says answered


@dataclass
class RequestStats:
    """What went over the wire (thread-safe counters)."""

    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, retry: bool) -> None:
        with self._lock:
            self.requests += 1
            self.retries += int(retry)


def _import_httpx() -> Any:
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx comes with the llm extra
        raise MmieError("mmie llm needs httpx: pip install 'mmie[llm]'") from None
    return httpx


def chat_url(base_url: str) -> str:
    """``.../v1/chat/completions`` from a base URL given with or without ``/v1`` or the full path."""
    url = base_url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if not url.endswith("/v1"):
        url += "/v1"
    return url + "/chat/completions"


class ChatClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
    ) -> None:
        httpx = _import_httpx()
        self.url = chat_url(base_url)
        self.model = model
        self.max_retries = max_retries
        self.backoff = backoff
        self.stats = RequestStats()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._httpx = httpx
        self._client = httpx.Client(timeout=timeout, headers=headers)

    def close(self) -> None:
        self._client.close()

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * 2**attempt
        if retry_after:
            try:
                delay = float(retry_after)
            except ValueError:
                pass
        time.sleep(min(max(delay, 0.0), MAX_WAIT))

    def complete(self, messages: list[dict], parameters: dict[str, Any], request: str = "") -> ChatResult:
        """One chat completion; ``request`` names it in errors (``post 17``)."""
        body = {"model": self.model, "messages": messages, **parameters}
        httpx = self._httpx
        last = ""
        for attempt in range(self.max_retries + 1):
            self.stats.count(retry=attempt > 0)
            try:
                response = self._client.post(self.url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as error:
                last = f"{type(error).__name__}: {error}"
                if attempt < self.max_retries:
                    self._wait(attempt, None)
                continue
            if response.status_code in RETRY_STATUS:
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                if attempt < self.max_retries:
                    self._wait(attempt, response.headers.get("retry-after"))
                continue
            if response.status_code >= 400:
                raise LlmError(f"{self.url}: {request}: HTTP {response.status_code}: {response.text[:500]}")
            return self._result(response, request)
        raise LlmError(f"{self.url}: {request}: failed after {self.max_retries + 1} attempts ({last})")

    def _result(self, response: Any, request: str) -> ChatResult:
        try:
            payload = response.json()
            choice = payload["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise LlmError(
                f"{self.url}: {request}: not a chat completion (no choices[0].message.content): {response.text[:300]}"
            ) from None
        usage = payload.get("usage") or {}
        counts = {k: int(v) for k, v in usage.items() if k.endswith("_tokens") and isinstance(v, int)}
        return ChatResult(str(text), counts, choice.get("finish_reason"), payload.get("model"))
