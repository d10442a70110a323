"""Readers and writers: real files round-trip, constructed records round-trip, detection never guesses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from mmie.data import (
    Dataset,
    Post,
    RelationInstance,
    Span,
    convert_dataset,
    detect_format,
    read_crop_dict,
    read_dataset,
    write_crop_dict,
    write_dataset,
)
from mmie.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")

# The example lines of DESIGN.md section 2, as the releases write them.
MNERMI_LINE = (
    '{"id": 5302, "text": ["i", "have", "such", "a", "soft", "spot", "for", "jaebeom"], '
    '"images": ["5302_0.jpg", "5302_1.jpg"], "label": ["O", "O", "O", "O", "O", "O", "O", "B-PER"], '
    '"url": "https://twitter.com/i/web/status/1389292031688720386"}'
)
MREMI_LINE = (
    '{"id": "11573", "tokens": ["Jason", "Isaacs", "and", "Emma", "Hewitt", "Married", "for", "21", "years"], '
    '"h": {"name": "Jason Isaacs", "pos": [0, 2]}, "t": {"name": "Emma Hewitt", "pos": [3, 5]}, '
    '"images": ["11573_0.jpg"], "relation": "/per/per/couple"}'
)
MNRE_LINE = (
    "{'token': ['RT', '@WLWT', ':', 'Bill', 'Cosby', \"'s\", 'star', 'on', 'Hollywood', 'Walk', 'of', 'Fame', "
    "'vandalized'], 'h': {'name': 'Bill Cosby', 'pos': [3, 5]}, 't': {'name': 'Hollywood Walk of Fame', "
    "'pos': [8, 12]}, 'img_id': 'twitter_stream_2018_09_04_11_0_2_240.jpg', 'relation': '/per/misc/present_in'}"
)
TWITTER_BLOCK = "IMGID:17_06_2932\n#\tO\nNBA\tB-ORG\nKawhi\tB-PER\nLeonard\tI-PER\n"


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@needs_shared
@pytest.mark.parametrize(
    "relative, format_name, count",
    [
        ("twitter2017/train.txt", "twitter", 3373),
        ("twitter2017/valid.txt", "twitter", 723),
        ("mnre/mnre_train.txt", "mnre", 12247),
        ("mnre/mnre_val.txt", "mnre", 1624),
    ],
)
def test_real_files_round_trip(tmp_path, relative, format_name, count):
    source = SHARED_DATA / relative
    dataset = read_dataset(source)
    assert (dataset.format, len(dataset), dataset.skipped) == (format_name, count, [])
    copy = tmp_path / "copy.txt"
    write_dataset(dataset, copy, format_name)
    assert read_dataset(copy, format_name).records == dataset.records
    # The writers write the release layout itself: the bytes come back unchanged.
    assert copy.read_bytes() == source.read_bytes()


@needs_shared
def test_twitter_records_match_the_release():
    posts = read_dataset(SHARED_DATA / "twitter2017" / "train.txt", "twitter").records
    first = posts[0]
    assert first.id == "17_06_12483" and first.images == ["17_06_12483.jpg"]
    assert first.tokens[:5] == ["New", "Post", ":", "Blackburn", "Festival"]
    assert first.tags[3:8] == ["B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"]


@needs_shared
def test_mnre_records_and_the_release_file_name_with_a_space(tmp_path):
    # The release names its validation file `mnre_val .txt`; such a path must just work.
    spaced = tmp_path / "mnre data" / "mnre_val .txt"
    spaced.parent.mkdir()
    shutil.copy(SHARED_DATA / "mnre" / "mnre_val.txt", spaced)
    dataset = read_dataset(spaced)
    assert dataset.format == "mnre" and len(dataset) == 1624 and dataset.path == spaced
    instance = dataset.records[0]
    assert instance.id == "0" and dataset.records[-1].id == "1623"
    assert instance.post.images == ["twitter_stream_2018_09_04_14_0_2_44.jpg"]
    assert instance.head == Span(5, 6, "UN") and instance.tail == Span(13, 14, "Libya")
    assert instance.label == "None"


def test_design_examples_read_as_documented(tmp_path):
    post = read_dataset(write_text(tmp_path / "a.jsonl", MNERMI_LINE + "\n"), "mnermi").records[0]
    assert post == Post(
        id="5302",
        tokens=["i", "have", "such", "a", "soft", "spot", "for", "jaebeom"],
        images=["5302_0.jpg", "5302_1.jpg"],
        url="https://twitter.com/i/web/status/1389292031688720386",
        tags=["O"] * 7 + ["B-PER"],
    )
    instance = read_dataset(write_text(tmp_path / "b.jsonl", MREMI_LINE + "\n"), "mremi").records[0]
    assert instance.id == "11573" and instance.label == "/per/per/couple"
    assert (instance.head, instance.tail) == (Span(0, 2, "Jason Isaacs"), Span(3, 5, "Emma Hewitt"))
    instance = read_dataset(write_text(tmp_path / "c.txt", MNRE_LINE + "\n"), "mnre").records[0]
    assert instance.post.images == ["twitter_stream_2018_09_04_11_0_2_240.jpg"]
    assert instance.tail == Span(8, 12, "Hollywood Walk of Fame")
    post = read_dataset(write_text(tmp_path / "d.txt", TWITTER_BLOCK), "twitter").records[0]
    assert post.tags == ["O", "B-ORG", "B-PER", "I-PER"] and post.images == ["17_06_2932.jpg"]


def test_release_spellings_of_misc_become_misc(tmp_path):
    twitter_2015 = write_text(tmp_path / "t15.txt", "IMGID:1\nSuper\tB-OTHER\nBowl\tI-OTHER\n\n")
    assert read_dataset(twitter_2015).records[0].tags == ["B-MISC", "I-MISC"]
    line = {"id": 1, "text": ["Super", "Bowl"], "images": [], "label": ["B-MIS", "I-MIS"], "url": None}
    mnermi = write_text(tmp_path / "m.jsonl", json.dumps(line) + "\n")
    assert read_dataset(mnermi).records[0].tags == ["B-MISC", "I-MISC"]


def test_twitter_tolerates_crlf_bom_and_missing_final_blank_line(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"\xef\xbb\xbfIMGID:7\r\nHi\tO\r\n\r\n\r\nIMGID:8\r\nParis\tB-LOC")
    posts = read_dataset(path).records
    assert [(post.id, post.tokens, post.tags) for post in posts] == [("7", ["Hi"], ["O"]), ("8", ["Paris"], ["B-LOC"])]


CONSTRUCTED_POSTS = [
    Post("5302", ["i", "have", "jaebeom"], ["5302_0.jpg", "5302_1.jpg"], "https://t.co/x", ["O", "O", "B-PER"]),
    Post("twitter2017-17_06_1", ["Kawhi", "Leonard"], ["17_06_1.jpg"], None, ["B-PER", "I-PER"]),
    Post("007", ["zero", "padded", "id"], [], None, ["O", "O", "O"]),
    Post(
        "u", ["ünïcødé", "😍", "line\u2028sep", "tab\there", "\ud800"], ["a.jpg", "b.jpg", "c.jpg", "d.jpg"], None, None
    ),
    Post("irregular", ["O", "then", "I"], ["x.jpg"], None, ["O", "I-PER", "B-ORG"]),
]
CONSTRUCTED_INSTANCES = [
    RelationInstance(
        Post("11573", ["Jason", "Isaacs", "and", "Emma", "Hewitt"], ["11573_0.jpg", "11573_1.jpg"]),
        Span(0, 2, "Jason Isaacs"),
        Span(3, 5, "Emma Hewitt"),
        "/per/per/couple",
    ),
    # Head and tail may nest (`SAP SE` / `SAP`), the label may be the "None" class or missing (unlabelled).
    RelationInstance(Post("n1", ["SAP", "SE", "wins"], ["n1.jpg"]), Span(0, 2, "SAP SE"), Span(0, 1, "SAP"), "None"),
    RelationInstance(Post("n2", ["x", "y"], []), Span(1, 2, "y"), Span(0, 1, "x"), None),
]


def test_mnermi_round_trip_on_constructed_posts(tmp_path):
    path = tmp_path / "posts.jsonl"
    write_dataset(CONSTRUCTED_POSTS, path, "mnermi")
    again = read_dataset(path)
    assert again.format == "mnermi" and again.records == CONSTRUCTED_POSTS
    assert again.irregular_tags == 1
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    # Numeric ids are written as numbers, as MNER-MI does; others stay strings.
    assert [line["id"] for line in lines] == [5302, "twitter2017-17_06_1", "007", "u", "irregular"]
    assert lines[3]["label"] is None and lines[1]["url"] is None


def test_mremi_round_trip_on_constructed_instances(tmp_path):
    path = tmp_path / "instances.jsonl"
    write_dataset(CONSTRUCTED_INSTANCES, path, "mremi")
    again = read_dataset(path)
    assert again.format == "mremi" and again.records == CONSTRUCTED_INSTANCES
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first == {
        "id": "11573",
        "tokens": ["Jason", "Isaacs", "and", "Emma", "Hewitt"],
        "h": {"name": "Jason Isaacs", "pos": [0, 2]},
        "t": {"name": "Emma Hewitt", "pos": [3, 5]},
        "images": ["11573_0.jpg", "11573_1.jpg"],
        "relation": "/per/per/couple",
    }


def test_writers_refuse_records_their_format_cannot_hold(tmp_path):
    two_images = Post("1", ["a"], ["1.jpg", "2.jpg"], None, ["O"])
    with pytest.raises(DataError, match=r"images: .*exactly one image") as caught:
        write_dataset([two_images], tmp_path / "t.txt", "twitter")
    assert "t.txt" in str(caught.value)
    with pytest.raises(DataError, match="img_id"):
        write_dataset([CONSTRUCTED_INSTANCES[0]], tmp_path / "m.txt", "mnre")
    with pytest.raises(DataError, match="holds RelationInstance records; record 0 is Post"):
        write_dataset(CONSTRUCTED_POSTS, tmp_path / "r.jsonl", "mremi")
    with pytest.raises(DataError, match=r"text: token 1 is an empty string"):
        write_dataset([Post("1", ["a", ""], [], None, None)], tmp_path / "e.jsonl", "mnermi")
    with pytest.raises(DataError, match=r"h.name: 'Bill' does not equal the spanned tokens 'x'"):
        write_dataset(
            [RelationInstance(Post("1", ["x"], []), Span(0, 1, "Bill"), Span(0, 1, "x"), "None")],
            tmp_path / "n.jsonl",
            "mremi",
        )
    with pytest.raises(DataError, match="format"):
        write_dataset([], tmp_path / "z.txt", "conll")


def test_failed_write_leaves_the_old_file_untouched(tmp_path):
    path = write_text(tmp_path / "keep.jsonl", "precious\n")
    broken = CONSTRUCTED_POSTS[:2] + [Post("bad", ["a"], [], None, ["B-OTHER"])]
    with pytest.raises(DataError, match="not a canonical BIO tag"):
        write_dataset(broken, path, "mnermi")
    assert path.read_text() == "precious\n"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.jsonl"]


@needs_shared
def test_convert_twitter_to_mnermi_and_mnre_to_mremi(tmp_path):
    ner = convert_dataset(SHARED_DATA / "twitter2017" / "valid.txt", tmp_path / "valid.jsonl")
    converted = read_dataset(tmp_path / "valid.jsonl")
    assert converted.format == "mnermi" and converted.records == ner.records
    assert converted.records[0].images == [converted.records[0].id + ".jpg"]
    re = convert_dataset(SHARED_DATA / "mnre" / "mnre_val.txt", tmp_path / "val.jsonl")
    converted = read_dataset(tmp_path / "val.jsonl")
    assert converted.format == "mremi" and converted.records == re.records
    line = json.loads((tmp_path / "val.jsonl").read_text().splitlines()[0])
    assert line["id"] == "0" and line["images"] == ["twitter_stream_2018_09_04_14_0_2_44.jpg"]
    with pytest.raises(DataError, match="cannot convert mnre"):
        convert_dataset(SHARED_DATA / "mnre" / "mnre_val.txt", tmp_path / "x.jsonl", to="mnermi")


def test_convert_mnermi_back_to_twitter_when_the_posts_fit(tmp_path):
    posts = [Post("17_06_1", ["Kawhi", "Leonard"], ["17_06_1.jpg"], None, ["B-PER", "I-PER"])]
    write_dataset(posts, tmp_path / "in.jsonl", "mnermi")
    convert_dataset(tmp_path / "in.jsonl", tmp_path / "out.txt", to="twitter")
    assert (tmp_path / "out.txt").read_text() == "IMGID:17_06_1\nKawhi\tB-PER\nLeonard\tI-PER\n\n"


@pytest.mark.parametrize(
    "content, expected",
    [
        (TWITTER_BLOCK, "twitter"),
        ("\n\n" + MNERMI_LINE + "\n" + MNERMI_LINE + "\n", "mnermi"),
        (MREMI_LINE + "\n", "mremi"),
        (MNRE_LINE + "\n" + MNRE_LINE + "\n", "mnre"),
    ],
)
def test_detection_of_each_format(tmp_path, content, expected):
    path = write_text(tmp_path / "data.txt", content)
    assert detect_format(path) == expected
    assert read_dataset(path).format == expected


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty file"),
        ("\n  \n\n", "empty file"),
        ("just some words\n", "unrecognised format"),
        ("{broken\n" + MNRE_LINE.replace("'h'", "'head'") + "\n", "unrecognised format"),
        ('{"foo": 1}\n', "unrecognised format"),
        # A record carrying the fields of two formats: which one is meant cannot be told.
        (json.dumps({**json.loads(MNERMI_LINE), **json.loads(MREMI_LINE)}) + "\n", "ambiguous format"),
        # Records that disagree with each other.
        (MNERMI_LINE + "\n" + MREMI_LINE + "\n", "ambiguous format"),
    ],
)
def test_detection_refuses_to_guess(tmp_path, content, message):
    path = write_text(tmp_path / "unknown.txt", content)
    with pytest.raises(DataError, match=message) as caught:
        read_dataset(path)
    assert str(path) in str(caught.value)


def test_detection_passes_over_broken_lines_when_others_fit(tmp_path):
    path = write_text(tmp_path / "mostly.jsonl", "{broken\n" + '{"foo": 1}\n' + MNERMI_LINE + "\n")
    assert detect_format(path) == "mnermi"
    with pytest.raises(DataError, match=r"mostly.jsonl:1: record: invalid JSON"):
        read_dataset(path)
    assert len(read_dataset(path, skip_invalid=True)) == 1


def test_a_named_format_overrides_detection_and_reports_the_mismatch(tmp_path):
    path = write_text(tmp_path / "mnre.txt", MNRE_LINE + "\n")
    with pytest.raises(DataError, match=r"mnre.txt:1: record: invalid JSON"):
        read_dataset(path, "mnermi")
    with pytest.raises(DataError, match=r"mnre.txt:1: IMGID: a post must start with an 'IMGID:<id>' line"):
        read_dataset(path, "twitter")


def test_missing_file_and_folder_are_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_dataset(tmp_path / "absent.txt")
    with pytest.raises(DataError, match="not a regular file"):
        read_dataset(tmp_path)


def test_crop_dicts_round_trip_and_normalise_integer_keys(tmp_path):
    # MRE-MI's images_vg.pth: image name -> crop names.
    mre_mi = {"11573_0.jpg": ["11573_0_vg_0.png", "11573_0_vg_1.png"], "11573_1.jpg": []}
    write_crop_dict(mre_mi, tmp_path / "images_vg.pth")
    assert read_crop_dict(tmp_path / "images_vg.pth") == mre_mi
    # HVPNeT's MNRE dictionary is keyed by the integer line index, saved with plain torch.save.
    torch.save({0: ["crop_a.png"], 12: ["crop_b.png", "crop_c.png"]}, tmp_path / "mnre_aux.pth")
    assert read_crop_dict(tmp_path / "mnre_aux.pth") == {"0": ["crop_a.png"], "12": ["crop_b.png", "crop_c.png"]}


class NotPlainData:
    """An object only full unpickling could rebuild: weights_only loading must refuse it."""


@pytest.mark.parametrize(
    "content, message",
    [
        (NotPlainData(), "not a torch-saved crop dictionary"),
        (["a.png"], "expected a dict"),
        ({"a.jpg": "one.png"}, r"a.jpg: expected a list of crop file names"),
        ({1: ["a.png"], "1": ["b.png"]}, "occurs twice"),
        ({(1, 2): ["a.png"]}, "expected a string or integer"),
    ],
)
def test_crop_dict_errors(tmp_path, content, message):
    path = tmp_path / "crops.pth"
    torch.save(content, path)
    with pytest.raises(DataError, match=message) as caught:
        read_crop_dict(path)
    assert str(path) in str(caught.value)


def test_dataset_is_a_sized_iterable(tmp_path):
    dataset = read_dataset(write_text(tmp_path / "d.txt", TWITTER_BLOCK))
    assert isinstance(dataset, Dataset) and len(dataset) == 1 and list(dataset) == dataset.records
    assert (dataset.task, dataset.skipped, dataset.irregular_tags) == ("ner", [], 0)


def test_writing_where_a_folder_is_in_the_way_is_a_data_error(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(DataError, match=r"taken: cannot write"):
        write_dataset(CONSTRUCTED_POSTS, tmp_path / "taken", "mnermi")
    with pytest.raises(DataError, match=r"cannot write"):
        write_dataset(CONSTRUCTED_POSTS, tmp_path / "no such folder" / "out.jsonl", "mnermi")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
