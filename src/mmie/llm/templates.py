"""The papers' prompts as named, versioned templates, and the chat messages they make.

A template is identified by ``name@version``; the version is part of the answer cache's key, so
changing a template's wording means a new version (and new answers), never silently reused ones.

NER (MNER-MI paper, sec. 5.1, quoted verbatim; the authors follow Qin et al., 2023):

* ``mner-mi-gpt4@1``: the prompt of the GPT-4 row.
* ``mner-mi-minigpt4@1``: the longer prompt of the MiniGPT-4 row (for a multimodal model).

RE (the MRE-MI and FocalMRE papers quote no prompt; BASELINES.md points to QA4RE's format):

* ``qa4re@1``: the sentence, lettered options (one per relation label, verbalised with the two
  entities, filtered by the entities' types when they are known), a none-of-the-above option, and a
  one-letter answer.

Demonstrations (FocalMRE sec. 4.3: 2-5 random training instances) are earlier user/assistant turns
with the gold answer in the form the template asks for.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from dataclasses import dataclass

from mmie.data.schema import NO_RELATION, Post, RelationInstance, relation_argument_types
from mmie.errors import ConfigError

# The JSON keys the NER prompts ask for, in the prompts' order, and the mmie type each one means.
NER_KEYS = {"Person": "PER", "Organization": "ORG", "Location": "LOC", "Miscellaneous": "MISC"}

# How the QA4RE-style options read each relation label of MNRE / MRE-MI: "{h} ... {t}".
RELATION_VERBALISATIONS = {
    "/per/per/parent": "{h} is the parent of {t}",
    "/per/per/siblings": "{h} and {t} are siblings",
    "/per/per/couple": "{h} and {t} are a couple",
    "/per/per/neighbor": "{h} and {t} are neighbours",
    "/per/per/peer": "{h} and {t} are peers",
    "/per/per/charges": "{h} is in charge of {t}",
    "/per/per/alumi": "{h} and {t} are alumni of the same school",
    "/per/per/alternate_names": "{h} is another name of the person {t}",
    "/per/org/member_of": "{h} is a member of {t}",
    "/per/loc/place_of_residence": "{h} lives in {t}",
    "/per/loc/place_of_birth": "{h} was born in {t}",
    "/per/misc/nationality": "{h} has the nationality {t}",
    "/per/misc/awarded": "{h} was awarded {t}",
    "/per/misc/race": "{h} is of the race {t}",
    "/per/misc/religion": "{h} believes in {t}",
    "/per/misc/present_in": "{h} is present in {t}",
    "/org/org/alternate_names": "{h} is another name of the organisation {t}",
    "/org/org/subsidiary": "{h} is a subsidiary of {t}",
    "/org/loc/locate_at": "{h} is located at {t}",
    "/loc/loc/contain": "{h} contains {t}",
    "/misc/misc/part_of": "{h} is part of {t}",
    "/misc/loc/held_on": "{h} is held in {t}",
}
NONE_OPTION = "None of the above"


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt: ``instruction`` is formatted with ``text`` (and for RE ``options``)."""

    name: str
    version: int
    task: str  # "ner" or "re"
    source: str  # where the wording comes from
    instruction: str

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"


TEMPLATES: dict[str, PromptTemplate] = {
    template.name: template
    for template in (
        PromptTemplate(
            name="mner-mi-gpt4",
            version=1,
            task="ner",
            source="MNER-MI paper sec. 5.1 (the GPT-4 row), after Qin et al. (2023)",
            instruction=(
                "Please identify Person, Organization, Location and Miscellaneous Entity from the given text, "
                "and respond to the result in JSON format that contains the following keys: Person, "
                "Organization, Location and Miscellaneous. Text: {text}"
            ),
        ),
        PromptTemplate(
            name="mner-mi-minigpt4",
            version=1,
            task="ner",
            source="MNER-MI paper sec. 5.1 (the MiniGPT-4 row)",
            instruction=(
                "Your task is to perform Named Entity Recognition through the given text and an attached image, "
                "in which the named entities exist only in the text. There are four types: Person, Organization, "
                "Location and Miscellaneous. You should reply with the results in JSON format containing the "
                "following keywords: Person, Organization, Location, and Miscellaneous. The text you should "
                "perform named entity recognition on is {text}"
            ),
        ),
        PromptTemplate(
            name="qa4re",
            version=1,
            task="re",
            source="QA4RE's multiple-choice format (Zhang et al., 2023), as BASELINES.md describes it",
            instruction=(
                "Determine which option can be inferred from the given sentence.\n\n"
                "Sentence: {text}\n"
                "Options:\n{options}\n\n"
                "Which option can be inferred from the given sentence? Answer with the letter of the option only."
            ),
        ),
    )
}
DEFAULT_TEMPLATE = {"ner": "mner-mi-gpt4", "re": "qa4re"}


