"""Word-level inputs: the vocabulary of a training split, and posts -> word and character ids.

For models without a sub-word tokenizer (the BiLSTM taggers). Their vocabulary is what a pretrained
tokenizer is to the others: it is built from the training split (:meth:`WordVocabulary.build`),
passed where the tokenizer goes (``create_processor``, ``create_model``) and saved with the model
as ``vocabulary.json`` (:meth:`WordVocabulary.save_pretrained`), so a saved model reads its words
offline exactly as it was trained on them.

    vocabulary = WordVocabulary.build(train_posts, lowercase=False, zero_digits=False)
    vocabulary.word_id("Paris"), vocabulary.char_ids("Paris")
    vocabulary.save_pretrained("model/")   ->   WordVocabulary.from_pretrained("model/")

The rules, from Lample et al. (2016) and their code (github.com/glample/tagger):

* words are ordered by decreasing frequency in the training split; id 0 is padding, id 1 the
  unknown word, which any word not seen in training reads as;
* the words seen once in training come last (from ``singletons_from`` on): the taggers replace
  them by the unknown word with a probability during training (Lample et al., sec. 4: p = 0.5),
  so the unknown word's embedding is learnt;
* ``lowercase`` / ``zero_digits`` apply to word lookup only (the tagger's ``--lower`` and
  ``--zeros``): the characters of a word are always read as written;
* characters not seen in training read as the unknown character (id 1); a word is read up to
  ``max_word_length`` characters (Ma & Hovy's code reads 45).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from mmie.data.schema import Post, RelationInstance
from mmie.errors import MmieError
from mmie.features.text import META_KEY, TextFeaturizer, word_label_id
from mmie.io import write_atomic

if TYPE_CHECKING:
    from mmie.data.images import InMemoryImages

logger = logging.getLogger(__name__)

VOCABULARY_NAME = "vocabulary.json"
VOCABULARY_FORMAT = "mmie-word-vocabulary"
VOCABULARY_FORMAT_VERSION = 1
PAD_ID = 0
UNKNOWN_ID = 1
SPECIALS = ("<pad>", "<unk>")
_DIGIT = re.compile(r"\d")


class WordVocabulary:
    """The words and characters of a training split, and the rules a token is looked up by."""

    # What transformers' Trainer reads from the object it is given as processing_class: the padding
    # id, and the feature whose length groups posts (training.group_by_length).
    pad_token_id: ClassVar[int] = PAD_ID
    unk_token_id: ClassVar[int] = UNKNOWN_ID
    model_input_names: ClassVar[list[str]] = ["word_ids"]

    def __init__(
        self,
        words: Sequence[str],
        chars: Sequence[str],
        *,
        lowercase: bool,
        zero_digits: bool,
        singletons_from: int | None = None,
    ) -> None:
        """``words`` / ``chars``: by id, the two specials first; ``singletons_from``: the first id of
        the words seen once in training (None: no such word)."""
        self.words = list(words)
        self.chars = list(chars)
        for kind, items in (("words", self.words), ("chars", self.chars)):
            if tuple(items[:2]) != SPECIALS:
                raise ValueError(f"{kind} must start with {SPECIALS}")
            if len(set(items)) != len(items):
                raise ValueError(f"{kind} must not repeat an entry")
        if any(len(char) != 1 for char in self.chars[2:]):
            raise ValueError("chars must be single characters")
        self.lowercase = lowercase
        self.zero_digits = zero_digits
        self.singletons_from = len(self.words) if singletons_from is None else singletons_from
        if not 2 <= self.singletons_from <= len(self.words):
            raise ValueError(f"singletons_from {singletons_from} is outside the {len(self.words)} words")
        # The specials are never looked up: a post that writes "<unk>" reads it as an unknown word.
        self._word_ids = {word: index for index, word in enumerate(self.words) if index >= len(SPECIALS)}
        self._char_ids = {char: index for index, char in enumerate(self.chars) if index >= len(SPECIALS)}

    # ------------------------------------------------------------------------------ building

    @classmethod
    def build(
        cls, posts: Iterable[Post | RelationInstance], *, lowercase: bool = False, zero_digits: bool = False
    ) -> WordVocabulary:
        """The vocabulary of ``posts`` (the training split): every word and character they hold. Relation
        instances count the words of each of their posts once, however many pairs it has."""
        rules = cls([*SPECIALS], [*SPECIALS], lowercase=lowercase, zero_digits=zero_digits)
        word_counts: Counter[str] = Counter()
        char_counts: Counter[str] = Counter()
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for record in posts:
            post = record.post if isinstance(record, RelationInstance) else record  # its post's words, once
            if (post.id, tuple(post.tokens)) in seen:
                continue
            seen.add((post.id, tuple(post.tokens)))
            for token in post.tokens:
                word_counts[rules.normalize(token)] += 1
                char_counts.update(token)
        for special in SPECIALS:
            word_counts.pop(special, None)
        words = sorted(word_counts, key=lambda word: (-word_counts[word], word))  # most frequent first
        chars = sorted(char_counts, key=lambda char: (-char_counts[char], char))
        frequent = sum(1 for word in words if word_counts[word] > 1)
        vocabulary = cls(
            [*SPECIALS, *words],
            [*SPECIALS, *chars],
            lowercase=lowercase,
            zero_digits=zero_digits,
            singletons_from=len(SPECIALS) + frequent,
        )
        logger.info(
            "vocabulary of the training split: %d words (%d seen once), %d characters",
            len(words),
            len(words) - frequent,
            len(chars),
        )
        return vocabulary

    # ------------------------------------------------------------------------------ lookup

    def normalize(self, token: str) -> str:
        """The form ``token`` is looked up by (lowercased, digits zeroed, as the rules say)."""
        if self.lowercase:
            token = token.lower()
        if self.zero_digits:
            token = _DIGIT.sub("0", token)
        return token

    def word_id(self, token: str) -> int:
        return self._word_ids.get(self.normalize(token), UNKNOWN_ID)

    def char_ids(self, token: str, limit: int | None = None) -> list[int]:
        """The ids of the first ``limit`` characters of ``token`` as written; an empty token reads as
        one unknown character (every word has a character representation)."""
        return [self._char_ids.get(char, UNKNOWN_ID) for char in token[:limit]] or [UNKNOWN_ID]

    def __len__(self) -> int:
        return len(self.words)

    @property
    def sizes(self) -> dict[str, int]:
        """The settings of :class:`~mmie.features.settings.WordInputs` this vocabulary fixes."""
        return {
            "vocabulary_size": len(self.words),
            "alphabet_size": len(self.chars),
            "singletons_from": self.singletons_from,
        }

    # ------------------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": VOCABULARY_FORMAT,
            "format_version": VOCABULARY_FORMAT_VERSION,
            "lowercase": self.lowercase,
            "zero_digits": self.zero_digits,
            "singletons_from": self.singletons_from,
            "words": self.words,
            "chars": self.chars,
        }

    def save_pretrained(self, folder: str | Path) -> tuple[str]:
        """Write ``vocabulary.json`` into ``folder`` (the model folder, or a Trainer checkpoint)."""
        path = Path(folder) / VOCABULARY_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n")
        return (str(path),)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> WordVocabulary:
        """Read the ``vocabulary.json`` of ``folder`` (JSON, no pickle)."""
        path = Path(folder) / VOCABULARY_NAME
        if not path.is_file():
            raise MmieError(f"{folder}: the model folder has no {VOCABULARY_NAME}")
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(values, dict) or values.get("format") != VOCABULARY_FORMAT:
                raise ValueError(f"not a word vocabulary (format is not {VOCABULARY_FORMAT!r})")
            if values.get("format_version") != VOCABULARY_FORMAT_VERSION:
                raise ValueError(f"format_version {values.get('format_version')!r} is not {VOCABULARY_FORMAT_VERSION}")
            return cls(
                values["words"],
                values["chars"],
                lowercase=bool(values["lowercase"]),
                zero_digits=bool(values["zero_digits"]),
                singletons_from=int(values["singletons_from"]),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise MmieError(f"{path}: {error}") from None


# ------------------------------------------------------------------------------ featurizer


class WordNerFeaturizer(TextFeaturizer):
    """Posts -> word ids, each word's character ids, and word labels.

    ``char_ids`` of a post is ``[words, characters of its longest word]``, padded with 0 (the
    collator pads it again to the batch's longest post and word: ``Collator(nested=...)``).
    Words past ``max_length`` are not read and are predicted ``O``, as in :class:`NerFeaturizer`.
    """

    def __init__(
        self, vocabulary: WordVocabulary, labels: Sequence[str], max_length: int, max_word_length: int
    ) -> None:
        self.vocabulary = vocabulary
        self.label_ids = {label: index for index, label in enumerate(labels)}
        self.max_length = max_length
        self.max_word_length = max_word_length

    def featurize(
        self, records: Sequence[Post], with_labels: bool = True, images: InMemoryImages | None = None
    ) -> list[dict]:
        return [self._feature(post, with_labels) for post in records]

    def _feature(self, post: Post, with_labels: bool) -> dict:
        tokens = list(post.tokens[: self.max_length])
        chars = [self.vocabulary.char_ids(token, self.max_word_length) for token in tokens]
        longest = max((len(ids) for ids in chars), default=1)
        feature: dict[str, Any] = {
            "word_ids": [self.vocabulary.word_id(token) for token in tokens],
            # a post without words still has a [0, 1] matrix: the batch's char_ids stay 3-d
            "char_ids": [ids + [PAD_ID] * (longest - len(ids)) for ids in chars]
            if chars
            else torch.zeros((0, 1), dtype=torch.long),
        }
        if with_labels and post.tags is not None:
            feature["labels"] = [word_label_id(self.label_ids, post, word) for word in range(len(tokens))]
        feature[META_KEY] = {"words": list(range(len(tokens))), "n_words": len(post.tokens)}
        return feature
