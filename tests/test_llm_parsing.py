"""Reading chat-model answers: the shapes GPT-4-style and open models write (fenced JSON, prose around
it, single quotes, trailing commas, other key spellings, letters in many forms), mapped onto the
tokens of real posts (Twitter-2017 / MNRE sentences) and onto the offered labels."""

from __future__ import annotations

import json

import pytest

from mmie.data.schema import Post, RelationInstance, Span
from mmie.errors import ConfigError
from mmie.llm.parsing import entities_to_tags, find_token_spans, parse_ner_answer, parse_re_answer
from mmie.llm.templates import (
    TEMPLATES,
    get_template,
    gold_answer,
    ner_gold_answer,
    re_choices,
    relation_options,
    user_text,
)

BOWIE = "RT @crockpics : David Bowie at Earls Court in London , 1978 . Photo by Gus Stewart .".split()
LIBYA = "RT @AFP : # BREAKING UN says ceasefire agreed to end clashes in Libya 's Tripoli".split()

# (answer as a model wrote it, entities read from it)
NER_ANSWERS = [
    (
        '{"Person": ["David Bowie", "Gus Stewart"], "Organization": [], "Location": ["Earls Court", "London"], '
        '"Miscellaneous": []}',
        [("PER", "David Bowie"), ("PER", "Gus Stewart"), ("LOC", "Earls Court"), ("LOC", "London")],
    ),
    (
        'Here is the result in JSON format:\n```json\n{\n  "Person": ["David Bowie"],\n  "Organization": "None",\n'
        '  "Location": ["London"],\n  "Miscellaneous": []\n}\n```\nLet me know if you need anything else.',
        [("PER", "David Bowie"), ("LOC", "London")],
    ),
    (
        "{'person': ['David Bowie'], 'location': ['Earls Court', 'London',], 'misc': 'N/A'}",
        [("PER", "David Bowie"), ("LOC", "Earls Court"), ("LOC", "London")],
    ),
    (
        '```\n{"PERSON": "David Bowie, Gus Stewart", "ORGANISATION": null, "LOCATION": [], "MISCELLANEOUS": ["1978"]}\n```',
        [("PER", "David Bowie"), ("PER", "Gus Stewart"), ("MISC", "1978")],
    ),
    (
        '{"Person": [{"name": "Gus Stewart"}], "Organization": [], "Location": [], "Miscellaneous": [],}',
        [("PER", "Gus Stewart")],
    ),
    (
        'The entities are:\n[{"text": "David Bowie", "type": "Person"}, {"text": "London", "type": "LOC"}]',
        [("PER", "David Bowie"), ("LOC", "London")],
    ),
    (
        '{"entities": [{"entity": "Earls Court", "label": "location"}, {"name": "Gus Stewart", "category": "PER"}]}',
        [("LOC", "Earls Court"), ("PER", "Gus Stewart")],
    ),
]


@pytest.mark.parametrize(("answer", "entities"), NER_ANSWERS)
def test_ner_answers_of_the_usual_shapes_are_read(answer, entities):
    parsed = parse_ner_answer(answer)
    assert parsed.error is None
    assert parsed.entities == entities


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "I'm sorry, I cannot identify entities in this text.",
        "Person: David Bowie\nLocation: London",  # no JSON object at all
        '{"Person": ["David Bowie"]',  # cut off by max_tokens
        "��)\x1d1�)\x1d1�)",  # a random tiny model's answer
        '{"names": ["David Bowie"]}',  # no entity-type key
        '[{"text": "David Bowie", "type": "Singer"}]',  # a type that is none of the four
        "[1, 2, 3]",
    ],
)
def test_answers_without_a_readable_object_are_unparseable(answer):
    parsed = parse_ner_answer(answer)
    assert parsed.error is not None and parsed.entities == []


def test_entities_map_onto_token_spans_and_the_unmappable_are_listed():
    parsed = parse_ner_answer(NER_ANSWERS[1][0])
    tags, unmapped = entities_to_tags(BOWIE, parsed.entities + [("ORG", "Rolling Stone"), ("LOC", "LONDON")])
    assert tags[3:5] == ["B-PER", "I-PER"] and tags[9] == "B-LOC"
    assert tags.count("O") == len(BOWIE) - 3
    # an entity not in the post is unmapped; a repeat of one already tagged is not
    assert unmapped == [{"type": "ORG", "text": "Rolling Stone", "reason": "not in the post's tokens"}]


def test_spans_ignore_spacing_case_and_a_dropped_hashtag():
    assert find_token_spans(LIBYA, "Libya's") == [(13, 15)]
    assert find_token_spans(LIBYA, "BREAKING") == [(4, 5)]  # the word, not its '#'
    assert find_token_spans(["#BritneyLive", "tonight"], "BritneyLive") == [(0, 1)]  # a dropped '#'
    assert find_token_spans(LIBYA, "un") == [(5, 6)]
    assert find_token_spans(LIBYA, "Benghazi") == []
    tokens = ["Paris", "and", "paris"]
    assert entities_to_tags(tokens, [("LOC", "Paris")])[0] == ["B-LOC", "O", "B-LOC"]  # every occurrence


