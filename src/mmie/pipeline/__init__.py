"""Raw-post extraction: the Python API (:class:`Extractor`), its tokenizer, the HTTP service and its page."""

from mmie.pipeline.extractor import Extractor, PostInput
from mmie.pipeline.tokenize import Token, tokenize

__all__ = ["Extractor", "PostInput", "Token", "tokenize"]