def get_template(name: str, task: str) -> PromptTemplate:
    """The template named ``name`` (``name`` or ``name@version``) for ``task``; ConfigError otherwise."""
    base, _, version = name.partition("@")
    template = TEMPLATES.get(base)
    if template is None:
        raise ConfigError(f"unknown prompt template {name!r} (known: {', '.join(TEMPLATES)})")
    if version and version != str(template.version):
        raise ConfigError(f"template {base!r} has version {template.version}, not {version}")
    if template.task != task:
        raise ConfigError(f"template {base!r} is a {template.task.upper()} prompt, the data is {task.upper()}")
    return template


# ------------------------------------------------------------------------------------- NER


def post_text(post: Post) -> str:
    return " ".join(post.tokens)


def ner_gold_answer(post: Post) -> str:
    """The JSON answer the NER prompts ask for, from a post's gold tags (for demonstrations)."""
    answer: dict[str, list[str]] = {key: [] for key in NER_KEYS}
    by_type = {value: key for key, value in NER_KEYS.items()}
    start, kind = None, None
    for index, tag in enumerate([*(post.tags or []), "O"]):
        if start is not None and not (tag.startswith("I-") and tag[2:] == kind):
            if kind in by_type:
                answer[by_type[kind]].append(" ".join(post.tokens[start:index]))
            start, kind = None, None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start, kind = index, tag[2:]
    return json.dumps(answer, ensure_ascii=False)


# -------------------------------------------------------------------------------------- RE

EntityTypes = tuple[str, str]


def relation_options(labels: Sequence[str], types: EntityTypes | None = None) -> list[str]:
    """The relation labels offered for one instance, ``None`` excluded (it is the last option).

    With the head and tail types known, only labels whose argument types match (or that name no
    types) are offered, as QA4RE does; unknown types offer every label.
    """
    offered = []
    for label in labels:
        if label == NO_RELATION:
            continue
        named = relation_argument_types(label)
        if types is None or named is None or named == types:
            offered.append(label)
    return offered


def verbalise(label: str, head: str, tail: str) -> str:
    pattern = RELATION_VERBALISATIONS.get(label)
    if pattern is None:  # a label of another release: say it as it is
        return f"the relation between {head} and {tail} is {label}"
    return pattern.format(h=head, t=tail)


def option_letters(count: int) -> list[str]:
    if count > len(string.ascii_uppercase):
        raise ConfigError(f"{count} options, more than the {len(string.ascii_uppercase)} letters of a QA4RE prompt")
    return list(string.ascii_uppercase[:count])


def instance_names(instance: RelationInstance) -> tuple[str, str]:
    tokens = instance.post.tokens
    head = instance.head.name or " ".join(tokens[instance.head.start : instance.head.end])
    tail = instance.tail.name or " ".join(tokens[instance.tail.start : instance.tail.end])
    return head, tail


def re_choices(instance: RelationInstance, labels: Sequence[str], types: EntityTypes | None) -> dict[str, str]:
    """Letter -> label of one instance's options; the last letter is the no-relation option."""
    offered = [*relation_options(labels, types), NO_RELATION]
    return dict(zip(option_letters(len(offered)), offered))


def re_options_text(instance: RelationInstance, choices: dict[str, str]) -> str:
    head, tail = instance_names(instance)
    lines = []
    for letter, label in choices.items():
        said = NONE_OPTION if label == NO_RELATION else verbalise(label, head, tail)
        lines.append(f"{letter}. {said}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- turns


def user_text(template: PromptTemplate, record: Post | RelationInstance, choices: dict[str, str] | None) -> str:
    if isinstance(record, RelationInstance):
        assert choices is not None
        return template.instruction.format(text=post_text(record.post), options=re_options_text(record, choices))
    return template.instruction.format(text=post_text(record))


def gold_answer(record: Post | RelationInstance, choices: dict[str, str] | None) -> str:
    """What a demonstration's assistant turn says: the gold JSON (NER) or the gold option's letter (RE)."""
    if isinstance(record, RelationInstance):
        assert choices is not None
        letters = {label: letter for letter, label in choices.items()}
        return letters.get(str(record.label), letters[NO_RELATION])
    return ner_gold_answer(record)
