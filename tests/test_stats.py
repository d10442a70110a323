"""`mmie data stats` / `mmie data convert` and mmie.data.stats: exact counts on the shared real data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mmie.cli import main
from mmie.data import Post, RelationInstance, Span, read_dataset, write_dataset
from mmie.data.stats import dataset_stats

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")
TWITTER_TRAIN = SHARED_DATA / "twitter2017" / "train.txt"
TWITTER_VALID = SHARED_DATA / "twitter2017" / "valid.txt"
MNRE_TRAIN = SHARED_DATA / "mnre" / "mnre_train.txt"
MNRE_VAL = SHARED_DATA / "mnre" / "mnre_val.txt"
MNRE_LABELS = {
    "None",
    "/per/per/parent",
    "/per/per/siblings",
    "/per/per/couple",
    "/per/per/neighbor",
    "/per/per/peer",
    "/per/per/charges",
    "/per/per/alumi",
    "/per/per/alternate_names",
    "/per/org/member_of",
    "/per/loc/place_of_residence",
    "/per/loc/place_of_birth",
    "/org/org/alternate_names",
    "/org/org/subsidiary",
    "/org/loc/locate_at",
    "/loc/loc/contain",
    "/per/misc/present_in",
    "/per/misc/awarded",
    "/per/misc/race",
    "/per/misc/religion",
    "/per/misc/nationality",
    "/misc/misc/part_of",
    "/misc/loc/held_on",
}


@needs_shared
@pytest.mark.parametrize("path, posts", [(TWITTER_TRAIN, 3373), (TWITTER_VALID, 723)])
def test_twitter2017_post_counts(path, posts):
    stats = dataset_stats(read_dataset(path))
    assert (stats["task"], stats["posts"], stats["images_per_post"]) == ("ner", posts, {"1": posts})
    assert (stats["irregular_tags"], stats["skipped"]) == (0, 0)
    assert stats["entities_total"] == sum(stats["entities"].values())


@needs_shared
def test_twitter2017_train_entities_match_the_published_counts():
    # Yu et al. 2020 (UMT), Table 1: Twitter-2017 train has 2943 PER, 731 LOC, 1674 ORG, 701 OTHER.
    stats = dataset_stats(read_dataset(TWITTER_TRAIN))
    assert stats["entities"] == {"PER": 2943, "LOC": 731, "ORG": 1674, "MISC": 701}


@needs_shared
@pytest.mark.parametrize("path, instances", [(MNRE_TRAIN, 12247), (MNRE_VAL, 1624)])
def test_mnre_instance_and_label_counts(path, instances):
    stats = dataset_stats(read_dataset(path))
    assert (stats["task"], stats["instances"], stats["relation_labels"]) == ("re", instances, 23)
    assert set(stats["relations"]) == MNRE_LABELS
    assert sum(stats["relations"].values()) == instances
    assert stats["images_per_instance"] == {"1": instances}
    # One post carries several instances (one per entity pair).
    assert 0 < stats["posts"] < instances


@needs_shared
def test_mnre_val_details():
    stats = dataset_stats(read_dataset(MNRE_VAL))
    assert (stats["posts"], stats["relations"]["None"], stats["overlapping_pairs"]) == (931, 1000, 3)


def test_entities_are_counted_the_conlleval_way(tmp_path):
    # `O I-PER` starts a PER entity; `B-ORG I-PER` is an ORG then a PER.
    posts = [
        Post("1", ["the", "Kawhi", "Leonard"], ["1.jpg"], None, ["O", "I-PER", "I-PER"]),
        Post("2", ["NBA", "Kawhi", "x"], ["2_0.jpg", "2_1.jpg", "2_2.jpg"], None, ["B-ORG", "I-PER", "O"]),
        Post("3", ["Paris"], [], None, None),
    ]
    path = tmp_path / "posts.jsonl"
    write_dataset(posts, path, "mnermi")
    stats = dataset_stats(read_dataset(path))
    assert stats["entities"] == {"PER": 2, "LOC": 0, "ORG": 1, "MISC": 0}
    assert (stats["posts"], stats["tokens"], stats["unlabelled_posts"], stats["irregular_tags"]) == (3, 7, 1, 2)
    assert stats["images_per_post"] == {"0": 1, "1": 1, "3": 1}


def test_re_posts_are_distinct_texts(tmp_path):
    tokens = ["SAP", "SE", "in", "Walldorf"]
    instances = [
        RelationInstance(
            Post("a", tokens, ["a.jpg"]), Span(0, 2, "SAP SE"), Span(3, 4, "Walldorf"), "/org/loc/locate_at"
        ),
        RelationInstance(Post("b", tokens, ["a.jpg"]), Span(0, 2, "SAP SE"), Span(0, 1, "SAP"), "None"),
        RelationInstance(Post("c", ["x", "y"], []), Span(0, 1, "x"), Span(1, 2, "y"), None),
    ]
    path = tmp_path / "instances.jsonl"
    write_dataset(instances, path, "mremi")
    stats = dataset_stats(read_dataset(path))
    assert (stats["instances"], stats["posts"], stats["tokens"], stats["unlabelled_instances"]) == (3, 2, 6, 1)
    assert stats["relations"] == {"/org/loc/locate_at": 1, "None": 1} and stats["relation_labels"] == 2
    assert stats["overlapping_pairs"] == 1 and stats["images_per_instance"] == {"0": 1, "1": 2}


@needs_shared
def test_cli_stats_json(capsys):
    main(["data", "stats", "--json", str(TWITTER_TRAIN), str(TWITTER_VALID), str(MNRE_TRAIN), str(MNRE_VAL)])
    results = json.loads(capsys.readouterr().out)
    assert [result.get("posts") for result in results[:2]] == [3373, 723]
    assert [(result["instances"], result["relation_labels"]) for result in results[2:]] == [(12247, 23), (1624, 23)]


@needs_shared
def test_cli_stats_table(capsys):
    main(["data", "stats", str(TWITTER_VALID), str(MNRE_VAL)])
    out = capsys.readouterr().out
    assert "twitter (NER)" in out and "posts              723" in out
    assert "mnre (RE)" in out and "instances                      1,624" in out
    assert "relation labels                23" in out


def test_cli_stats_with_an_image_folder(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8)).save(images / "1.jpg")
    (images / "2.jpg").write_bytes(b"not a jpeg")
    path = tmp_path / "t.txt"
    path.write_text("IMGID:1\nhi\tO\n\nIMGID:2\nyo\tO\n\nIMGID:3\nho\tO\n")
    main(["data", "stats", "--json", "--image-dir", str(images), str(path)])
    report = json.loads(capsys.readouterr().out)[0]["images"]
    assert (report["loaded"], report["affected"], report["by_reason"]) == (1, 2, {"missing": 1, "undecodable": 1})


@needs_shared
def test_cli_convert_mnre_to_mremi(tmp_path, capsys):
    target = tmp_path / "out dir" / "mnre val .jsonl"
    target.parent.mkdir()
    main(["data", "convert", str(MNRE_VAL), str(target)])
    assert f"wrote 1,624 instances from {MNRE_VAL} (mnre) to {target} (mremi)" in capsys.readouterr().out
    first = json.loads(target.read_text().splitlines()[0])
    assert first["images"] == ["twitter_stream_2018_09_04_14_0_2_44.jpg"] and first["id"] == "0"
    assert dataset_stats(read_dataset(target))["instances"] == 1624


@needs_shared
def test_cli_convert_refuses_a_target_of_the_other_task(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "convert", str(TWITTER_VALID), str(tmp_path / "x.jsonl"), "--to", "mremi"])
    assert exit_info.value.code == 2
    assert "cannot convert twitter (NER) records to mremi (RE)" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


@needs_shared
def test_installed_mmie_script():
    script = Path(sys.executable).parent / "mmie"
    assert script.exists(), f"the console script is not installed next to {sys.executable}"
    done = subprocess.run([str(script), "data", "stats", "--json", str(TWITTER_VALID)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["posts"] == 723


def test_cli_error_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "stats", str(empty)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {empty}: cannot detect the format of an empty file\n"