def test_an_overlapping_entity_of_a_later_key_is_unmapped():
    tags, unmapped = entities_to_tags(BOWIE, [("LOC", "Earls Court"), ("ORG", "Court")])
    assert tags[6:8] == ["B-LOC", "I-LOC"]
    assert unmapped[0]["reason"] == "overlaps an entity already tagged"


CHOICES = {"A": "/per/per/peer", "B": "/per/loc/place_of_residence", "C": "None"}
OPTION_TEXTS = {"A": "David Bowie and London are peers", "B": "David Bowie lives in London"}


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("B", "/per/loc/place_of_residence"),
        ("b", "/per/loc/place_of_residence"),
        ("(B)", "/per/loc/place_of_residence"),
        ("B.", "/per/loc/place_of_residence"),
        ("**B**", "/per/loc/place_of_residence"),
        ("B. David Bowie lives in London", "/per/loc/place_of_residence"),
        ("Option: B", "/per/loc/place_of_residence"),
        ("The answer is B.", "/per/loc/place_of_residence"),
        (
            "Based on the sentence, the correct option is B because Bowie is at Earls Court.",
            "/per/loc/place_of_residence",
        ),
        ("```\nA\n```", "/per/per/peer"),
        ('{"answer": "A"}', "/per/per/peer"),
        ("David Bowie lives in London.", "/per/loc/place_of_residence"),
        ("/per/per/peer", "/per/per/peer"),
        ("C. None of the above", "None"),
        ("None of the above.", "None"),
        ("There is no relation between them.", "None"),
    ],
)
def test_re_answers_of_the_usual_shapes_pick_their_option(answer, label):
    parsed = parse_re_answer(answer, CHOICES, OPTION_TEXTS)
    assert parsed.error is None and parsed.label == label


def test_re_answers_that_name_no_offered_option_are_counted_as_such():
    not_offered = parse_re_answer("D", CHOICES, OPTION_TEXTS)
    assert not_offered.label is None and not_offered.letter == "D" and "not among" in not_offered.error
    for answer in ("", "I think the answer is a member of the band.", "��)\x1d1"):
        parsed = parse_re_answer(answer, CHOICES, OPTION_TEXTS)
        assert parsed.label is None and parsed.letter is None and parsed.error == "no option in the answer"
    both = parse_re_answer("/per/per/peer or /per/loc/place_of_residence", CHOICES, OPTION_TEXTS)
    assert both.label is None and "2 options" in both.error


# ------------------------------------------------------------------------------- templates


def test_the_ner_prompt_is_the_papers_wording_and_demonstrations_answer_in_it():
    template = get_template("mner-mi-gpt4@1", "ner")
    post = Post("1", BOWIE, tags=["O"] * 3 + ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "B-LOC"] + ["O"] * 8)
    text = user_text(template, post, None)
    assert text.startswith("Please identify Person, Organization, Location and Miscellaneous Entity")
    assert text.endswith("Text: " + " ".join(BOWIE))
    answer = ner_gold_answer(post)
    assert json.loads(answer) == {
        "Person": ["David Bowie"],
        "Organization": [],
        "Location": ["Earls Court", "London"],
        "Miscellaneous": [],
    }
    # the gold answer reads back to the gold tags: the parser and the demonstrations agree
    assert entities_to_tags(BOWIE, parse_ner_answer(answer).entities)[0] == post.tags


def test_re_options_are_filtered_by_known_types_and_end_with_none():
    labels = ["None", "/per/per/peer", "/per/loc/place_of_residence", "/org/loc/locate_at", "custom"]
    assert relation_options(labels) == ["/per/per/peer", "/per/loc/place_of_residence", "/org/loc/locate_at", "custom"]
    assert relation_options(labels, ("PER", "LOC")) == ["/per/loc/place_of_residence", "custom"]
    instance = RelationInstance(Post("7", BOWIE), Span(3, 5, "David Bowie"), Span(9, 10, "London"), "/per/per/peer")
    choices = re_choices(instance, labels, ("PER", "LOC"))
    assert choices == {"A": "/per/loc/place_of_residence", "B": "custom", "C": "None"}
    text = user_text(TEMPLATES["qa4re"], instance, choices)
    assert "A. David Bowie lives in London\nB. the relation between David Bowie and London is custom\n" in text
    assert "C. None of the above" in text
    assert gold_answer(instance, choices) == "C"  # its gold label is not offered for these types


def test_unknown_or_mismatched_templates_are_refused():
    with pytest.raises(ConfigError, match="unknown prompt template"):
        get_template("gpt-5", "ner")
    with pytest.raises(ConfigError, match="version 1, not 2"):
        get_template("qa4re@2", "re")
    with pytest.raises(ConfigError, match="RE prompt"):
        get_template("qa4re", "ner")
