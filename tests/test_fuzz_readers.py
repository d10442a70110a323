"""Property-based tests: whatever bytes a reader is given, it returns valid records or raises a DataError.

Random bytes, random edits of valid files, and random values put into valid records are thrown at
every reader (and at detection), with every option; a crash of any other type fails the test. Valid
random records written by a writer must read back equal.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmie.data import MAX_IMAGES, Post, RelationInstance, Span, read_crop_dict, read_dataset, write_dataset
from mmie.data.tags import CANONICAL_TAGS
from mmie.errors import DataError

FORMATS = ("twitter", "mnermi", "mnre", "mremi")
OPTIONS = ({}, {"skip_invalid": True}, {"strict_tags": True})
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Each writer example writes (and fsyncs) a few files: fewer examples keep the suite fast.
FUZZ_WRITERS = settings(FUZZ, max_examples=100)

MNERMI_RECORD = {
    "id": 5302,
    "text": ["i", "love", "Kawhi", "Leonard"],
    "images": ["5302_0.jpg", "5302_1.jpg"],
    "label": ["O", "O", "B-PER", "I-PER"],
    "url": "https://twitter.com/i/web/status/1",
}
MREMI_RECORD = {
    "id": "11573",
    "tokens": ["Jason", "Isaacs", "and", "Emma", "Hewitt"],
    "h": {"name": "Jason Isaacs", "pos": [0, 2]},
    "t": {"name": "Emma Hewitt", "pos": [3, 5]},
    "images": ["11573_0.jpg"],
    "relation": "/per/per/couple",
}
MNRE_RECORD = {
    "token": ["RT", "Bill", "Cosby", "on", "Hollywood", "Walk"],
    "h": {"name": "Bill Cosby", "pos": [1, 3]},
    "t": {"name": "Hollywood Walk", "pos": [4, 6]},
    "img_id": "twitter_stream_1.jpg",
    "relation": "None",
}
VALID_FILES = {
    "twitter": "IMGID:17_06_2932\n#\tO\nNBA\tB-ORG\nKawhi\tB-PER\nLeonard\tI-PER\n\nIMGID:2\nParis\tB-OTHER\n",
    "mnermi": (json.dumps(MNERMI_RECORD) + "\n") * 2,
    "mremi": (json.dumps(MREMI_RECORD) + "\n") * 2,
    "mnre": (repr(MNRE_RECORD) + "\n") * 2,
}


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="mmie fuzz ") as folder:
        yield Path(folder)


def check_post(post: Post) -> None:
    assert isinstance(post, Post) and isinstance(post.id, str) and post.id
    assert post.tokens and all(isinstance(token, str) and token for token in post.tokens)
    assert len(post.images) <= MAX_IMAGES and all(isinstance(image, str) and image for image in post.images)
    if post.tags is not None:
        assert len(post.tags) == len(post.tokens) and set(post.tags) <= set(CANONICAL_TAGS)


def check_instance(instance: RelationInstance) -> None:
    assert isinstance(instance, RelationInstance)
    check_post(instance.post)
    for span in (instance.head, instance.tail):
        assert 0 <= span.start < span.end <= len(instance.post.tokens)
        assert span.name == " ".join(instance.post.tokens[span.start : span.end])
    assert instance.label is None or (isinstance(instance.label, str) and instance.label)


def read_every_way(path: Path) -> None:
    """Every reader, detection, and every option: records that keep the schema's promises, or a DataError."""
    for format_name in (None, *FORMATS):
        for options in OPTIONS:
            try:
                dataset = read_dataset(path, format_name, **options)
            except DataError as error:
                assert str(path) in str(error)
                continue
            for record in dataset.records:
                check_post(record) if dataset.task == "ner" else check_instance(record)
            assert all(isinstance(error, DataError) and error.path == str(path) for error in dataset.skipped)
            assert dataset.irregular_tags >= 0


def write_bytes(workdir: Path, content: bytes) -> Path:
    path = workdir / "fuzzed input.txt"
    path.write_bytes(content)
    return path


@FUZZ
@given(content=st.binary(max_size=600))
def test_random_bytes(workdir, content):
    read_every_way(write_bytes(workdir, content))


@FUZZ
@given(
    format_name=st.sampled_from(FORMATS),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["delete", "insert", "replace", "cut"]),
            st.floats(0, 1),
            st.sampled_from(
                [
                    "\n",
                    "\t",
                    " ",
                    "{",
                    "}",
                    "[",
                    "]",
                    '"',
                    "'",
                    ",",
                    ":",
                    "-",
                    "0",
                    "9",
                    "I-",
                    "\\",
                    "\x00",
                    "é",
                    "\ud7ff",
                ]
            ),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_random_edits_of_valid_files(workdir, format_name, edits):
    text = VALID_FILES[format_name]
    for operation, where, piece in edits:
        at = int(where * len(text))
        if operation == "delete":
            text = text[:at] + text[at + 1 :]
        elif operation == "insert":
            text = text[:at] + piece + text[at:]
        elif operation == "replace":
            text = text[:at] + piece + text[at + 1 :]
        else:
            text = text[:at]
    read_every_way(write_bytes(workdir, text.encode("utf-8", "surrogatepass")))


