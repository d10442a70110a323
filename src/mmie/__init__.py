"""mmie: multimodal information extraction (entities and relations) from social-media posts."""

from __future__ import annotations

from typing import TYPE_CHECKING

# `as`: an explicit re-export, so `mmie.__version__` stays public.
from mmie._version import __version__ as __version__

if TYPE_CHECKING:
    from pathlib import Path

    from mmie.data.images import ImageDirs
    from mmie.inference.loading import LoadedModel
    from mmie.pipeline.extractor import Extractor


def load_model(path: str | Path, device: str | None = None, images: ImageDirs | None = None) -> LoadedModel:
    """Load a trained model folder (``<run>/model``) for ``.predict(records)`` / ``.evaluate(records)``.

    ``images``: the image folder (or folders) of the records (image models need it; text models ignore it).

    Lazy: torch and transformers are imported only when this is called.
    """
    from mmie.inference.loading import load_model as _load_model

    return _load_model(path, device=device, images=images)


def __getattr__(name: str) -> type[Extractor]:
    """``mmie.Extractor``, imported on first use (it pulls in torch)."""
    if name == "Extractor":
        from mmie.pipeline.extractor import Extractor

        return Extractor
    raise AttributeError(f"module 'mmie' has no attribute {name!r}")
