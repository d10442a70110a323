"""`mmie regions build CONFIG` for configs that name no region_dict (configs/mre_mi, configs/mnre): the
crops go where the model looks for them, beside data.images, and never into a release's crop folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from mmie.data import read_crop_dict
from test_glra import read_records, synthetic_mre, tiny_vit  # noqa: F401  (fixtures)
from test_score_cli import run  # runs `mmie ...` in-process: (exit code, stdout, stderr)


def write_config(path: Path, data: Path, images: Path, tiny_bert: str, tiny_vit: str, cache: Path) -> Path:
    config = {
        "task": "re",
        "model": {
            "name": "glra",
            "encoder": tiny_bert,
            "vision_encoder": tiny_vit,
            "feature_cache": str(cache),
            "regions_per_image": 2,
        },  # region_dict: null, as in configs/mre_mi/*.yaml
        "data": {
            "train": str(data / "train.txt"),
            "dev": str(data / "val.txt"),
            "test": str(data / "test.txt"),
            "images": str(images),
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_config_without_region_dict_builds_beside_the_images_and_the_model_reads_them(
    tiny_bert, tiny_vit, synthetic_mre, tmp_path, capsys
):
    # a dataset folder with images only (like MNRE after gathering img_org/*): no crops yet
    images = tmp_path / "mnre_like" / "images"
    shutil.copytree(synthetic_mre / "images", images)
    config = write_config(tmp_path / "glra.yaml", synthetic_mre, images, tiny_bert, tiny_vit, tmp_path / "cache")
    code, stdout, err = run(["regions", "build", str(config)], capsys)
    assert code == 0, err
    assert f"into {images.parent}" in stdout
    records = read_records(synthetic_mre)
    crops = read_crop_dict(images.parent / "images_vg.pth")
    assert set(crops) == {ref for record in records for ref in record.post.images}  # train, dev and test
    assert all(
        1 <= len(names) <= 2 and all((images.parent / "images_vg" / n).is_file() for n in names)
        for names in crops.values()
    )

    # the model finds them with no region setting (precomputed, beside data.images)
    from mmie.encoders.text import load_tokenizer
    from mmie.models import create_processor
    from mmie.training.config import load_config

    settings = load_config(config).model
    tokenizer = load_tokenizer(tiny_bert)
    processor = create_processor(settings, tokenizer, ["None"], images=images)
    featurizer = processor.featurizer
    features = featurizer.featurize(records[:3], with_labels=False)
    for feature, record in zip(features, records[:3]):
        assert feature["region_mask"][: record.post.n_images].any(dim=1).all()


def test_a_release_crop_folder_is_never_written_and_record_keys_take_one_file(
    tiny_bert, tiny_vit, synthetic_mre, tmp_path, capsys
):
    # MRE-MI layout with the release's own images_vg.pth beside images/: refused, nothing written
    config = write_config(
        tmp_path / "glra.yaml", synthetic_mre, synthetic_mre / "images", tiny_bert, tiny_vit, tmp_path / "cache"
    )
    before = sorted(p.name for p in synthetic_mre.iterdir())
    code, _, err = run(["regions", "build", str(config)], capsys)
    assert code == 2 and "did not build" in err and "Traceback" not in err
    assert sorted(p.name for p in synthetic_mre.iterdir()) == before

    # a dictionary keyed by record id (MNRE line indices) cannot serve train, dev and test at once
    code, _, err = run(
        [
            "regions",
            "build",
            str(config),
            "--provider",
            "precomputed",
            "--key",
            "record",
            "--crops",
            str(synthetic_mre / "images_vg.pth"),
            "--out",
            str(tmp_path / "out"),
        ],
        capsys,
    )
    assert code == 2 and "--key record" in err and "one --data" in err
    assert not (tmp_path / "out").exists()


def test_per_split_dictionaries_keyed_by_record_go_into_one_folder(synthetic_mre, tiny_vit, tmp_path, capsys):
    """MNRE ships one crop dictionary per split, keyed by line index: one build per split, one folder."""
    from mmie.data import read_dataset, write_crop_dict

    released = read_crop_dict(synthetic_mre / "images_vg.pth")
    out = tmp_path / "vg"
    expected = set()
    for split in ("train", "val"):
        records = read_dataset(synthetic_mre / f"{split}.txt").records
        by_record = {record.id: released[record.post.images[0]] for record in records}
        write_crop_dict(by_record, tmp_path / f"{split}_dict.pth")
        expected |= {ref for record in records for ref in record.post.images}
        code, stdout, err = run(
            [
                "regions",
                "build",
                "--data",
                str(synthetic_mre / f"{split}.txt"),
                "--images",
                str(synthetic_mre / "images"),
                "--provider",
                "precomputed",
                "--crops",
                str(tmp_path / f"{split}_dict.pth"),
                "--crop-dir",
                str(synthetic_mre / "images_vg"),
                "--key",
                "record",
                "--top-k",
                "2",
                "--out",
                str(out),
            ],
            capsys,
        )
        assert code == 0, err
    crops = read_crop_dict(out / "images_vg.pth")
    assert set(crops) == expected
    first = read_dataset(synthetic_mre / "val.txt").records[0]
    names = crops[first.post.images[0]]
    assert names and [(out / "images_vg" / n).read_bytes() for n in names] == [
        _png_of(synthetic_mre / "images_vg" / n) for n in released[first.post.images[0]][:2]
    ]
    # other settings into the same folder are still refused
    code, _, err = run(
        [
            "regions",
            "build",
            "--data",
            str(synthetic_mre / "test.txt"),
            "--images",
            str(synthetic_mre / "images"),
            "--provider",
            "grid",
            "--encoder",
            tiny_vit,
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 2 and "other settings" in err


def _png_of(path: Path) -> bytes:
    """The bytes `mmie regions build` writes for a crop file: the picture saved as PNG."""
    import io

    from PIL import Image

    with Image.open(path) as picture:
        buffer = io.BytesIO()
        picture.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()