NEAR_VALID_STRINGS = st.sampled_from(
    ["O", "B-PER", "I-PER", "I-ORG", "B-MIS", "I-OTHER", "B-XYZ", "", "None", "a.jpg", "Jason", "Bill Cosby"]
)
ARBITRARY_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 12)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | NEAR_VALID_STRINGS,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
VALID_RECORDS = {"mnermi": MNERMI_RECORD, "mremi": MREMI_RECORD, "mnre": MNRE_RECORD}
TOKENS_FIELD = {"mnermi": "text", "mremi": "tokens", "mnre": "token"}


@st.composite
def near_valid_entity(draw, tokens: list[str]) -> dict:
    """An entity whose position may be off by a little, named as a naive reader would slice it."""
    start = draw(st.integers(-3, len(tokens) + 3))
    end = draw(st.integers(-3, len(tokens) + 3))
    entity = {"name": " ".join(tokens[start:end]), "pos": [start, end]}
    if draw(st.integers(0, 9)) == 0:
        entity.pop(draw(st.sampled_from(["name", "pos"])))
    return entity


def near_valid_values(format_name: str) -> dict[str, st.SearchStrategy]:
    """Per field, values close to valid ones: they find the edges of the checks (one image too many, a
    tag list one short, a span one past the end) that arbitrary values almost never hit."""
    tokens = VALID_RECORDS[format_name][TOKENS_FIELD[format_name]]
    n = len(tokens)
    strings = st.text(max_size=6) | NEAR_VALID_STRINGS
    return {
        TOKENS_FIELD[format_name]: st.lists(strings | st.integers(0, 3), min_size=max(n - 2, 0), max_size=n + 2),
        "images": st.integers(0, MAX_IMAGES + 2).map(lambda count: [f"{i}.jpg" for i in range(count)])
        | st.lists(st.sampled_from(["a.jpg", ""]) | st.integers(0, 3), max_size=3),
        "label": st.lists(
            st.sampled_from(("B-XYZ", "I-OTHER", "", "S-PER", "B-MIS") + CANONICAL_TAGS), min_size=n - 1, max_size=n + 1
        ),
        "h": near_valid_entity(tokens),
        "t": near_valid_entity(tokens),
        "id": st.integers(-1, 10**6) | strings | st.booleans() | st.floats(allow_nan=False),
        "img_id": strings | st.none() | st.lists(strings, max_size=2),
        "relation": strings | st.none() | st.integers(0, 3),
        "url": strings | st.none() | st.integers(0, 3),
    }


@FUZZ
@given(
    format_name=st.sampled_from(["mnermi", "mremi", "mnre"]),
    data=st.data(),
    keep_first_valid=st.booleans(),
)
def test_random_values_in_valid_records(workdir, format_name, data, keep_first_valid):
    record = copy.deepcopy(VALID_RECORDS[format_name])
    near_valid = near_valid_values(format_name)
    # One change close to valid, then up to two arbitrary ones (a dropped field, a value of any shape).
    field_name = data.draw(st.sampled_from([name for name in record if name in near_valid]), label="field")
    record[field_name] = data.draw(near_valid[field_name], label=field_name)
    for _ in range(data.draw(st.integers(0, 2), label="more changes")):
        field_name = data.draw(st.sampled_from(sorted(record) + ["extra"]), label="field")
        if data.draw(st.booleans(), label="drop"):
            record.pop(field_name, None)
        else:
            record[field_name] = data.draw(ARBITRARY_VALUES, label=field_name)
    dump = repr if format_name == "mnre" else json.dumps
    lines = [dump(VALID_RECORDS[format_name])] if keep_first_valid else []
    lines.append(dump(record))
    text = "\n".join(lines) + "\n"
    read_every_way(write_bytes(workdir, text.encode("utf-8", "surrogatepass")))


@FUZZ
@given(
    lines=st.lists(
        st.lists(
            st.sampled_from(
                [
                    "IMGID:",
                    "IMGID:17_06_1",
                    "Kawhi",
                    "\t",
                    " ",
                    "O",
                    "B-PER",
                    "I-PER",
                    "I-LOC",
                    "B-OTHER",
                    "E-PER",
                    "x",
                    "\r",
                ]
            ),
            max_size=4,
        ).map("".join),
        max_size=12,
    )
)
def test_random_twitter_layouts(workdir, lines):
    read_every_way(write_bytes(workdir, "\n".join(lines).encode()))


