"""NER and RE metrics against numbers computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import json
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2

from mmie.errors import DataError
from mmie.evaluation.metrics import image_groups, ner_entities, ner_scores, re_scores


def counts(scores: dict) -> tuple[int, int, int]:
    return scores["correct"], scores["predicted"], scores["support"]


# ------------------------------------------------------------------------------ NER edge cases


def test_span_starting_with_i_is_an_entity_for_conlleval_but_not_for_strict() -> None:
    gold = [["O", "I-PER", "I-PER", "O"]]
    pred = [["O", "B-PER", "I-PER", "O"]]
    assert ner_entities(gold[0]) == {("PER", 1, 3)}
    assert ner_entities(gold[0], "strict") == set()
    # conlleval: gold PER[1,3), pred PER[1,3): 1 correct of 1 predicted, 1 gold -> P = R = F1 = 1.
    loose = ner_scores(gold, pred)
    assert counts(loose) == (1, 1, 1) and loose["f1"] == 1.0 and loose["mode"] == "conlleval"
    # strict: the gold span opens with I- so it is no entity: 0 correct, 1 predicted, 0 gold -> all 0.
    strict = ner_scores(gold, pred, mode="strict")
    assert counts(strict) == (0, 1, 0)
    assert (strict["precision"], strict["recall"], strict["f1"]) == (0.0, 0.0, 0.0)


def test_adjacent_entities_of_the_same_type_are_two_entities() -> None:
    gold = [["B-PER", "B-PER", "O"]]  # PER[0,1) and PER[1,2)
    assert ner_entities(gold[0]) == {("PER", 0, 1), ("PER", 1, 2)}
    # One merged prediction PER[0,2) matches neither: 0 correct of 1 predicted, 2 gold.
    merged = ner_scores(gold, [["B-PER", "I-PER", "O"]])
    assert counts(merged) == (0, 1, 2) and merged["f1"] == 0.0
    # Three singletons: 2 correct of 3 predicted, 2 gold -> P = 2/3, R = 1, F1 = 2*(2/3)*1/(5/3) = 0.8.
    split = ner_scores(gold, [["B-PER", "B-PER", "B-PER"]])
    assert counts(split) == (2, 3, 2)
    assert split["precision"] == pytest.approx(2 / 3)
    assert split["recall"] == 1.0
    assert split["f1"] == pytest.approx(0.8)
    assert ner_scores(gold, [["B-PER", "B-PER", "B-PER"]], mode="strict")["f1"] == pytest.approx(0.8)


def test_type_change_inside_a_span() -> None:
    gold = [["B-ORG", "I-PER"]]
    pred = [["B-ORG", "B-PER"]]  # ORG[0,1), PER[1,2) in both modes
    # conlleval reads the gold as ORG[0,1) then PER[1,2): both predicted, P = R = F1 = 1.
    assert ner_entities(gold[0]) == {("ORG", 0, 1), ("PER", 1, 2)}
    assert ner_scores(gold, pred)["f1"] == 1.0
    # strict keeps ORG[0,1) and drops the stray I-PER: 1 correct of 2 predicted, 1 gold
    # -> P = 1/2, R = 1, F1 = 2 * 0.5 * 1 / 1.5 = 2/3; the PER type has a wrong prediction only.
    strict = ner_scores(gold, pred, mode="strict")
    assert counts(strict) == (1, 2, 1)
    assert strict["f1"] == pytest.approx(2 / 3)
    assert strict["per_type"]["PER"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
        "predicted": 1,
        "correct": 0,
    }


def test_perfect_and_empty_predictions_never_divide_by_zero() -> None:
    gold = [["B-LOC", "I-LOC", "O"], ["O", "B-MISC"]]
    assert ner_scores(gold, gold)["f1"] == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # seqeval's zero-division warning would fail here
        nothing = ner_scores(gold, [["O"] * 3, ["O"] * 2])  # 0 predicted, 2 gold
        assert counts(nothing) == (0, 0, 2)
        assert (nothing["precision"], nothing["recall"], nothing["f1"]) == (0.0, 0.0, 0.0)
        no_gold = ner_scores([["O", "O"]], [["B-PER", "O"]])  # 1 predicted, 0 gold
        assert (no_gold["precision"], no_gold["recall"], no_gold["f1"]) == (0.0, 0.0, 0.0)
        blank = ner_scores([["O"]], [["O"]])
        assert blank["f1"] == 0.0 and blank["per_type"] == {}
        assert ner_scores([], [])["n"] == 0


def test_per_type_and_by_image_numbers() -> None:
    gold = [
        ["B-PER", "I-PER", "O", "B-LOC"],  # PER[0,2) LOC[3,4)
        ["B-ORG", "O", "B-MISC", "I-MISC"],  # ORG[0,1) MISC[2,4)
        ["B-LOC"],  # LOC[0,1)
    ]
    pred = [
        ["B-PER", "I-PER", "O", "B-ORG"],  # PER[0,2) right, ORG[3,4) wrong
        ["B-ORG", "O", "B-MISC", "O"],  # ORG[0,1) right, MISC[2,3) wrong boundary
        ["B-LOC"],  # right
    ]
    scores = ner_scores(gold, pred, n_images=[1, 3, 2])
    # 5 gold, 5 predicted, 3 correct -> P = R = F1 = 3/5.
    assert counts(scores) == (3, 5, 5)
    assert scores["f1"] == pytest.approx(0.6)
    per_type = scores["per_type"]
    assert list(per_type) == ["PER", "LOC", "ORG", "MISC"]
    assert counts(per_type["PER"]) == (1, 1, 1) and per_type["PER"]["f1"] == 1.0
    # LOC: 1 correct of 1 predicted, 2 gold -> P = 1, R = 1/2, F1 = 2/3.
    assert counts(per_type["LOC"]) == (1, 1, 2)
    assert per_type["LOC"]["recall"] == 0.5 and per_type["LOC"]["f1"] == pytest.approx(2 / 3)
    # ORG: 1 correct of 2 predicted, 1 gold -> P = 1/2, R = 1, F1 = 2/3.
    assert counts(per_type["ORG"]) == (1, 2, 1) and per_type["ORG"]["f1"] == pytest.approx(2 / 3)
    assert counts(per_type["MISC"]) == (0, 1, 1) and per_type["MISC"]["f1"] == 0.0

    by_images = scores["by_images"]
    assert list(by_images) == ["1", "2", "3", "4", "single", "multi", "whole"]
    # single = post 0: 1 correct of 2 and 2 -> 1/2; multi = posts 1 and 2: 2 correct of 3 and 3 -> 2/3.
    assert by_images["single"]["n"] == 1 and by_images["single"]["f1"] == pytest.approx(0.5)
    assert by_images["single"] == by_images["1"]
    assert by_images["multi"]["n"] == 2 and by_images["multi"]["f1"] == pytest.approx(2 / 3)
    assert by_images["3"]["f1"] == pytest.approx(0.5) and by_images["2"]["f1"] == 1.0
    assert by_images["4"]["n"] == 0 and by_images["4"]["f1"] == 0.0 and by_images["4"]["support"] == 0
    whole = dict(by_images["whole"])
    assert whole == {key: value for key, value in scores.items() if key not in ("by_images", "mode")}
    json.dumps(scores)  # JSON-serialisable


def test_bioes_reads_like_its_iob2_equivalent() -> None:
    gold = [["S-PER", "O", "B-LOC", "E-LOC", "B-ORG", "I-ORG", "E-ORG"]]
    pred = [["B-PER", "O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "I-ORG"]]
    assert ner_entities(gold[0]) == {("PER", 0, 1), ("LOC", 2, 4), ("ORG", 4, 7)}
    assert ner_scores(gold, pred)["f1"] == 1.0
    assert ner_scores(gold, pred, mode="strict")["f1"] == 1.0


def test_bad_ner_input_is_a_clear_error() -> None:
    with pytest.raises(DataError, match=r"pred\[0\]: gold has 2 tags, the prediction 1"):
        ner_scores([["O", "O"]], [["O"]])
    with pytest.raises(DataError, match=r"gold\[0\]: tag 'PER' at token 1"):
        ner_scores([["O", "PER"]], [["O", "O"]])
    with pytest.raises(DataError, match="1 gold examples but 2 predictions"):
        ner_scores([["O"]], [["O"], ["O"]])
    with pytest.raises(DataError, match=r"n_images\[0\]: image count 5"):
        ner_scores([["O"]], [["O"]], n_images=[5])
    with pytest.raises(ValueError, match="unknown NER mode"):
        ner_scores([["O"]], [["O"]], mode="lenient")


iob2_tags = st.lists(
    st.sampled_from(["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]), min_size=1, max_size=12
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(iob2_tags, iob2_tags), min_size=1, max_size=6))
def test_counts_agree_with_seqeval(pairs: list[tuple[list[str], list[str]]]) -> None:
    gold = [g[: min(len(g), len(p))] for g, p in pairs]
    pred = [p[: min(len(g), len(p))] for g, p in pairs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on zero division; both sides give 0
        for mode, options in (("conlleval", {}), ("strict", {"mode": "strict", "scheme": IOB2})):
            ours = ner_scores(gold, pred, mode=mode)
            assert ours["f1"] == pytest.approx(f1_score(gold, pred, zero_division=0, **options))
            report = classification_report(gold, pred, output_dict=True, zero_division=0, **options)
            for kind, values in ours["per_type"].items():
                assert values["support"] == report[kind]["support"]
                assert values["f1"] == pytest.approx(report[kind]["f1-score"])


# ------------------------------------------------------------------------------------------ RE


def test_re_scores_by_hand() -> None:
    gold = ["None", "/a", "/a", "/b", "None", "/b"]
    pred = ["None", "/a", "None", "/a", "/a", "/b"]
    # 0: None=None (accuracy only); 1: /a hit; 2: /a missed (costs recall); 3: /b read as /a (costs both);
    # 4: /a for None (costs precision); 5: /b hit.
    scores = re_scores(gold, pred, n_images=[1, 1, 2, 2, 4, 1])
    assert scores["accuracy"] == 0.5  # 0, 1, 5 of 6
    # predicted relations 1, 3, 4, 5 = 4; gold relations 1, 2, 3, 5 = 4; correct 1, 5 = 2 -> P = R = F1 = 1/2.
    assert counts(scores) == (2, 4, 4) and scores["n"] == 6
    assert (scores["precision"], scores["recall"], scores["f1"]) == (0.5, 0.5, 0.5)
    per_relation = scores["per_relation"]
    assert list(per_relation) == ["/a", "/b"]  # the no-relation class is not a relation
    # /a: predicted 1, 3, 4 = 3; gold 1, 2 = 2; correct 1 -> P = 1/3, R = 1/2, F1 = 2*(1/6)/(5/6) = 0.4.
    assert counts(per_relation["/a"]) == (1, 3, 2)
    assert per_relation["/a"]["f1"] == pytest.approx(0.4)
    # /b: predicted 5; gold 3, 5; correct 5 -> P = 1, R = 1/2, F1 = 2/3.
    assert counts(per_relation["/b"]) == (1, 1, 2)
    assert per_relation["/b"]["f1"] == pytest.approx(2 / 3)
    # single = 0, 1, 5: all right -> accuracy 1, 2 of 2 and 2 -> F1 1.
    single = scores["by_images"]["single"]
    assert (single["n"], single["accuracy"], single["f1"]) == (3, 1.0, 1.0)
    # multi = 2, 3, 4: none right; predicted 3, 4; gold 2, 3; correct none -> F1 0.
    multi = scores["by_images"]["multi"]
    assert (multi["n"], multi["accuracy"], multi["f1"]) == (3, 0.0, 0.0)
    assert counts(multi) == (0, 2, 2)
    assert scores["by_images"]["3"]["n"] == 0
    assert scores["by_images"]["4"]["accuracy"] == 0.0 and counts(scores["by_images"]["4"]) == (0, 1, 0)
    json.dumps(scores)


def test_re_edge_cases() -> None:
    # Only the no-relation class: every instance right, but no relation to score -> P = R = F1 = 0.
    scores = re_scores(["None", "None"], ["None", "None"])
    assert scores["accuracy"] == 1.0 and scores["f1"] == 0.0 and scores["per_relation"] == {}
    assert re_scores([], [])["accuracy"] == 0.0
    # Another name for the no-relation class.
    other = re_scores(["NA", "/x"], ["/x", "/x"], no_relation="NA")
    assert counts(other) == (1, 2, 1) and other["precision"] == 0.5 and other["recall"] == 1.0
    with pytest.raises(DataError, match=r"gold\[1\]: relation label None"):
        re_scores(["None", None], ["None", "None"])  # type: ignore[list-item]


def test_image_groups_include_text_only_posts_only_when_present() -> None:
    assert "0" not in image_groups([1, 2])
    groups = image_groups([0, 1, 4, 2])
    assert list(groups) == ["0", "1", "2", "3", "4", "single", "multi", "whole"]
    assert groups["0"] == [0] and groups["multi"] == [2, 3] and groups["whole"] == [0, 1, 2, 3]
