"""What every ``from_pretrained`` call of mmie passes: model folders are data, never code or a download order.

* ``trust_remote_code=False`` always: a folder's ``auto_map`` (its own Python code) is never run, and
  transformers never asks whether to run it.
* ``local_files_only`` inside :func:`local_files_only` (``mmie.load_model`` opens a saved model folder
  in it): the encoders, processors and detectors such a folder names are read from local folders or
  the Hugging Face cache, never downloaded. A hub id the user names on the command line or in their
  own config may be downloaded, unless ``HF_HUB_OFFLINE`` is set.
* :func:`local_source` turns such a hub id into its snapshot folder in the cache before transformers
  sees it: asked for a hub id, even with ``local_files_only``, huggingface_hub may still contact the
  Hub (its request headers look up a registry there), and a model folder must cause no request at all.

Objects that load encoders later (the input featurizers load theirs on first use) take the setting in
force when they were built (:func:`local_only`), so a saved folder's processor stays local too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from pathlib import Path
from typing import Any

_LOCAL_ONLY: ContextVar[bool] = ContextVar("mmie_hub_local_only", default=False)


@contextmanager
def quiet_loading(source: str | Path) -> Iterator[None]:
    """transformers' "Loading weights" progress bar off while a LOCAL folder is read (a newcomer's terminal
    shows progress and results, not one bar per checkpoint); a download keeps its bars. Restored after."""
    from transformers.utils import logging as hf_logging

    if not Path(source).is_dir() or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


@contextmanager
def local_files_only(enabled: bool = True) -> Iterator[None]:
    """Inside, every pretrained encoder, processor, tokenizer or detector comes from local files only."""
    if not enabled:
        with nullcontext():
            yield
        return
    token = _LOCAL_ONLY.set(True)
    try:
        yield
    finally:
        _LOCAL_ONLY.reset(token)


def local_only() -> bool:
    """True inside :func:`local_files_only` or when ``HF_HUB_OFFLINE`` is set."""
    return _LOCAL_ONLY.get() or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


class NotInLocalCache(OSError):
    """A name that :func:`local_source` found neither as a folder nor in the Hugging Face cache."""


def local_source(name: str) -> str:
    """Where to load ``name`` from: itself, or inside :func:`local_files_only` (a name that is no local
    folder) its snapshot folder in the Hugging Face cache; OSError when it is not there."""
    if not _LOCAL_ONLY.get() or Path(name).exists():
        return name
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        found = try_to_load_from_cache(name, "config.json")
    except HFValidationError:
        found = None
    if not isinstance(found, str):
        raise NotInLocalCache(
            "not a local folder and not in the Hugging Face cache (what a saved model folder names is never "
            "downloaded: download it yourself if you trust it)"
        )
    return str(Path(found).parent)


def hub_options() -> dict[str, Any]:
    """The keyword arguments of every ``from_pretrained`` call mmie makes."""
    return {"trust_remote_code": False, "local_files_only": local_only()}


def loading_problem(error: BaseException) -> str:
    """The first line of a loading error, with the reason a model folder's own code was not run."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "trust_remote_code" in str(error) or "custom code" in str(error):
        return f"it needs its own Python code, which mmie never runs (trust_remote_code=False): {text}"
    return text
