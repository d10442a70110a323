"""Lenient reading of chat-model answers, and mapping them back onto token spans (NER) or labels (RE).

Models wrap JSON in code fences, add sentences around it, use single quotes, trailing commas, other
key spellings (``person``, ``PER``, ``Organisation``, ``Misc``) and write ``"None"`` for an empty
list; an RE answer may be ``B``, ``(B)``, ``Option: B.``, ``The answer is B``, or the option's text.
All of these are read. What cannot be read is never guessed: the answer is *unparseable* (NER: no
JSON object in it; RE: no option in it) and the post gets no entities / the no-relation label.
Entities whose text is not found in the post's tokens are *unmapped* and counted.

    parsed = parse_ner_answer('```json\\n{"Person": ["Jason Isaacs"]}\\n```')
    tags, unmapped = entities_to_tags(post.tokens, parsed.entities)
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmie.data.schema import NO_RELATION

# Spellings of the four keys, after lower-casing and dropping everything but letters.
_KEY_TYPES = {
    "person": "PER",
    "persons": "PER",
    "people": "PER",
    "per": "PER",
    "personentity": "PER",
    "organization": "ORG",
    "organizations": "ORG",
    "organisation": "ORG",
    "organisations": "ORG",
    "org": "ORG",
    "organizationentity": "ORG",
    "location": "LOC",
    "locations": "LOC",
    "loc": "LOC",
    "locationentity": "LOC",
    "miscellaneous": "MISC",
    "miscellaneousentity": "MISC",
    "miscellaneousentities": "MISC",
    "misc": "MISC",
    "mis": "MISC",
    "other": "MISC",
}
# Values that mean "no entity of this type".
_EMPTY_VALUES = {"", "none", "n/a", "na", "null", "nil", "-", "no entities", "not found", "no entity"}
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


@dataclass
class NerAnswer:
    """What an NER answer says: ``(type, text)`` pairs in answer order, and why it could not be read."""

    entities: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None  # set: the answer is unparseable
    unknown_keys: list[str] = field(default_factory=list)


@dataclass
class ReAnswer:
    label: str | None  # None: unparseable or unmappable
    letter: str | None = None
    error: str | None = None


# ---------------------------------------------------------------------------- JSON objects


def _json_candidates(text: str, opener: str = "{") -> list[str]:
    """Substrings that may hold the answer's value: fenced blocks first, then each balanced ``{...}``
    (or ``[...]`` for ``opener="["``)."""
    closer = "}" if opener == "{" else "]"
    candidates = [match.group(1) for match in _FENCE.finditer(text)]
    depth, start = 0, None
    for index, char in enumerate(text):
        if char == opener:
            if depth == 0:
                start = index
            depth += 1
        elif char == closer and depth:
            depth -= 1
            if depth == 0 and start is not None:
                candidates.append(text[start : index + 1])
    return candidates


def _load_value(candidate: str, kind: type) -> Any:
    candidate = candidate.strip()
    for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
        try:
            value = json.loads(attempt)
        except ValueError:
            try:  # single-quoted keys and strings: a Python literal (literal_eval runs no code)
                value = ast.literal_eval(attempt)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
        if isinstance(value, kind):
            return value
    return None


def find_json_object(text: str) -> dict | None:
    """The first JSON object (or Python dict literal) in ``text`` with at least one key, or None."""
    for candidate in _json_candidates(text):
        found = _load_value(candidate, dict)
        if found:
            return found
    return None


def find_json_list(text: str) -> list | None:
    """The first non-empty JSON list in ``text``, or None."""
    for candidate in _json_candidates(text, "["):
        found = _load_value(candidate, list)
        if found:
            return found
    return None


# ------------------------------------------------------------------------------------- NER


def _entity_strings(value: object) -> list[str]:
    """The entity texts of one key's value: a list, one string, comma-joined strings, or dicts."""
    if value is None:
        return []
    if isinstance(value, str):
        parts = [value] if value.strip().lower() in _EMPTY_VALUES or "," not in value else value.split(",")
        return [part.strip() for part in parts if part.strip().lower() not in _EMPTY_VALUES]
    if isinstance(value, dict):  # {"name": "..."} or {"text": "..."}
        for key in ("name", "text", "entity", "value"):
            if isinstance(value.get(key), str):
                return _entity_strings(value[key])
        return []
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _entity_strings(item)]
    return []


def key_type(key: str) -> str | None:
    return _KEY_TYPES.get(re.sub(r"[^a-z]", "", key.lower()))


_TEXT_KEYS = ("text", "name", "entity", "span", "mention", "value")
_TYPE_KEYS = ("type", "label", "category", "entity_type", "tag")


def _typed_items(value: object) -> list[tuple[str, str]] | None:
    """``[{"text": "David Bowie", "type": "Person"}, ...]`` (any of the usual key names) as pairs;
    None when ``value`` is not a list of such objects."""
    if not isinstance(value, list) or not value or not all(isinstance(item, dict) for item in value):
        return None
    pairs = []
    for item in value:
        lowered = {str(key).lower(): entry for key, entry in item.items()}
        text = next((lowered[k] for k in _TEXT_KEYS if isinstance(lowered.get(k), str)), None)
        kind = next((key_type(lowered[k]) for k in _TYPE_KEYS if isinstance(lowered.get(k), str)), None)
        if text is None or kind is None:
            return None
        pairs.append((kind, text.strip()))
    return pairs


