"""mmie data check on the shared real releases (Twitter-2017, MNRE v2 text files) and on broken copies."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import write_splits
from mmie.cli import main
from mmie.data.check import check_dataset
from mmie.errors import DataError

# CI: ../shared beside the repository; a worktree elsewhere can point MMIE_SHARED_DATA at it.
SHARED_DATA = Path(os.environ.get("MMIE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")


@needs_shared
def test_twitter2017_release_is_recognised(capsys):
    report = check_dataset(SHARED_DATA / "twitter2017", "twitter2017", text_only=True)
    assert report["splits"]["train"]["release"] == "Twitter-2017 (UMT release) train"
    assert report["splits"]["dev"]["release"] == "Twitter-2017 (UMT release) dev"
    assert report["splits"]["train"]["posts"] == 3373 and report["splits"]["train"]["counts_match"]
    assert report["splits"]["dev"]["posts"] == 723
    # the shared copy has no test split on purpose: the check says so and fails
    assert not report["ok"] and any("test split missing" in p for p in report["problems"])
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check", str(SHARED_DATA / "twitter2017"), "--dataset", "twitter2017"])
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert "no image folder images/ or twitter2017_images/" in out and "Twitter-2017 (UMT release) train" in out


@needs_shared
def test_mnre_release_name_with_a_space(tmp_path):
    folder = tmp_path / "mnre"
    folder.mkdir()
    shutil.copy(SHARED_DATA / "mnre" / "mnre_train.txt", folder / "mnre_train.txt")
    shutil.copy(SHARED_DATA / "mnre" / "mnre_val.txt", folder / "mnre_val .txt")
    report = check_dataset(folder, "mnre", text_only=True)
    assert report["splits"]["dev"]["file"].endswith("mnre_val .txt")
    assert report["splits"]["dev"]["release"] == "MNRE v2 (authors' release) dev"
    assert report["splits"]["train"]["instances"] == 12247 and report["splits"]["dev"]["instances"] == 1624
    # the wrong dataset name: the files are known releases of another dataset
    wrong = check_dataset(SHARED_DATA / "twitter2017", "twitter2015", text_only=True)
    assert any("is Twitter-2017 (UMT release) train" in p and "not twitter2015 train" in p for p in wrong["problems"])
    assert any("3,373 posts, the papers report 4,000" in p for p in wrong["problems"])


@needs_shared
def test_edited_copy_is_flagged(tmp_path):
    folder = tmp_path / "t17"
    folder.mkdir()
    text = (SHARED_DATA / "twitter2017" / "valid.txt").read_text(encoding="utf-8")
    (folder / "valid.txt").write_text(text.replace("B-PER", "B-ORG", 1), encoding="utf-8")  # one label edited
    report = check_dataset(folder, "twitter2017", text_only=True)
    assert report["splits"]["dev"]["release"] is None
    assert any("not the known public release of twitter2017 dev" in w for w in report["warnings"])


def test_images_listed_and_wrong_layout(tmp_path, capsys):
    folder = tmp_path / "mre_mi"
    write_splits(folder, "re", {"train": 6, "val": 3, "test": 3})
    (folder / "images").mkdir()
    refs = sorted(
        {
            ref
            for path in folder.glob("*.txt")
            for line in path.read_text().splitlines()
            for ref in json.loads(line)["images"]
        }
    )
    for ref in refs[1:]:
        Image.new("RGB", (8, 8)).save(folder / "images" / ref)
    (folder / "images" / refs[1]).write_bytes(b"not a jpeg")
    report = check_dataset(folder, "mre_mi")
    listed = [p for info in report["images"].values() for p in info["listed"]]
    assert {(p["image"], p["reason"]) for p in listed} == {(refs[0], "missing"), (refs[1], "undecodable")}
    assert any("6 instances, the papers report 13,504" in p for p in report["problems"])
    assert any("images_vg.pth: missing" in w for w in report["warnings"])
    assert report["splits"]["train"]["release"] is None and len(report["splits"]["train"]["sha256"]) == 64

    with pytest.raises(DataError, match=r"none of the mnre files are here .*mnre_val \.txt"):
        check_dataset(folder, "mnre")
    with pytest.raises(SystemExit):
        main(["data", "check", str(tmp_path / "nowhere"), "--dataset", "mnre"])
    assert "no such dataset folder" in capsys.readouterr().err
