"""Know your copy of the data: content fingerprints of dataset files and the public releases they match.

A fingerprint is the sha256 of a file's raw bytes. :data:`KNOWN_RELEASES` lists the public releases
whose hashes are known; the table is copied from the project's ``shared/data/RELEASES.md`` (Twitter-2015
and Twitter-2017 as released with the UMT code, jefferyYu/UMT ``data/``; MNRE v2 as released by its
authors, thecharm/MNRE ``mnre_txt/``). MNER-MI, MNER-MI-Plus and MRE-MI have no hash here yet: their
fingerprints are still recorded, so two runs on different copies are told apart.

Every training run writes the fingerprints of its splits into ``metrics.json`` under ``"data"``, and
``mmie report`` warns when the rows of one table were trained or tested on different files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Release:
    dataset: str  # mmie's dataset name: twitter2015, twitter2017, mnre, ...
    split: str  # train, dev or test (mmie's names; the release's own name is in ``file``)
    file: str  # the file's path inside the release
    name: str  # the release, as people call it


# From shared/data/RELEASES.md (sha256 of the raw bytes of the public releases' text files).
KNOWN_RELEASES: dict[str, Release] = {
    "a6246e37aa1c8acd738747fa8257e01775f2a1cc0d4f36f82f9d41d6246ad6fa": Release(
        "twitter2015", "train", "data/twitter2015/train.txt", "Twitter-2015 (UMT release)"
    ),
    "9dcc7f9df7331de3c9cdf67a3450e041c41c6254b5e43925c576e2dfaaabe2ad": Release(
        "twitter2015", "dev", "data/twitter2015/valid.txt", "Twitter-2015 (UMT release)"
    ),
    "edb2665b89bfe58bca06a2c10b9b31cbfa95456135b6a4cbf55c872e48d9b8f9": Release(
        "twitter2015", "test", "data/twitter2015/test.txt", "Twitter-2015 (UMT release)"
    ),
    "801e149e8635b19d66b4ec1212c329be340ada501b35c5fa55455fb6f53633be": Release(
        "twitter2017", "train", "data/twitter2017/train.txt", "Twitter-2017 (UMT release)"
    ),
    "41b5db90cb32059c14c2c3ccd50845fb77f1e3d3e4f7d0c210a61bc507d8a73e": Release(
        "twitter2017", "dev", "data/twitter2017/valid.txt", "Twitter-2017 (UMT release)"
    ),
    "a7d9e172ae85bd3e35276eb2b01ce223321bdc92a47b234e24305d72e7a05243": Release(
        "twitter2017", "test", "data/twitter2017/test.txt", "Twitter-2017 (UMT release)"
    ),
    "1cc34438a00e2a2db73e4eba297820f926f62abd1fddc693caa13c58b62428b7": Release(
        "mnre", "train", "mnre_txt/mnre_train.txt", "MNRE v2 (authors' release)"
    ),
    "c76865179b5678167b164c21fd25ed31f9a1416da393ac93ce70f32b00352b75": Release(
        "mnre", "dev", "mnre_txt/mnre_val .txt", "MNRE v2 (authors' release)"
    ),
    "f53c2f9b7739bea7d08aee4a91bfd6ec7432e1d0eeb83debf10f5d3291bc5215": Release(
        "mnre", "test", "mnre_txt/mnre_test.txt", "MNRE v2 (authors' release)"
    ),
}


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(path: str | Path) -> dict:
    """``{"path", "sha256", "release", "release_file"}`` of one file; ``release`` is None when unknown."""
    path = Path(path)
    sha = sha256_file(path)
    known = KNOWN_RELEASES.get(sha)
    return {
        "path": str(path.resolve()),
        "sha256": sha,
        "release": f"{known.name} {known.split}" if known else None,
        "release_file": known.file if known else None,
    }


def describe(entry: dict | None) -> str:
    """``Twitter-2017 (UMT release) train`` or ``unknown release (sha256 1a2b3c4d...)``."""
    if not entry:
        return "not recorded"
    return entry.get("release") or f"unknown release (sha256 {str(entry.get('sha256'))[:12]}...)"
