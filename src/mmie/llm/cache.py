"""The on-disk answer cache: one small JSON file per answer, named by the hash of what was asked.

The key is the SHA-256 of the canonical JSON of ``(model, template name@version, messages,
generation parameters)``: the same question to the same model is never asked twice, and a changed
template version, image, demonstration or parameter is a new question. Each answer is written
atomically (:func:`mmie.io.write_atomic`) the moment it arrives, so a run killed half-way keeps
every answer it had and the next run asks only for the rest. The endpoint's URL is not part of the
key: the same model behind another server gives the same answers.

    cache = AnswerCache("runs/llm/cache")
    key = answer_key("gpt-4o", "qa4re@1", messages, {"max_tokens": 16, "temperature": 0.0})
    entry = cache.get(key)            # None when not asked yet
    cache.put(key, {"answer": "B", "usage": {...}})
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mmie.errors import DataError
from mmie.io import write_atomic


def answer_key(model: str, template: str, messages: list[dict], parameters: dict[str, Any]) -> str:
    payload = {"model": model, "template": template, "messages": messages, "parameters": parameters}
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AnswerCache:
    """Answers by key under ``folder/<first two hex digits>/<key>.json``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(f"cannot create the answer cache: {error.strerror or error}", path=self.folder) from None

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise DataError(f"unreadable cached answer ({error}); delete the file to ask again", path=path) from None
        if not isinstance(entry, dict) or not isinstance(entry.get("answer"), str):
            raise DataError('a cached answer is an object with an "answer" string; delete the file', path=path)
        return entry

    def put(self, key: str, entry: dict) -> None:
        path = self.path(key)
        path.parent.mkdir(exist_ok=True)
        write_atomic(path, json.dumps({"key": key, **entry}, ensure_ascii=False, indent=1))

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("??/*.json"))
