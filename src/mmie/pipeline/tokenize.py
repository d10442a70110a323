"""Raw post text -> tokens with character offsets, split the way the Twitter-2017 release is.

The models of mmie are trained on pre-tokenized releases; a raw post has to be cut into the same kind
of tokens or the tagger sees words it never saw. The rule here was read off the Twitter-2017 data
(``../shared/data/twitter2017`` beside the repository, the release of Yu et al., 2020), which the MNER-MI and MNRE
releases follow as well:

* ``@mention`` and ``#hashtag``: the sign is its own token, the name the next one
  (``@ GreenFlashBeer``, ``# NBAAwards``), so the name can be tagged on its own;
* URLs (``http://...``, ``https://...``, ``www....``) are not tokens at all: the releases removed
  them, the models never saw one (``urls="keep"`` keeps each as one token);
* a word is a run of letters, digits and ``_`` (``Bundesliga_EN``); a number keeps its inner
  ``.``, ``,`` or ``:`` (``10,000``, ``9.30``, ``2.0``);
* every other visible character is a token of its own: punctuation (``Let ' s``, ``Spider - Man``),
  each emoji and each emoji modifier; the emoticons ``:)``, ``:(`` and ``;)`` stay whole.

Each token keeps its ``[start, end)`` character offsets in the original text, so entities found on
tokens map back to the characters the user typed. The rule is deliberately explicit and small: a
statistical tokenizer would need a model file and would split differently from the training data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

URL = r"(?:https?://|www\.)\S+"
_TOKEN = re.compile(
    rf"(?P<url>{URL})"
    r"|(?P<emoticon>[:;]-?[()](?!\w))"
    r"|(?P<number>\d+(?:[.,:]\d+)+)"
    r"|(?P<word>\w+)"
    r"|(?P<other>\S)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Token:
    """One token: its text and its ``[start, end)`` character offsets in the post."""

    text: str
    start: int
    end: int


def tokenize(text: str, urls: Literal["drop", "keep"] = "drop") -> list[Token]:
    """The tokens of ``text`` with their character offsets (see the module doc for the rule)."""
    tokens = []
    for match in _TOKEN.finditer(text):
        if match.lastgroup == "url" and urls == "drop":
            continue
        tokens.append(Token(match.group(), match.start(), match.end()))
    return tokens
