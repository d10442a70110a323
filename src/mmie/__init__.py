"""mmie: multimodal information extraction (entities and relations) from social-media posts."""

from __future__ import annotations

__version__ = "0.1.0"