TOKENS = st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=8)
IMAGES = st.lists(st.text(min_size=1, max_size=8), max_size=MAX_IMAGES)


@st.composite
def posts(draw) -> Post:
    tokens = draw(TOKENS)
    tags = draw(st.none() | st.lists(st.sampled_from(CANONICAL_TAGS), min_size=len(tokens), max_size=len(tokens)))
    record_id = draw(st.text(min_size=1, max_size=6) | st.integers(0, 10**6).map(str))
    return Post(record_id, tokens, draw(IMAGES), draw(st.none() | st.text(max_size=20)), tags)


@st.composite
def instances(draw) -> RelationInstance:
    post = draw(posts())
    post.tags = None

    def span() -> Span:
        start = draw(st.integers(0, len(post.tokens) - 1))
        end = draw(st.integers(start + 1, len(post.tokens)))
        return Span(start, end, " ".join(post.tokens[start:end]))

    post.url = None
    return RelationInstance(post, span(), span(), draw(st.none() | st.text(min_size=1, max_size=12)))


@st.composite
def twitter_posts(draw) -> Post:
    """Posts the twitter layout can hold: one image named IMGID.jpg, tags, tokens without tabs or line breaks."""
    record_id = draw(st.from_regex(r"[0-9A-Za-z_]{1,10}", fullmatch=True))
    token = st.text(min_size=1, max_size=6).filter(lambda text: not (set(text) & set("\t\r\n")))
    tokens = draw(st.lists(token.filter(lambda text: not text.startswith("IMGID:")), min_size=1, max_size=8))
    tags = draw(st.lists(st.sampled_from(CANONICAL_TAGS), min_size=len(tokens), max_size=len(tokens)))
    return Post(record_id, tokens, [record_id + ".jpg"], None, tags)


def assert_round_trip(records: list, path: Path, format_name: str) -> bool:
    """The writer either refuses (a DataError naming the file) or writes what reads back equal.
    Returns whether it wrote."""
    try:
        write_dataset(records, path, format_name)
    except DataError as error:
        assert str(path) in str(error)
        return False
    assert read_dataset(path, format_name).records == records
    return True


@FUZZ_WRITERS
@given(records=st.lists(posts(), max_size=5))
def test_mnermi_writer_output_reads_back_equal(workdir, records):
    write_dataset(records, workdir / "posts.jsonl", "mnermi")  # every valid post fits this layout
    assert_round_trip(records, workdir / "posts.jsonl", "mnermi")


def test_twitter_writer_output_reads_back_equal_or_is_refused(workdir):
    """Mixed inputs: each is refused or round-trips, and a writer that refused everything would fail:
    a share of the non-empty lists must be written (those of posts the layout holds). The draws are
    derandomized: with random draws the share ranged from 0.12 to 0.50 over runs, so any threshold was
    either flaky or meaningless; a fixed seed makes it a fixed, checkable figure."""
    outcomes: list[bool] = []

    @settings(FUZZ_WRITERS, derandomize=True, database=None)
    @given(records=st.lists(twitter_posts() | posts(), min_size=1, max_size=5))
    def check(records: list) -> None:
        outcomes.append(assert_round_trip(records, workdir / "posts.txt", "twitter"))

    check()
    assert len(outcomes) >= 50, len(outcomes)
    assert sum(outcomes) >= 0.2 * len(outcomes), (sum(outcomes), len(outcomes))
    assert not all(outcomes), "no mixed list was refused: the strategy no longer mixes in posts it cannot hold"


@FUZZ_WRITERS
@given(records=st.lists(twitter_posts(), max_size=5))
def test_twitter_writer_writes_every_post_its_layout_holds(workdir, records):
    assert assert_round_trip(records, workdir / "posts.txt", "twitter"), "refused posts the layout holds"


@FUZZ_WRITERS
@given(records=st.lists(instances(), max_size=5))
def test_mremi_and_mnre_writer_output_reads_back_equal(workdir, records):
    write_dataset(records, workdir / "instances.jsonl", "mremi")  # every valid instance fits this layout
    assert_round_trip(records, workdir / "instances.jsonl", "mremi")
    # MNRE has no ids (the line index is the id) and exactly one image per instance.
    for index, record in enumerate(records):
        record.post.id = str(index)
        record.post.images = record.post.images[:1] or ["image.jpg"]
    write_dataset(records, workdir / "instances.txt", "mnre")
    assert_round_trip(records, workdir / "instances.txt", "mnre")


@settings(max_examples=60, deadline=None)
@given(content=st.binary(max_size=300) | st.binary(max_size=200).map(lambda tail: b"PK\x03\x04" + tail))
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_crop_dict_reader_on_random_bytes(workdir, content):
    path = write_bytes(workdir, content)
    with pytest.raises(DataError) as caught:
        read_crop_dict(path)
    assert str(path) in str(caught.value)
