"""Bad input: each malformed record raises ONE DataError naming the file, the line and the field."""

from __future__ import annotations

import json

import pytest

from mmie.cli import main
from mmie.data import read_crop_dict, read_dataset
from mmie.errors import DataError


def mnermi(**changes) -> str:
    record = {"id": 1, "text": ["Kawhi", "Leonard", "wins"], "images": ["1.jpg"], "label": ["B-PER", "I-PER", "O"]}
    record.update(changes)
    return json.dumps({key: value for key, value in record.items() if value is not DROP})


def mremi(**changes) -> str:
    record = {
        "id": "7",
        "tokens": ["Bill", "Cosby", "on", "Hollywood", "Walk"],
        "h": {"name": "Bill Cosby", "pos": [0, 2]},
        "t": {"name": "Hollywood Walk", "pos": [3, 5]},
        "images": ["7_0.jpg"],
        "relation": "/per/misc/present_in",
    }
    record.update(changes)
    return json.dumps({key: value for key, value in record.items() if value is not DROP})


def mnre(**changes) -> str:
    record = {
        "token": ["Bill", "Cosby", "on", "Hollywood", "Walk"],
        "h": {"name": "Bill Cosby", "pos": [0, 2]},
        "t": {"name": "Hollywood Walk", "pos": [3, 5]},
        "img_id": "twitter_1.jpg",
        "relation": "None",
    }
    record.update(changes)
    return repr({key: value for key, value in record.items() if value is not DROP})


DROP = object()  # marks a field to leave out
TWITTER_OK = "IMGID:1\nKawhi\tB-PER\nLeonard\tI-PER\n"

# (format, file content, line of the bad record or token, field, words of the message)
CASES = {
    "invalid JSON": ("mnermi", mnermi() + "\n" + mnermi()[:-9] + "\n", 2, "record", "invalid JSON"),
    "invalid literal": (
        "mnre",
        mnre() + "\n\n" + mnre().replace("'h'", "h") + "\n",
        3,
        "record",
        "not a Python literal",
    ),
    "JSON that is not an object": ("mremi", "[1, 2]\n", 1, "record", "expected an object (dict), found list"),
    "length mismatch": ("mnermi", mnermi(label=["O", "O"]) + "\n", 1, "label", "2 tags for 3 tokens"),
    "unknown tag (jsonl)": (
        "mnermi",
        mnermi(label=["B-PER", "I-PER", "B-FOO"]) + "\n",
        1,
        "label",
        "unknown tag 'B-FOO' at position 2",
    ),
    "unknown tag (twitter)": (
        "twitter",
        TWITTER_OK + "\nIMGID:2\nhi\tO\nthere\tS-PER\n",
        7,
        "tag",
        "unknown tag 'S-PER'",
    ),
    "empty span": ("mremi", mremi(h={"name": "", "pos": [2, 2]}) + "\n", 1, "h.pos", "span [2, 2) is empty"),
    "span out of range": ("mremi", mremi(t={"name": "Walk", "pos": [4, 9]}) + "\n", 1, "t.pos", "outside the 5 tokens"),
    "negative span": ("mnre", mnre(h={"name": "Bill", "pos": [-1, 1]}) + "\n", 1, "h.pos", "outside the 5 tokens"),
    "too many images": (
        "mnermi",
        mnermi(images=[f"{i}.jpg" for i in range(5)]) + "\n",
        1,
        "images",
        "5 images, at most 4",
    ),
    "missing field (mnermi)": ("mnermi", mnermi(text=DROP) + "\n", 1, "text", "missing field"),
    "missing field (mnre)": ("mnre", mnre() + "\n" + mnre(img_id=DROP) + "\n", 2, "img_id", "missing field"),
    "missing nested field": ("mremi", mremi(h={"name": "Bill Cosby"}) + "\n", 1, "h.pos", "missing field"),
    "tokens not a list of str": (
        "mremi",
        mremi(tokens=["Bill", 3, "on", "Hollywood", "Walk"]) + "\n",
        1,
        "tokens",
        "found int at position 1",
    ),
    "tokens a string": (
        "mnre",
        mnre(token="Bill Cosby on Hollywood Walk") + "\n",
        1,
        "token",
        "expected a list of strings, found str",
    ),
    "id of a wrong type": ("mnermi", mnermi(id=1.5) + "\n", 1, "id", "expected a string or integer, found float"),
    "pos of a wrong type": (
        "mnre",
        mnre(t={"name": "Walk", "pos": "4:5"}) + "\n",
        1,
        "t.pos",
        "expected [start, end] integers",
    ),
    "relation of a wrong type": ("mremi", mremi(relation=3) + "\n", 1, "relation", "expected a string, found int"),
    "name does not match the tokens": (
        "mnre",
        mnre(h={"name": "Bill Cosbyy", "pos": [0, 2]}) + "\n",
        1,
        "h.name",
        "does not equal the spanned tokens 'Bill Cosby'",
    ),
    "no tokens": ("mnermi", mnermi(text=[], label=[]) + "\n", 1, "text", "at least one token"),
    "twitter line without a tab": (
        "twitter",
        TWITTER_OK + "\nIMGID:2\nhi O\n",
        6,
        "line",
        "expected 'token<TAB>tag', found 1",
    ),
    "twitter token before IMGID": ("twitter", "Kawhi\tB-PER\n", 1, "IMGID", "must start with an 'IMGID:<id>' line"),
    "twitter empty IMGID": ("twitter", TWITTER_OK + "\nIMGID: \nhi\tO\n", 5, "IMGID", "is empty"),
    "twitter post without tokens": ("twitter", "IMGID:1\n\n" + TWITTER_OK, 1, "tokens", "no token lines"),
}


