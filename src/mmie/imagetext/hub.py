"""Image text from a named Hugging Face pipeline model, run once per image and cached on disk.

    tags = HubImageText("facebook/detr-resnet-50", task="object-detection", cache_dir="cache/imagetext")
    captions = HubImageText("HuggingFaceTB/SmolVLM-256M-Instruct", task="image-text-to-text",
                            prompt="Describe the image in one sentence.", cache_dir="cache/imagetext")
    tags.text("17_06_12598.jpg", Path("images/17_06_12598.jpg")).tags

=====================  =======  =====================================================================
task                   field    what is kept
=====================  =======  =====================================================================
object-detection       tags     labels of boxes scoring at least ``threshold``, best first, no repeats
image-classification   tags     the ``top_k`` labels scoring at least ``threshold``
image-text-to-text     caption  the generated text (``field="ocr"`` with an OCR prompt for OCR text)
=====================  =======  =====================================================================

Each answer is appended to ``<cache_dir>/<model>.<field>.jsonl`` (the precomputed format,
:mod:`mmie.imagetext.precomputed`) and flushed at once, so a later run, or a killed one run again,
never runs the model on an image twice. Nothing is downloaded when ``HF_HUB_OFFLINE`` is set: a model
that is not on disk then raises :class:`ImageTextUnavailable` saying so.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import IO, Any

from mmie.data.images import load_image
from mmie.errors import ConfigError
from mmie.imagetext.base import ImageText, ImageTextProvider, ImageTextUnavailable
from mmie.imagetext.precomputed import read_image_text, write_image_text

TASK_FIELDS = {"object-detection": "tags", "image-classification": "tags", "image-text-to-text": "caption"}


def _generated(output: Any) -> str:
    """The text of an image-text-to-text output: a string, or the last message of a chat."""
    item = output[0] if isinstance(output, list) and output else output
    text = item.get("generated_text", "") if isinstance(item, dict) else item
    if isinstance(text, list) and text:  # a chat: the assistant's message last
        text = text[-1].get("content", "") if isinstance(text[-1], dict) else text[-1]
    return str(text).strip()


class HubImageText(ImageTextProvider):
    name = "hub"

    def __init__(
        self,
        model: str,
        task: str = "object-detection",
        *,
        cache_dir: str | Path,
        field: str | None = None,
        prompt: str | None = None,
        top_k: int = 5,
        threshold: float = 0.5,
        device: str | None = None,
        max_new_tokens: int = 40,
    ) -> None:
        if task not in TASK_FIELDS:
            raise ConfigError(f"image-text task must be one of {', '.join(TASK_FIELDS)}, got {task!r}")
        self.model, self.task = model, task
        self.field = field or TASK_FIELDS[task]
        if (self.field == "tags") != (TASK_FIELDS[task] == "tags"):
            raise ConfigError(f"a {task} model gives {TASK_FIELDS[task]}, not {self.field}")
        if task == "image-text-to-text" and not prompt:
            prompt = "Describe the image in one sentence." if self.field == "caption" else "Read the text in the image."
        self.prompt, self.top_k, self.threshold, self.device = prompt, top_k, threshold, device
        self.max_new_tokens = max_new_tokens
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model.strip("/"))[-120:]
        self.cache_path = Path(cache_dir) / f"{safe}.{self.field}.jsonl"
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, ImageText] = {}
        if self.cache_path.is_file():
            self.entries = read_image_text(self.cache_path, allow_cut_tail=True)
            write_image_text(self.entries.values(), self.cache_path)  # drop a line cut off by a kill
        self._pipeline: Any = None
        self._stream: IO[str] | None = None
        self.runs = 0  # images the model was run on by this provider

    def _load(self) -> Any:
        if self._pipeline is None:
            import torch
            from transformers import pipeline

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            try:
                self._pipeline = pipeline(self.task, model=self.model, device=device)  # type: ignore[call-overload]
            except (OSError, ValueError) as error:
                offline = " (HF_HUB_OFFLINE is set: nothing is downloaded)" if os.environ.get("HF_HUB_OFFLINE") else ""
                raise ImageTextUnavailable(
                    f"cannot load the {self.task} model {self.model!r}{offline}: {str(error).splitlines()[0]}; "
                    "no image text is made up: give a precomputed file instead (docs/imagetext.md)"
                ) from None
        return self._pipeline

    def _run(self, path: Path, ref: str) -> ImageText:
        picture = load_image(path.name, path.parent)
        run = self._load()
        entry = ImageText(image=ref)
        if self.task == "image-text-to-text":
            text = _generated(run(images=picture, text=self.prompt, max_new_tokens=self.max_new_tokens))
            setattr(entry, self.field, text)
        else:
            found = run(picture) if self.task == "object-detection" else run(picture, top_k=self.top_k)
            ranked = sorted(found, key=lambda item: -float(item["score"]))
            tags = [str(item["label"]) for item in ranked if float(item["score"]) >= self.threshold]
            entry.tags = list(dict.fromkeys(tags))[: self.top_k]
        return entry

    def text(self, ref: str, path: Path | None = None) -> ImageText:
        cached = self.entries.get(ref)
        if cached is not None:
            return cached
        if path is None:
            raise ImageTextUnavailable(f"image {ref!r} is not in {self.cache_path} and its file was not given")
        entry = self._run(path, ref)
        self.runs += 1
        if self._stream is None:
            self._stream = open(self.cache_path, "a", encoding="utf-8")
        self._stream.write(json.dumps(entry.to_dict(), ensure_ascii=False) + "\n")
        self._stream.flush()  # on disk as it goes: a killed run keeps every image already done
        os.fsync(self._stream.fileno())
        self.entries[ref] = entry
        return entry

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def describe(self) -> dict:
        return {"provider": self.name, "model": self.model, "task": self.task, "field": self.field}
