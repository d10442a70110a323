"""``mmie score`` end to end on small hand-written files and on the real Twitter-2017 valid split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmie.cli import main
from mmie.data import read_dataset
from mmie.evaluation.predictions import PredictionWriter, ner_prediction

TWITTER2017_VALID = Path(__file__).resolve().parents[2] / "shared" / "data" / "twitter2017" / "valid.txt"

# MNER-MI JSON lines; the third post has the irregular `O I-ORG` (an entity for conlleval only).
MNERMI_GOLD = [
    {
        "id": 1,
        "text": ["Kawhi", "Leonard", "in", "Toronto"],
        "images": ["1_0.jpg"],
        "label": ["B-PER", "I-PER", "O", "B-LOC"],
        "url": None,
    },
    {
        "id": 2,
        "text": ["NBA", "tonight", "with", "Drake"],
        "images": ["2_0.jpg", "2_1.jpg"],
        "label": ["B-ORG", "O", "O", "B-PER"],
    },
    {
        "id": 3,
        "text": ["go", "Lakers", "in", "LA"],
        "images": ["3_0.jpg", "3_1.jpg", "3_2.jpg"],
        "label": ["O", "I-ORG", "O", "B-LOC"],
    },
]
NER_PREDICTED = [
    ["B-PER", "I-PER", "O", "O"],  # PER right, LOC missed
    ["B-ORG", "O", "O", "B-PER"],  # both right
    ["O", "B-ORG", "O", "B-PER"],  # ORG[1,2) (right for conlleval), PER where the gold has LOC
]

# MNRE: Python dict literals, ids are the 0-based line numbers.
MNRE_GOLD = [
    "{'token': ['UN', 'in', 'Libya'], 'h': {'name': 'UN', 'pos': [0, 1]},"
    " 't': {'name': 'Libya', 'pos': [2, 3]}, 'img_id': 'a.jpg', 'relation': 'None'}",
    "{'token': ['Bowie', 'lives', 'in', 'London'], 'h': {'name': 'Bowie', 'pos': [0, 1]},"
    " 't': {'name': 'London', 'pos': [3, 4]}, 'img_id': 'b.jpg', 'relation': '/per/loc/place_of_residence'}",
    "{'token': ['Messi', 'of', 'Barca'], 'h': {'name': 'Messi', 'pos': [0, 1]},"
    " 't': {'name': 'Barca', 'pos': [2, 3]}, 'img_id': 'c.jpg', 'relation': '/per/org/member_of'}",
    "{'token': ['Obama', 'and', 'IBM'], 'h': {'name': 'Obama', 'pos': [0, 1]},"
    " 't': {'name': 'IBM', 'pos': [2, 3]}, 'img_id': 'd.jpg', 'relation': 'None'}",
]
RE_PREDICTED = ["None", "/per/loc/place_of_residence", "None", "/per/org/member_of"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.fixture
def ner_files(tmp_path: Path) -> tuple[Path, Path]:
    gold = write_jsonl(tmp_path / "gold.jsonl", MNERMI_GOLD)
    pred = write_jsonl(
        tmp_path / "pred.jsonl",
        [
            {"id": str(r["id"]), "tokens": r["text"], "tags": tags, "n_images": len(r["images"])}
            for r, tags in zip(MNERMI_GOLD, NER_PREDICTED)
        ],
    )
    return gold, pred


def row(output: str, name: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.split()[:1] == [name])


def test_ner_scores_as_json(ner_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    gold, pred = ner_files
    code, out, err = run(["score", str(gold), str(pred), "--json"], capsys)
    assert (code, err) == (0, "")
    scores = json.loads(out)
    assert scores["task"] == "ner" and scores["mode"] == "conlleval"
    # gold PER LOC | ORG PER | ORG LOC = 6; predicted PER | ORG PER | ORG PER = 5;
    # correct PER | ORG PER | ORG = 4
    # -> P = 4/5, R = 4/6, F1 = 2PR/(P+R) = (16/15)/(22/15) = 8/11.
    assert (scores["correct"], scores["predicted"], scores["support"]) == (4, 5, 6)
    assert scores["f1"] == pytest.approx(8 / 11)
    assert scores["per_type"]["LOC"]["recall"] == 0.0 and scores["per_type"]["ORG"]["f1"] == 1.0
    by_images = scores["by_images"]
    # one image: post 1, 1 of 1 predicted, 2 gold -> F1 2/3; multi: posts 2 and 3, 3 of 4 and 4 -> 3/4.
    assert by_images["1"]["f1"] == pytest.approx(2 / 3)
    assert by_images["multi"]["f1"] == pytest.approx(0.75)
    assert by_images["4"]["n"] == 0


def test_ner_strict_drops_the_entity_that_opens_with_i(
    ner_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    gold, pred = ner_files
    argv = ["score", str(gold), str(pred), "--strict", "--json", "--format", "mnermi"]
    code, out, _ = run(argv, capsys)
    scores = json.loads(out)
    # The gold ORG of post 3 (`O I-ORG`) is gone: 5 gold, 5 predicted, 3 correct -> P = R = F1 = 3/5.
    assert code == 0 and scores["mode"] == "strict"
    assert (scores["correct"], scores["predicted"], scores["support"]) == (3, 5, 5)
    assert scores["f1"] == pytest.approx(0.6)


def test_ner_table(ner_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    gold, pred = ner_files
    code, out, _ = run(["score", str(gold), str(pred)], capsys)
    assert code == 0
    assert row(out, "all") == ["all", "80.00", "66.67", "72.73", "6", "5", "4", "3"]
    assert row(out, "LOC") == ["LOC", "0.00", "0.00", "0.00", "2", "0", "0"]
    assert row(out, "multi") == ["multi", "75.00", "75.00", "75.00", "4", "4", "3", "2"]
    assert "4" not in [line.split()[0] for line in out.splitlines() if line.strip()]  # empty groups not shown
    assert "the gold has 1 I- tags that do not continue an entity: read as entity starts" in out


def test_re_scores_from_an_mnre_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold = tmp_path / "mnre_val .txt"  # the release's name, with its space
    gold.write_text("\n".join(MNRE_GOLD) + "\n", encoding="utf-8")
    pred = write_jsonl(
        tmp_path / "pred.jsonl", [{"id": str(i), "relation": label} for i, label in enumerate(RE_PREDICTED)]
    )
    code, out, _ = run(["score", str(gold), str(pred), "--json"], capsys)
    scores = json.loads(out)
    assert code == 0 and scores["task"] == "re"
    # right: 0 and 1 of 4 -> accuracy 1/2; predicted relations 1, 3; gold relations 1, 2; correct 1
    # -> P = R = F1 = 1/2.
    assert scores["accuracy"] == 0.5 and scores["f1"] == 0.5
    assert scores["per_relation"]["/per/loc/place_of_residence"]["f1"] == 1.0
    member = scores["per_relation"]["/per/org/member_of"]
    assert (member["correct"], member["predicted"], member["support"]) == (0, 1, 1)
    assert scores["by_images"]["single"]["n"] == 4 and scores["by_images"]["multi"]["n"] == 0
    code, out, _ = run(["score", str(gold), str(pred)], capsys)
    assert row(out, "all") == ["all", "50.00", "50.00", "50.00", "50.00", "2", "2", "1", "4"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda lines: [lines[0], lines[2], lines[1]],
            "pred.jsonl:2: id: prediction id '3' but gold record 2 has id '2'",
        ),
        (lambda lines: lines[:2], "pred.jsonl:3: 2 predictions for 3 gold records"),
        (lambda lines: lines[:2] + [lines[2][:20]], "pred.jsonl:3: the last line is cut off"),
    ],
)
def test_misaligned_predictions_are_one_line_errors(
    ner_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], change, expected: str
) -> None:
    gold, pred = ner_files
    lines = pred.read_text(encoding="utf-8").splitlines()
    pred.write_text("\n".join(change(lines)), encoding="utf-8")  # no final newline: the cut-off case
    code, out, err = run(["score", str(gold), str(pred)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and expected in err and len(err.strip().splitlines()) == 1


def test_real_twitter2017_valid_against_itself_and_all_outside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not TWITTER2017_VALID.is_file():
        pytest.skip(f"the shared Twitter-2017 data is absent ({TWITTER2017_VALID})")
    posts = read_dataset(TWITTER2017_VALID).records
    perfect, outside = tmp_path / "perfect.jsonl", tmp_path / "outside.jsonl"
    with PredictionWriter(perfect) as gold_copy, PredictionWriter(outside) as nothing:
        for post in posts:
            gold_copy.write(ner_prediction(post, post.tags))
            nothing.write(ner_prediction(post, ["O"] * len(post.tokens)))
    code, out, _ = run(["score", str(TWITTER2017_VALID), str(perfect), "--json"], capsys)
    scores = json.loads(out)
    assert code == 0 and scores["n"] == 723 and scores["support"] > 1000
    assert scores["f1"] == 1.0 and all(values["f1"] == 1.0 for values in scores["per_type"].values())
    assert set(scores["per_type"]) == {"PER", "LOC", "ORG", "MISC"}
    assert scores["by_images"]["single"]["n"] == 723  # Twitter-2017 has one image per post
    code, out, _ = run(["score", str(TWITTER2017_VALID), str(outside), "--json"], capsys)
    scores = json.loads(out)
    assert code == 0 and scores["predicted"] == 0 and scores["f1"] == 0.0 and scores["recall"] == 0.0
