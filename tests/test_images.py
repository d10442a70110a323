"""Image loading policy: missing, truncated, undecodable and oversized images; references that leave the folder."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from mmie.data import Post
from mmie.data.images import (
    ImageLoader,
    ImageReport,
    check_images,
    decode_upload,
    downscale,
    load_image,
    resolve_image,
)
from mmie.errors import DataError


def save_jpeg(path, size=(32, 24), color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


@pytest.fixture()
def image_dir(tmp_path):
    """A folder with one good, one truncated and one undecodable image (made here with Pillow)."""
    folder = tmp_path / "images"
    folder.mkdir()
    good = save_jpeg(folder / "good.jpg")
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "garbage.jpg").write_bytes(b"this is not an image at all" * 10)
    Image.new("L", (10, 10), 128).save(folder / "grey.png")
    return folder


def test_a_good_image_loads_as_rgb_and_resizes(image_dir):
    image = load_image("good.jpg", image_dir)
    assert image.mode == "RGB" and image.size == (32, 24)
    assert image.getpixel((5, 5))[0] > 150  # the red it was saved with
    assert load_image("grey.png", image_dir, size=(16, 8)).size == (16, 8)
    assert load_image("grey.png", image_dir, size=7).mode == "RGB"


@pytest.mark.parametrize(
    "ref, reason",
    [("missing.jpg", "missing"), ("truncated.jpg", "truncated"), ("garbage.jpg", "undecodable")],
)
def test_error_policy_names_the_image_and_the_record(image_dir, ref, reason):
    report = ImageReport()
    with pytest.raises(DataError) as caught:
        load_image(ref, image_dir, record_id="17_06_2932", report=report)
    message = str(caught.value)
    assert message.startswith(str(image_dir / ref)) and "record '17_06_2932'" in message and reason in message
    assert report.affected == 1 and report.counts() == {reason: 1}


def test_blank_policy_substitutes_and_counts(image_dir):
    loader = ImageLoader(image_dir, policy="blank", size=(20, 10))
    post = Post("p1", ["a"], ["good.jpg", "missing.jpg", "truncated.jpg", "garbage.jpg"])
    images = loader.load_post(post)
    assert [image.size for image in images] == [(20, 10)] * 4 and all(image.mode == "RGB" for image in images)
    assert images[1].getextrema() == ((0, 0), (0, 0), (0, 0))  # blank
    assert images[0].getextrema() != images[1].getextrema()
    report = loader.report
    assert (report.loaded, report.affected) == (1, 3)
    assert report.counts() == {"missing": 1, "truncated": 1, "undecodable": 1}
    assert [problem.record_id for problem in report.problems] == ["p1"] * 3
    assert (
        report.summary()
        == "1 images loaded, 3 affected (1 missing, 1 truncated, 1 undecodable; substituted by blank images)"
    )
    assert report.to_dict()["by_reason"] == {"missing": 1, "truncated": 1, "undecodable": 1}


def test_blank_without_a_size_uses_the_default(image_dir):
    assert load_image("missing.jpg", image_dir, policy="blank").size == (224, 224)


def test_decompression_bomb_guard_stays_on(image_dir, monkeypatch):
    # Lower the limit (never disable it) so a small image trips the guard: past the limit Pillow warns,
    # past twice the limit it raises; both count as undecodable.
    assert Image.MAX_IMAGE_PIXELS is not None
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    save_jpeg(image_dir / "warns.jpg", size=(12, 12))  # 144 pixels: between 1x and 2x the limit
    save_jpeg(image_dir / "raises.jpg", size=(20, 20))  # 400 pixels: past 2x
    report = ImageReport(policy="blank")
    for ref in ("warns.jpg", "raises.jpg"):
        assert load_image(ref, image_dir, policy="blank", report=report).size == (224, 224)
    assert report.counts() == {"undecodable": 2}
    assert all("decompression-bomb" in problem.detail for problem in report.problems)
    with pytest.raises(DataError, match="undecodable image.*decompression-bomb"):
        load_image("warns.jpg", image_dir)


@pytest.mark.parametrize(
    "ref", ["../secret.jpg", "sub/../../secret.jpg", "/etc/passwd", "..\\secret.jpg", "C:\\x.jpg", ""]
)
def test_references_that_leave_the_folder_are_refused_under_every_policy(image_dir, ref):
    (image_dir.parent / "secret.jpg").write_bytes(b"")
    for policy in ("error", "blank"):
        with pytest.raises(DataError, match="image"):
            load_image(ref, image_dir, policy=policy)


def test_subfolders_and_several_image_folders(tmp_path):
    first, second = tmp_path / "images", tmp_path / "twitter2017_images"
    (first / "sub").mkdir(parents=True)
    second.mkdir()
    save_jpeg(first / "sub" / "a.jpg")
    save_jpeg(second / "17_06_1.jpg")
    assert resolve_image("sub/a.jpg", [first, second]) == first / "sub" / "a.jpg"
    assert resolve_image("17_06_1.jpg", [first, second]) == second / "17_06_1.jpg"
    assert resolve_image("absent.jpg", [first, second]) == first / "absent.jpg"
    assert load_image("17_06_1.jpg", [first, second]).size == (32, 24)


def test_loader_refuses_a_missing_folder_and_an_unknown_policy(tmp_path, image_dir):
    with pytest.raises(DataError, match="image folder does not exist"):
        ImageLoader(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown image policy"):
        ImageLoader(image_dir, policy="skip")


def test_check_images_counts_each_reference_once(image_dir):
    posts = [Post("1", ["a"], ["good.jpg", "missing.jpg"]), Post("2", ["b"], ["good.jpg", "garbage.jpg"])]
    report = check_images(posts, image_dir)
    assert (report.loaded, report.affected, report.counts()) == (1, 2, {"missing": 1, "undecodable": 1})


def test_uploads_are_decoded_downscaled_and_errors_name_no_stream_object():
    """A large upload is decoded at most ``max_side`` on its longer side (a JPEG at a reduced DCT scale),
    its size as given is kept; truncation is still caught; an unknown format says so, not `<_io.BytesIO ...>`."""
    import tracemalloc

    picture = Image.effect_noise((3000, 2000), 60).convert("RGB")
    for kind in ("JPEG", "PNG"):
        buffer = io.BytesIO()
        picture.save(buffer, format=kind)
        data = buffer.getvalue()
        tracemalloc.start()
        decoded, size = decode_upload(data, "images[0]", max_side=300)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert size == (3000, 2000) and decoded.size == (300, 200) and decoded.mode == "RGB"
        if kind == "JPEG":  # decoded at 1/8 scale: far less than the 18 MB of the full picture
            assert peak < 4 * 2**20, peak
        with pytest.raises(DataError, match=r"images\[0\]: truncated image"):
            decode_upload(data[: len(data) // 2], "images[0]", max_side=300)
    small = io.BytesIO()
    Image.new("RGB", (40, 30)).save(small, format="PNG")
    assert decode_upload(small.getvalue(), max_side=300)[0].size == (40, 30)  # never upscaled
    assert downscale(Image.new("RGB", (90, 30)), 45).size == (45, 15)
    with pytest.raises(DataError) as caught:
        decode_upload(b"<html>not an image</html>", "images[2] (page.html)")
    assert (
        str(caught.value)
        == "<input>: images[2] (page.html): undecodable image: not an image file Pillow can read (unknown format)"
    )
