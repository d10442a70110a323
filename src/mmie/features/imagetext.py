"""Posts -> NER features + multi-scale image and crop tokens + what the images say in words: the inputs
of VisualPT-MoE and VisualPT-MoE-MI (:mod:`mmie.models.visualpt_moe`).

On top of :class:`~mmie.features.multiscale.MultiScaleRegionFeaturizer` (the image's pooled stage
tokens and its crops'), each field the config reads (``image_text_fields``: ``tags``, ``caption``)
becomes ``<field>_ids [P]``: the sub-word ids, in the model's own tokenizer, of that text of the post's
image(s), cut or padded (with the pad id) to P = ``text_tokens``, as VisualPT-MoE's dataset does:

* ``tag_ids``: the image's first ``max_tags`` object tags, each tokenized, one after the other;
* ``caption_ids``: the image's caption, tokenized.

The text comes from an image-text provider (:mod:`mmie.imagetext`): ``image_text``, a JSON-lines file
(docs/imagetext.md; ``mmie imagetext build`` makes one with a named model, ``mmie imagetext convert``
reads the authors' released dictionaries). No text is made up: an image the file does not list is an
:class:`~mmie.imagetext.ImageTextUnavailable` error naming it. With the stitched layout (the "-MI"
rows) the post's images share the P tokens: each of its n images gets P // n of them, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mmie.data.images import ImageDirs, ImageLoader, ImagePolicy
from mmie.data.schema import MAX_IMAGES, Post
from mmie.errors import ConfigError
from mmie.features.multiscale import MultiScaleRegionFeaturizer
from mmie.features.settings import ImageTextInputs, RegionInputs
from mmie.imagetext import ImageText, ImageTextProvider, PrecomputedImageText

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from mmie.features.text import Featurizer

# The input key of each image-text field.
FIELD_KEYS = {"tags": "tag_ids", "caption": "caption_ids"}


class ImageTextFeaturizer(MultiScaleRegionFeaturizer):
    """Wraps a NER featurizer; adds multi-scale image and crop tokens and the images' tags / caption ids."""

    text_settings: ImageTextInputs
    fields: tuple[str, ...]
    tokenizer: PreTrainedTokenizerBase
    length: int
    pad_id: int

    def __init__(
        self,
        text: Featurizer,
        config: RegionInputs,
        images: ImageDirs | None,
        tokenizer: PreTrainedTokenizerBase,
        policy: ImagePolicy = "error",
    ) -> None:
        super().__init__(text, config, images, policy)
        if not isinstance(config, ImageTextInputs):
            raise TypeError(f"{config.name}: its config must be an ImageTextInputs")
        self.text_settings = config
        self.fields = config.image_text_fields
        unknown = sorted(set(self.fields) - set(FIELD_KEYS))
        if unknown:
            raise ConfigError(f"model.image_text_fields: {unknown[0]!r} is not one of {', '.join(FIELD_KEYS)}")
        if self.fields and config.image_text is None:
            raise ConfigError(
                f"model.image_text: {config.name} reads the images' {' and '.join(self.fields)}, but no image-text "
                "file is given (docs/imagetext.md: `mmie imagetext build` or `convert` makes one)"
            )
        self.tokenizer = tokenizer
        self.length = config.text_tokens
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._text_provider: ImageTextProvider | None = None

    @property
    def text_provider(self) -> ImageTextProvider:
        """The provider of the images' text, read on first use."""
        if self._text_provider is None:
            assert self.text_settings.image_text is not None
            self._text_provider = PrecomputedImageText(self.text_settings.image_text)
        return self._text_provider

    def _example_inputs(self, records: Sequence[Any]) -> list[dict[str, Any]]:
        rows = super()._example_inputs(records)
        for row, record in zip(rows, records):
            texts = self._image_texts(self._post(record)) if self.fields else []
            for field in self.fields:
                row[FIELD_KEYS[field]] = self._token_ids(texts, field)
        return rows

    def _image_texts(self, post: Post) -> list[ImageText]:
        """The text of each image the model reads of ``post``, in order."""
        if self.layout == "stitched":
            refs = post.images[:MAX_IMAGES]
        else:
            refs = post.images[:1] if self.layout == "first" else post.images[: self.slots]
        texts = []
        for ref in refs:
            item = self.loader.item(ref, post.id) if isinstance(self.loader, ImageLoader) else None
            texts.append(self.text_provider.text(ref, item if isinstance(item, Path) else None))
        return texts

    def _token_ids(self, texts: list[ImageText], field: str) -> torch.Tensor:
        """``[P]``: the field's sub-word ids over the images (each its share of P), padded with the pad id."""
        share = self.length // max(len(texts), 1)
        tokens: list[str] = []
        for text in texts:
            if field == "tags":
                pieces = [piece for tag in text.tags[: self.text_settings.max_tags] for piece in self._tokenize(tag)]
            else:
                pieces = self._tokenize(text.caption or "")
            tokens.extend(pieces[:share])
        ids = self.tokenizer.convert_tokens_to_ids(tokens) if tokens else []
        assert isinstance(ids, list)
        return torch.tensor(ids + [self.pad_id] * (self.length - len(ids)), dtype=torch.long)

    def _tokenize(self, text: str) -> list[str]:
        return list(self.tokenizer.tokenize(text)) if text.strip() else []
