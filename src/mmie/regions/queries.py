"""The text a region provider is queried with for a record's images: its entity names, then its words.

Text-reading providers (a zero-shot detector) ground these; the text-free ones (grid, crop
dictionary) ignore them. The papers query nouns; no part-of-speech tagger is used here.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmie.data.schema import Post, RelationInstance
from mmie.data.tags import bio_entities

# Words never worth a query (the papers query nouns; no part-of-speech tagger is used here).
_STOP_WORDS = frozenset(
    "a an the and or but of to in on at for with from by about as is are was were be been being this that these "
    "those it its i me my we our you your he him his she her they them their rt via amp just so not no yes do "
    "does did have has had will would can could should up out over after before than then there here what who "
    "how when".split()
)


def content_words(tokens: Sequence[str]) -> list[str]:
    """The post's words worth a query: alphabetic, 3+ letters, not stop words, @mentions, #tags or URLs."""
    words = []
    for token in tokens:
        word = token.lower()
        if len(word) >= 3 and word.isalpha() and word not in _STOP_WORDS:
            words.append(token)
    return words


def record_queries(record: Post | RelationInstance, words: bool = False) -> list[str]:
    """The text a provider is queried with for this record's images: entity names first, then words."""
    post = record.post if isinstance(record, RelationInstance) else record
    names: list[str] = []
    if isinstance(record, RelationInstance):
        for span in (record.head, record.tail):
            names.append(span.name or " ".join(post.tokens[span.start : span.end]))
    elif post.tags is not None:
        names.extend(" ".join(post.tokens[start:end]) for _, start, end in bio_entities(post.tags))
    if words:
        names.extend(content_words(post.tokens))
    return list(dict.fromkeys(name for name in names if name.strip()))
