"""The prediction-file format: writing, reading, resuming after a kill, lining up with gold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmie.data.schema import Post, RelationInstance, Span
from mmie.errors import DataError
from mmie.evaluation.predictions import (
    PredictionWriter,
    ner_prediction,
    re_prediction,
    read_predictions,
    score_predictions,
)

POSTS = [
    Post(
        id="a", tokens=["Kawhi", "Leonard", "in", "Toronto"], images=["a_0.jpg"], tags=["B-PER", "I-PER", "O", "B-LOC"]
    ),
    Post(id="b", tokens=["NBA", "tonight"], images=["b_0.jpg", "b_1.jpg"], tags=["B-ORG", "O"]),
    Post(id="c", tokens=["hello"], images=["c_0.jpg"], tags=["O"]),
]


def instance(identifier: str, label: str, n_images: int = 1) -> RelationInstance:
    images = [f"{identifier}_{i}.jpg" for i in range(n_images)]
    post = Post(id=identifier, tokens=["Bill", "Cosby", "in", "LA"], images=images)
    return RelationInstance(post=post, head=Span(0, 2, "Bill Cosby"), tail=Span(3, 4, "LA"), label=label)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_round_trip_of_both_tasks(tmp_path: Path) -> None:
    ner_path = tmp_path / "out" / "ner.jsonl"  # the writer creates the folder
    with PredictionWriter(ner_path) as writer:
        for post in POSTS:
            writer.write(ner_prediction(post, post.tags or []))
    assert writer.written == 3
    records = read_predictions(ner_path)
    assert records[1] == {"id": "b", "tokens": ["NBA", "tonight"], "tags": ["B-ORG", "O"], "n_images": 2}
    assert ner_path.read_text(encoding="utf-8").count("\n") == 3

    re_path = tmp_path / "re.jsonl"
    scores = {"None": 0.1, "/per/loc/place_of_residence": 0.9}
    with PredictionWriter(re_path) as writer:
        writer.write(
            re_prediction(instance("7", "None", 2), "/per/loc/place_of_residence", scores, relevance=[0.75, 0.25])
        )
    (record,) = read_predictions(re_path)
    assert record == {
        "id": "7",
        "head": [0, 2],
        "tail": [3, 4],
        "relation": "/per/loc/place_of_residence",
        "score": 0.9,
        "scores": scores,
        "n_images": 2,
        "relevance": [0.75, 0.25],
    }


def test_a_killed_writer_keeps_every_flushed_line(tmp_path: Path) -> None:
    path = tmp_path / "pred.jsonl"
    script = (
        "import sys, time\n"
        "from mmie.evaluation.predictions import PredictionWriter\n"
        "writer = PredictionWriter(sys.argv[1])\n"
        "for i in range(2):\n"
        "    writer.write({'id': str(i), 'tags': ['O', 'B-PER']})\n"
        "print('written', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "written"
    finally:
        process.kill()  # SIGKILL: no close(), no buffers emptied at exit
        process.wait()
    assert [record["id"] for record in read_predictions(path)] == ["0", "1"]


def test_resume_drops_a_cut_off_last_line(tmp_path: Path) -> None:
    path = tmp_path / "pred.jsonl"
    with PredictionWriter(path) as writer:
        for post in POSTS[:2]:
            writer.write(ner_prediction(post, ["O"] * len(post.tokens)))
    # What a kill in the middle of the third write leaves on disk: part of a line, no newline.
    third = json.dumps(ner_prediction(POSTS[2], ["O"]))
    with open(path, "ab") as stream:
        stream.write(third[: len(third) // 2].encode("utf-8"))
    with pytest.raises(DataError, match=r"pred\.jsonl:3: the last line is cut off"):
        read_predictions(path)

    with PredictionWriter(path, resume=True) as writer:
        assert writer.already_written == 2 and writer.existing_ids == ["a", "b"]
        for post in POSTS[writer.already_written :]:
            writer.write(ner_prediction(post, ["O"] * len(post.tokens)))
        assert writer.written == 3
    assert [record["id"] for record in read_predictions(path)] == ["a", "b", "c"]


def test_resume_keeps_a_complete_last_line_missing_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "pred.jsonl"
    path.write_text('{"id": "a", "tags": ["O"]}', encoding="utf-8")
    with PredictionWriter(path, resume=True) as writer:
        assert writer.already_written == 1
        writer.write({"id": "b", "tags": ["B-LOC"]})
    assert path.read_text(encoding="utf-8") == '{"id": "a", "tags": ["O"]}\n{"id": "b", "tags": ["B-LOC"]}\n'


def test_resume_refuses_damage_before_the_last_line_and_touches_nothing(tmp_path: Path) -> None:
    lines = ['{"id": "a", "tags": ["O"]}', '{"id": "b", "tags"', '{"id": "c", "tags": []}']
    path = write_lines(tmp_path / "pred.jsonl", lines)
    before = path.read_bytes()
    with pytest.raises(DataError, match=r"pred\.jsonl:2: not a JSON object"):
        PredictionWriter(path, resume=True)
    assert path.read_bytes() == before


def test_without_resume_the_file_starts_afresh_and_missing_files_resume_from_zero(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "pred.jsonl", ['{"id": "old", "tags": ["O"]}'])
    with PredictionWriter(path) as writer:
        writer.write({"id": "new", "tags": ["O"]})
    assert [record["id"] for record in read_predictions(path)] == ["new"]
    with PredictionWriter(tmp_path / "absent.jsonl", resume=True) as writer:
        assert writer.already_written == 0


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"id": "1"}', r':2: a prediction has "tags" \(NER\) or "relation" \(RE\)'),
        ('{"id": true, "tags": []}', r":2: id: expected a string"),
        ('{"tags": ["O"]}', r":2: id: missing"),
        ('{"id": "1", "tags": ["B-PER", "PER"]}', r":2: tags: tag 'PER' at token 1"),
        ('{"id": "1", "tokens": ["a"], "tags": ["O", "O"]}', r":2: tags: 2 tags for 1 tokens"),
        ('{"id": "1", "tags": ["O"], "n_images": 7}', r":2: n_images: expected an integer in 0..4"),
        ('{"id": "1", "relation": "None", "head": [3, 2]}', r":2: head: expected \[start, end\)"),
        ('{"id": "1", "relation": "None", "score": "high"}', r":2: score: expected a number"),
        ('{"id": "1", "relation": "None", "scores": {"None": "x"}}', r":2: scores: expected an object"),
        ('{"id": "1", "relation": ""}', r":2: relation: expected a label string"),
        ('{"id": "1", "relation": "None"}', r":2: a RE prediction in a file of NER predictions"),
        ("[1, 2]", r":2: expected a JSON object, got list"),
        ("{'id': '1'}", r":2: not a JSON object"),
        ("", r":2: blank line between records"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path: Path, line: str, expected: str) -> None:
    lines = ['{"id": "0", "tags": ["O"]}', line, '{"id": "2", "tags": ["O"]}']
    path = write_lines(tmp_path / "pred.jsonl", lines)
    with pytest.raises(DataError, match="pred.jsonl" + expected):
        read_predictions(path)


def test_trailing_blank_lines_are_ignored_and_missing_files_are_named(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "pred.jsonl", ['{"id": 3, "tags": ["O"]}', "", "  "])
    assert read_predictions(path) == [{"id": "3", "tags": ["O"]}]  # integer ids read as strings
    with pytest.raises(DataError, match="absent.jsonl: no such prediction file"):
        read_predictions(tmp_path / "absent.jsonl")


def test_the_writer_refuses_what_it_could_not_read_back(tmp_path: Path) -> None:
    path = tmp_path / "pred.jsonl"
    with PredictionWriter(path) as writer:
        writer.write({"id": "0", "relation": "None", "score": 0.5})
        with pytest.raises(DataError, match=r"pred\.jsonl:2: score: expected a number"):
            writer.write({"id": "1", "relation": "None", "score": float("nan")})
        with pytest.raises(DataError, match=r"pred\.jsonl:2: not JSON-serialisable"):
            writer.write({"id": "1", "relation": "None", "relevance": object()})
        with pytest.raises(DataError, match=r"pred\.jsonl:2: a NER prediction in a file of RE predictions"):
            writer.write({"id": "1", "tags": ["O"]})
    assert len(read_predictions(path)) == 1


def test_score_predictions_ner(tmp_path: Path) -> None:
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"], ["B-PER"]]
    path = tmp_path / "pred.jsonl"
    with PredictionWriter(path) as writer:
        for post, tags in zip(POSTS, predicted):
            writer.write(ner_prediction(post, tags))
    scores = score_predictions(POSTS, read_predictions(path), pred_path=path)
    # gold PER LOC | ORG | -, predicted PER ORG | ORG | PER: 2 correct, 4 predicted, 3 gold
    # -> P = 1/2, R = 2/3, F1 = 2*(1/3)/(7/6) = 4/7.
    assert (scores["correct"], scores["predicted"], scores["support"]) == (2, 4, 3)
    assert scores["f1"] == pytest.approx(4 / 7)
    # post b is the only two-image post: ORG right -> multi F1 = 1;
    # single = posts a and c: 1 correct of 3 predicted, 2 gold.
    assert scores["by_images"]["multi"]["f1"] == 1.0
    assert scores["by_images"]["single"]["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_score_predictions_re() -> None:
    gold = [instance("0", "None"), instance("1", "/per/loc/place_of_residence", 3)]
    predictions = [re_prediction(gold[0], "None"), re_prediction(gold[1], "/per/loc/place_of_residence")]
    scores = score_predictions(gold, predictions)
    assert scores["accuracy"] == 1.0 and scores["f1"] == 1.0 and scores["by_images"]["3"]["n"] == 1


def test_alignment_errors_name_the_prediction_line_and_both_ids(tmp_path: Path) -> None:
    good = [ner_prediction(post, post.tags or []) for post in POSTS]
    swapped = [good[0], good[2], good[1]]
    with pytest.raises(DataError, match=r"p\.jsonl:2: id: prediction id 'c' but gold record 2 has id 'b'"):
        score_predictions(POSTS, swapped, pred_path="p.jsonl")
    with pytest.raises(DataError, match=r"p\.jsonl:3: 2 predictions for 3 gold records"):
        score_predictions(POSTS, good[:2], pred_path="p.jsonl")
    with pytest.raises(DataError, match=r"p\.jsonl:4: 4 predictions for 3 gold records"):
        score_predictions(POSTS, good + [good[0]], pred_path="p.jsonl")
    other_tokens = [good[0], dict(good[1], tokens=["NBA", "today"]), good[2]]
    with pytest.raises(DataError, match=r"p\.jsonl:2: tokens: token 1 is 'today', the gold has 'tonight'"):
        score_predictions(POSTS, other_tokens, pred_path="p.jsonl")
    short = [good[0], {"id": "b", "tags": ["O"]}, good[2]]
    with pytest.raises(DataError, match=r"p\.jsonl:2: tags: 1 tags, the gold post has 2 tokens"):
        score_predictions(POSTS, short, pred_path="p.jsonl")
    with pytest.raises(DataError, match="the gold file is a NER dataset but the predictions are not"):
        score_predictions(POSTS, [{"id": "a", "relation": "None"}], pred_path="p.jsonl")
    unlabelled = [Post(id="a", tokens=["x"])]
    with pytest.raises(DataError, match=r"gold\.txt: tags: gold record 'a' has no tags"):
        score_predictions(unlabelled, [{"id": "a", "tags": ["O"]}], gold_path="gold.txt")
    relation = instance("0", "None")
    moved = dict(re_prediction(relation, "None"), tail=[2, 4])
    with pytest.raises(DataError, match=r"tail: \[2, 4\] but the gold tail is \[3, 4\]"):
        score_predictions([relation], [moved])