@pytest.mark.parametrize("case", CASES)
def test_each_malformed_record_names_file_line_and_field(tmp_path, case):
    format_name, content, line, field, words = CASES[case]
    path = tmp_path / f"{format_name}_bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as caught:
        read_dataset(path, format_name)
    error = caught.value
    assert (error.path, error.line, error.field) == (str(path), line, field)
    assert str(error).startswith(f"{path}:{line}: {field}: ")
    assert words in str(error) and "\n" not in str(error)


def test_a_line_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(mnermi().encode() + b"\n" + mnermi(text=["caf\u00e9", "x", "y"]).encode("latin-1") + b"\n")
    # json.dumps escapes the é, so break the bytes by hand.
    path.write_bytes(path.read_bytes().replace(b"\\u00e9", b"\xe9"))
    with pytest.raises(DataError, match=r"latin1.jsonl:2: not valid UTF-8"):
        read_dataset(path, "mnermi")


IRREGULAR_TWITTER = "IMGID:1\nthe\tO\nLeonard\tI-PER\n\nIMGID:2\nNBA\tB-ORG\nKawhi\tI-PER\nLeonard\tI-PER\n"


def test_irregular_tags_load_faithfully_and_are_counted(tmp_path):
    path = tmp_path / "irregular.txt"
    path.write_text(IRREGULAR_TWITTER)
    dataset = read_dataset(path)
    # Records stay as the file wrote them (no I- -> B- rewrite), so writing them back is lossless.
    assert [post.tags for post in dataset.records] == [["O", "I-PER"], ["B-ORG", "I-PER", "I-PER"]]
    assert dataset.irregular_tags == 2
    jsonl = tmp_path / "irregular.jsonl"
    jsonl.write_text(mnermi(label=["I-PER", "I-PER", "O"]) + "\n" + mnermi(label=["B-LOC", "I-PER", "I-LOC"]) + "\n")
    assert read_dataset(jsonl).irregular_tags == 3


def test_strict_tags_makes_irregular_tags_errors_at_their_line(tmp_path):
    path = tmp_path / "irregular.txt"
    path.write_text(IRREGULAR_TWITTER)
    with pytest.raises(DataError) as caught:
        read_dataset(path, strict_tags=True)
    assert (caught.value.line, caught.value.field) == (3, "tag")
    assert "I-PER at position 1 does not continue an entity (after O)" in str(caught.value)
    jsonl = tmp_path / "irregular.jsonl"
    jsonl.write_text(mnermi() + "\n" + mnermi(label=["B-ORG", "I-PER", "O"]) + "\n")
    with pytest.raises(DataError, match=r"irregular.jsonl:2: label: I-PER at position 1 .*after B-ORG"):
        read_dataset(jsonl, strict_tags=True)


def test_skip_invalid_loads_the_rest_and_lists_the_errors(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [mnermi(id=1), "{broken", mnermi(id=3, label=["X", "O", "O"]), mnermi(id=4), mnermi(id=5, text=DROP)]
    path.write_text("\n".join(lines) + "\n")
    dataset = read_dataset(path, skip_invalid=True)
    assert [post.id for post in dataset.records] == ["1", "4"]
    assert [(error.line, error.field) for error in dataset.skipped] == [(2, "record"), (3, "label"), (5, "text")]
    assert [error.reason for error in dataset.skipped] == ["invalid JSON", "unknown tag", "missing field"]


def test_skip_invalid_skips_a_whole_twitter_block_and_keeps_the_next(tmp_path):
    path = tmp_path / "blocks.txt"
    path.write_text(TWITTER_OK + "\nIMGID:2\nbad\tB-XYZ\nmore\tO\n\nIMGID:3\nok\tO\n\nstray\tO\n")
    dataset = read_dataset(path, "twitter", skip_invalid=True)
    assert [post.id for post in dataset.records] == ["1", "3"]
    assert [(error.line, error.field) for error in dataset.skipped] == [(6, "tag"), (12, "IMGID")]


def test_skipped_records_do_not_count_irregular_tags(tmp_path):
    path = tmp_path / "skip.jsonl"
    path.write_text(mnermi(label=["I-PER", "I-PER", "O"], images=["a"] * 5) + "\n" + mnermi() + "\n")
    dataset = read_dataset(path, skip_invalid=True)
    assert (len(dataset), len(dataset.skipped), dataset.irregular_tags) == (1, 1, 0)


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text(mnermi() + "\n" + mnermi(label=["O"]) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "stats", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}:2: label: 1 tags for 3 tokens\n"


def test_cli_reports_skipped_records_grouped_by_reason(tmp_path, capsys):
    path = tmp_path / "mixed.jsonl"
    lines = [mnermi(), "{broken", "{also broken", mnermi(label=["Q", "O", "O"]), mnermi()]
    path.write_text("\n".join(lines) + "\n")
    main(["data", "stats", "--skip-invalid", "--json", str(path)])
    captured = capsys.readouterr()
    stats = json.loads(captured.out)[0]
    assert (stats["posts"], stats["skipped"]) == (2, 3)
    assert stats["skipped_by_reason"] == {"invalid JSON": 2, "unknown tag": 1}
    assert f"{path}: skipped 3 invalid records (2 invalid JSON, 1 unknown tag)" in captured.err
    assert f"e.g. {path}:2: record: invalid JSON" in captured.err


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_crop_dict_of_random_bytes(tmp_path):
    path = tmp_path / "images_vg.pth"
    path.write_bytes(b"\x80\x04not really a pickle at all")
    with pytest.raises(DataError, match=r"images_vg.pth: not a torch-saved crop dictionary"):
        read_crop_dict(path)
