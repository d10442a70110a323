"""Posts plus the text of their images (captions, object tags, OCR text) as sub-word inputs.

The image text comes from a provider (:mod:`mmie.imagetext`: a precomputed file), never from the
model: the featurizer looks the post's first image up (``image_text_images: first``, the
single-image rows) or each of its images in order (``all``), and writes its fields
(``image_text_fields``: caption, tags, OCR by default) one after the other, the tokenizer's separator
between two parts (ITA's ``<EOS>``, replaced by the encoder's separator). Two views of each post:

* the **image-text view** ``[CLS] post [SEP] image text [SEP]``: the post as the first segment, the
  image text as the second (``truncation="longest_first"``: the longer side loses sub-words first);
  ``word_starts`` and ``labels`` come from the first segment only, so no label ever falls on the
  appended text;
* the **text view** ``[CLS] post [SEP]`` (``text_input_ids``, ``text_attention_mask``,
  ``text_token_type_ids``, ``text_word_starts``), for the same words.

A post without images, or whose images the file does not cover with ``missing_image_text:
text_only``, has an image-text view equal to its text view (the explicit text-only fallback);
with ``missing_image_text: error`` (the default) an uncovered image is a DataError naming the post,
and a post with images when ``image_text`` names no file a ConfigError naming that field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mmie.data.schema import Post
from mmie.errors import ConfigError, DataError
from mmie.features.settings import AppendedTextInputs, ImageTextSource, ObjectLabelInputs
from mmie.features.text import META_KEY, NerFeaturizer, TextFeaturizer, first_subwords, word_label_id
from mmie.imagetext import ImageText, ImageTextProvider, ImageTextUnavailable, NoImageText, PrecomputedImageText

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from mmie.data.images import InMemoryImages

TEXT_VIEW_PREFIX = "text_"  # the text view's keys: text_input_ids, text_attention_mask, ...


def image_text_provider(config: ImageTextSource) -> ImageTextProvider:
    """The provider of ``config.image_text``; without one, the provider that has nothing (a post with
    images then fails naming ``model.image_text``, unless ``missing_image_text: text_only``)."""
    if config.image_text is None:
        return NoImageText("model.image_text names no precomputed image-text file")
    if not config.image_text.is_file():
        raise ConfigError(f"model.image_text: no such image-text file {str(config.image_text)!r}")
    return PrecomputedImageText(config.image_text)


def image_text_words(entry: ImageText, fields: Sequence[str]) -> list[list[str]]:
    """The words of each non-empty field of ``entry``, in the order of ``fields``."""
    parts = []
    for name in fields:
        value = getattr(entry, name)
        words = list(value) if name == "tags" else (value or "").split()
        if words:
            parts.append(words)
    return parts


def post_image_text(provider: ImageTextProvider, config: ImageTextSource, post: Post) -> list[ImageText]:
    """The image text of the post's first image (``image_text_images: first``) or of each of its images;
    an image the provider lacks: skipped with ``missing_image_text: text_only``, else an error."""
    entries = []
    for ref in post.images[:1] if config.image_text_images == "first" else post.images:
        try:
            entries.append(provider.text(ref))
        except ImageTextUnavailable as error:
            if config.missing_image_text == "text_only":
                continue
            advice = "set model.missing_image_text: text_only to read such posts without image text"
            if config.image_text is None:
                raise ConfigError(
                    f"model.image_text: {config.name} reads the captions, object tags and OCR text of the images "
                    f"of post {post.id!r}: give a precomputed image-text file (docs/imagetext.md: `mmie imagetext "
                    f"build` or `mmie imagetext convert`), or {advice}"
                ) from None
            raise DataError(f"{error} ({advice})", field=f"record {post.id}: images") from None
    return entries


class ImageTextNerFeaturizer(TextFeaturizer):
    """Posts -> the image-text view and the text view of each post, labels on the post's words only."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        labels: Sequence[str],
        config: AppendedTextInputs,
        provider: ImageTextProvider,
    ) -> None:
        self.tokenizer = tokenizer
        self.label_ids = {label: index for index, label in enumerate(labels)}
        self.config = config
        self.provider = provider
        separator = tokenizer.sep_token or tokenizer.eos_token
        if separator is None:
            raise ConfigError(f"model.encoder: the tokenizer of {config.name} has no separator token")
        self.separator = str(separator)

    def appended_words(self, post: Post) -> list[str]:
        """The image text of the post's images as words, the separator between two parts."""
        words: list[str] = []
        for entry in post_image_text(self.provider, self.config, post):
            for part in image_text_words(entry, self.config.image_text_fields):
                words.extend(([self.separator] if words else []) + part)
        return words

    def featurize(
        self, records: Sequence[Post], with_labels: bool = True, images: InMemoryImages | None = None
    ) -> list[dict]:
        features = []
        for post in records:
            appended = self.appended_words(post)
            both = self.tokenizer(
                list(post.tokens),
                appended or None,
                is_split_into_words=True,
                truncation="longest_first" if appended else True,
                max_length=self.config.max_length,
            )
            text = self.tokenizer(
                list(post.tokens), is_split_into_words=True, truncation=True, max_length=self.config.max_length
            )
            post_ids = [word if segment == 0 else None for word, segment in zip(both.word_ids(), both.sequence_ids())]
            word_starts, words = first_subwords(post_ids)
            text_starts, _ = first_subwords(text.word_ids())
            feature: dict[str, Any] = {key: list(both[key]) for key in self._keys(both)}
            feature.update({TEXT_VIEW_PREFIX + key: list(text[key]) for key in self._keys(text)})
            feature["word_starts"] = word_starts
            feature[TEXT_VIEW_PREFIX + "word_starts"] = text_starts[: len(word_starts)]  # the same words
            if with_labels and post.tags is not None:
                feature["labels"] = [word_label_id(self.label_ids, post, word) for word in words]
            feature[META_KEY] = {"words": words, "n_words": len(post.tokens), "image_text_words": len(appended)}
            features.append(feature)
        return features

    @staticmethod
    def _keys(encoding: Any) -> list[str]:
        return [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoding]


class ObjectLabelNerFeaturizer(NerFeaturizer):
    """Posts -> NER inputs plus the object labels of their images, each label tokenized on its own
    (``object_ids`` ``[objects, tokens]``, ``object_attention_mask``) and ``object_mask`` (which
    object slots hold a label): OCSGA's visual guiding objects, read as text.

    At most ``max_objects`` labels, the provider's order (most confident first), repeats kept (two
    people are two objects). A post without any label gets one empty slot, masked out."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        labels: Sequence[str],
        config: ObjectLabelInputs,
        provider: ImageTextProvider,
    ) -> None:
        super().__init__(tokenizer, labels, config.max_length)
        self.config = config
        self.provider = provider

    def object_labels(self, post: Post) -> list[str]:
        found = [tag for entry in post_image_text(self.provider, self.config, post) for tag in entry.tags]
        return found[: self.config.max_objects]

    def featurize(
        self, records: Sequence[Post], with_labels: bool = True, images: InMemoryImages | None = None
    ) -> list[dict]:
        features = super().featurize(records, with_labels, images)
        for post, feature in zip(records, features):
            found = self.object_labels(post)
            encoding = self.tokenizer(found or [""], truncation=True, max_length=self.config.max_length)
            feature["object_ids"] = [list(ids) for ids in encoding["input_ids"]]
            feature["object_attention_mask"] = [list(mask) for mask in encoding["attention_mask"]]
            feature["object_mask"] = [True] * len(found) if found else [False]
            feature[META_KEY]["objects"] = found
        return features