def parse_ner_answer(text: str) -> NerAnswer:
    """Read the entities of an answer to an NER prompt (keys Person, Organization, Location, Miscellaneous).

    Also read: a list of ``{"text": ..., "type": ...}`` objects, alone or under one key such as
    ``"entities"`` (models that answer in their own schema)."""
    # a list of typed objects first: the object finder would take its first item for the answer
    items = _typed_items(find_json_list(text))
    if items is not None:
        return NerAnswer(entities=items)
    found = find_json_object(text)
    if found is None:
        return NerAnswer(error="no JSON object in the answer")
    answer = NerAnswer()
    for key, value in found.items():
        kind = key_type(str(key))
        if kind is None:
            answer.unknown_keys.append(str(key))
            continue
        answer.entities.extend((kind, entity) for entity in _entity_strings(value))
    if answer.unknown_keys and not answer.entities and not any(key_type(str(k)) for k in found):
        answer.error = f"none of the keys is an entity type: {', '.join(answer.unknown_keys)}"
    return answer


def _normalise(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def find_token_spans(tokens: Sequence[str], entity: str) -> list[tuple[int, int]]:
    """Every ``[start, end)`` whose tokens, joined without spaces and lower-cased, equal the entity's text.

    Spaces are ignored because tokenisation splits what a model writes together (``Libya 's`` /
    ``Libya's``). Only when the text is nowhere in the post is a ``#`` or ``@`` the model dropped
    allowed (``#BritneyLive`` as one token for ``BritneyLive``).
    """
    target = _normalise(entity)
    if not target:
        return []
    pieces = [_normalise(token) for token in tokens]

    def matches(accept: Callable[[str], bool]) -> list[tuple[int, int]]:
        spans = []
        for start in range(len(tokens)):
            joined = ""
            for end in range(start, len(tokens)):
                joined += pieces[end]
                if len(joined) > len(target) + 1:
                    break
                if accept(joined):
                    spans.append((start, end + 1))
                    break
        return spans

    return matches(lambda joined: joined == target) or matches(
        lambda joined: joined[:1] in "#@" and joined[1:] == target
    )


def entities_to_tags(tokens: Sequence[str], entities: Sequence[tuple[str, str]]) -> tuple[list[str], list[dict]]:
    """BIO tags from ``(type, text)`` pairs: every occurrence of each text is tagged; entities overlapping
    one tagged before (an earlier key wins) are skipped. Returns the tags and the unmapped entities
    (``{"type", "text", "reason"}``)."""
    tags = ["O"] * len(tokens)
    unmapped = []
    for kind, text in entities:
        spans = find_token_spans(tokens, text)
        if not spans:
            unmapped.append({"type": kind, "text": text, "reason": "not in the post's tokens"})
            continue
        placed = False
        for start, end in spans:
            if any(tag != "O" for tag in tags[start:end]):
                continue
            tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
            placed = True
        if not placed and not all(tags[s:e] == [f"B-{kind}"] + [f"I-{kind}"] * (e - s - 1) for s, e in spans):
            unmapped.append({"type": kind, "text": text, "reason": "overlaps an entity already tagged"})
    return tags, unmapped


# -------------------------------------------------------------------------------------- RE

_LETTER_PATTERNS = (
    # the whole answer is a letter: "B", "(B)", "B.", "**B**"
    re.compile(r"^\W*\(?([A-Za-z])\)?\W*$"),
    # a letter first, then its text: "B. Jason is the parent of Emma", "(b) ..."
    re.compile(r"^\W*\(?([A-Za-z])[.):]\s"),
    # "Option: B", "Answer: (B)", "The answer is B.", "the correct option is b"
    # (upper case only here: "the answer is a member of" names no option)
    re.compile(r"\b(?i:option|answer|choice)(?:\s+is)?\s*[:\-]?\s*\(?([A-Z])\b\)?(?![\w'])"),
)


def _strip_fences(text: str) -> str:
    match = _FENCE.search(text)
    return match.group(1) if match else text


def parse_re_answer(text: str, choices: dict[str, str], option_texts: dict[str, str] | None = None) -> ReAnswer:
    """The label an answer to a multiple-choice RE prompt picks (``choices``: letter -> label).

    Read in order: a letter (alone, leading, or after "option"/"answer"), then a JSON object with an
    answer key, then the one option text or label named in the answer, then a none-of-the-above
    phrase. A letter that is not among the options is unmappable; no option at all is unparseable.
    """
    body = _strip_fences(text).strip()
    found = find_json_object(body)
    if found:
        for key, value in found.items():
            if str(key).lower() in ("answer", "option", "choice", "relation", "label") and isinstance(value, str):
                body = value.strip()
                break
    for pattern in _LETTER_PATTERNS:
        match = pattern.search(body)
        if match:
            letter = match.group(1).upper()
            if letter in choices:
                return ReAnswer(choices[letter], letter)
            if pattern is _LETTER_PATTERNS[0]:
                return ReAnswer(None, letter, error=f"option {letter} is not among {', '.join(choices)}")
    lowered = body.lower()
    named = {letter for letter, label in choices.items() if label != NO_RELATION and label.lower() in lowered}
    if option_texts:
        named |= {
            letter
            for letter, said in option_texts.items()
            if choices[letter] != NO_RELATION and said.lower().rstrip(".") in lowered
        }
    if len(named) == 1:
        letter = named.pop()
        return ReAnswer(choices[letter], letter)
    if len(named) > 1:
        return ReAnswer(None, error=f"the answer names {len(named)} options")
    none_letter = next((letter for letter, label in choices.items() if label == NO_RELATION), None)
    if none_letter and re.search(r"none of the above|no relation|\bnone\b", lowered):
        return ReAnswer(NO_RELATION, none_letter)
    return ReAnswer(None, error="no option in the answer")
