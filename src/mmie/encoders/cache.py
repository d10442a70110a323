"""Frozen-feature cache: each image is encoded once per encoder and preprocessing, then read back from disk.

Layout (one safetensors file per image; see docs/vision.md)::

    ROOT/<encoder-name>-<encoder key>/identity.json             what the key was computed from (for people)
    ROOT/<encoder-name>-<encoder key>/ab/<sha256 of image bytes>.safetensors

The encoder key is a sha256 over :meth:`VisionEncoder.cache_identity` (architecture config, weights
fingerprint, every preprocessing parameter, D and R), the storage dtype and :data:`CACHE_VERSION`:
anything that changes the features changes the folder. The encoder's name or folder is not part of
the key, because the weights fingerprint already identifies the weights, wherever they live.

One file per image rather than shards: an entry is written atomically on its own (temporary file +
``os.replace``), concurrent runs can fill the same cache without a lock or an index to corrupt, a bad
entry costs one image, and reading a post's 1..4 images touches only their files. Each entry's
metadata repeats the encoder key and the image hash and carries a CRC32 of the tensor bytes; a
truncated, garbled or stale entry (wrong key, shape, dtype or checksum) is recomputed and rewritten,
never used, and counted in :attr:`FeatureCache.stats` with a logged warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from PIL import Image

from mmie.data.images import (
    DEFAULT_BLANK_SIZE,
    POLICIES,
    ImagePolicy,
    ImageProblem,
    ImageReport,
    decode_image_bytes,
    load_image,
)
from mmie.data.schema import MAX_IMAGES
from mmie.encoders.vision import PostVisionOutput, flatten_post_images
from mmie.encoders.vision_base import VisionEncoder, tensor_bytes
from mmie.errors import ConfigError, DataError
from mmie.io import atomic_writer

logger = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the entry layout or the meaning of the features changes
ENTRY_FORMAT = "mmie-vision-features"
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
ImageItem = str | Path | bytes | Image.Image
_ABSENT = object()


def default_cache_root() -> Path:
    """``$MMIE_CACHE_DIR``, else ``~/.cache/mmie/vision-features``: shared by every run and model."""
    return Path(os.environ.get("MMIE_CACHE_DIR") or Path.home() / ".cache" / "mmie" / "vision-features")


@dataclass
class CacheStats:
    """Counts since the cache was opened. A computed image counts once however often it was requested."""

    hits: int = 0  # requested images served from memory or disk
    memory_hits: int = 0  # the part of `hits` served by the in-memory LRU
    misses: int = 0  # distinct images computed because they had no entry
    recomputed_corrupt: int = 0  # distinct images recomputed because their entry was corrupt or stale

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Request:
    digest: str  # sha256 of the image file's bytes (or of the decoded pixels for a PIL image)
    path: Path | None = None
    data: bytes | None = None
    image: Image.Image | None = None


class FeatureCache:
    """Features of a frozen encoder, computed once per image and kept on disk (plus an in-memory LRU).

    ``get_many(items)`` takes image file paths, raw image bytes or PIL images and returns
    ``(global [N, D], regions [N, R, D])`` as float32 CPU tensors in the order asked. Missing or
    undecodable files follow ``policy`` like :class:`mmie.data.images.ImageLoader`: ``"error"`` raises a
    DataError naming the file, ``"blank"`` uses the features of a blank image; both go to ``report``.
    Thread-safe (one lookup at a time: the extraction service calls it from several threads); separate
    processes may share one root. ``root=None`` keeps the features in memory only (the extraction
    service: uploads are never written to disk).
    """

    def __init__(
        self,
        root: str | Path | None,
        encoder: VisionEncoder,
        *,
        batch_size: int = 16,
        memory_bytes: int = 256 * 2**20,
        storage_dtype: str = "float32",
        policy: ImagePolicy = "error",
    ) -> None:
        if not encoder.frozen:
            raise ConfigError("the feature cache needs a frozen vision encoder: fine-tuned features change every step")
        if storage_dtype not in STORAGE_DTYPES:
            raise ConfigError(f"storage_dtype must be one of {', '.join(STORAGE_DTYPES)}, got {storage_dtype!r}")
        if policy not in POLICIES:
            raise ConfigError(f"unknown image policy {policy!r} (choose from {', '.join(POLICIES)})")
        self.encoder = encoder
        self.batch_size = max(1, batch_size)
        self.memory_bytes = memory_bytes
        self.dtype = STORAGE_DTYPES[storage_dtype]
        self.policy = policy
        self.report = ImageReport(policy=policy)
        self.stats = CacheStats()
        self.identity = {
            **encoder.cache_identity(),
            "storage_dtype": storage_dtype,
            "mmie_cache_version": CACHE_VERSION,
        }
        canonical = json.dumps(self.identity, sort_keys=True, separators=(",", ":"), default=str)
        self.key = hashlib.sha256(canonical.encode()).hexdigest()[:24]
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(encoder.name.rstrip("/\\")).name or "encoder")
        self.persistent = root is not None
        self.directory = Path(root if root is not None else ".") / f"{slug}-{self.key}"
        if self.persistent:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise DataError(
                    f"cannot create the feature cache: {error.strerror or error}", path=self.directory
                ) from None
            self._write_identity()
        self._memory: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._memory_used = 0
        self._digest_memo: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256
        self._undecodable: set[str] = set()  # digests of files that failed to decode (policy "blank")
        self._lock = threading.RLock()

    # --- public API --------------------------------------------------------------------------------
    def get_many(self, items: Iterable[ImageItem]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(global [N, D], regions [N, R, D])`` for N images, computing only those not cached."""
        with self._lock:
            return self._get_many(items)

    def _get_many(self, items: Iterable[ImageItem]) -> tuple[torch.Tensor, torch.Tensor]:
        hashed: dict[int, _Request] = {}  # a decoded picture listed many times (one per pair) is hashed once
        requests = []
        for item in items:
            if isinstance(item, Image.Image):
                if id(item) not in hashed:
                    hashed[id(item)] = self._request(item)
                requests.append(hashed[id(item)])
            else:
                requests.append(self._request(item))
        unique: dict[str, _Request] = {}
        multiplicity: dict[str, int] = {}
        for request in requests:
            unique.setdefault(request.digest, request)
            multiplicity[request.digest] = multiplicity.get(request.digest, 0) + 1
        found: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        to_compute: list[_Request] = []
        corrupt = 0
        for digest, request in unique.items():
            if digest in self._memory:
                self._memory.move_to_end(digest)
                found[digest] = self._memory[digest]
                self.stats.hits += multiplicity[digest]
                self.stats.memory_hits += multiplicity[digest]
                continue
            entry = self._read_entry(digest)
            if entry is _ABSENT or entry is None:
                corrupt += entry is None
                to_compute.append(request)
                continue
            found[digest] = self._remember(digest, entry)
            self.stats.hits += multiplicity[digest]
        if corrupt:
            logger.warning(
                "feature cache %s: %d corrupt or stale entries found; recomputed and rewritten", self.directory, corrupt
            )
        self.stats.recomputed_corrupt += corrupt
        self.stats.misses += len(to_compute) - corrupt
        for request in to_compute:
            self.stats.hits += multiplicity[request.digest] - 1
        for start in range(0, len(to_compute), self.batch_size):
            found.update(self._compute(to_compute[start : start + self.batch_size]))
        if not requests:
            dims = (self.encoder.num_regions, self.encoder.hidden_size)
            return torch.zeros(0, dims[1]), torch.zeros(0, *dims)
        global_features = torch.stack([found[request.digest][0] for request in requests]).float()
        region_features = torch.stack([found[request.digest][1] for request in requests]).float()
        return global_features, region_features

    def get_posts(
        self, posts_images: Sequence[Sequence[ImageItem | None]], max_images: int = MAX_IMAGES
    ) -> PostVisionOutput:
        """Cached features of B posts' images in ``[B, M]`` slots, with ``image_mask``; padding costs nothing."""
        flat: list[ImageItem]  # declared: mypy solves the type variable of a union with None as object
        flat, image_mask = flatten_post_images(posts_images, max_images)
        global_features, region_features = self.get_many(flat)
        return PostVisionOutput.from_flat(global_features, region_features, image_mask)

    def forget_memory(self) -> None:
        """Empty the in-memory LRU (the disk entries stay)."""
        with self._lock:
            self._memory.clear()
            self._memory_used = 0

    def entry_path(self, digest: str) -> Path:
        return self.directory / digest[:2] / f"{digest}.safetensors"

    # --- requests: what an item is and its content hash -----------------------------------------------
    def _request(self, item: ImageItem) -> _Request:
        if isinstance(item, Image.Image):
            return _Request(_pixels_digest(item), image=item)
        if isinstance(item, (bytes, bytearray, memoryview)):
            data = bytes(item)
            return _Request(hashlib.sha256(data).hexdigest(), data=data)
        path = Path(item)
        try:
            status = path.stat()
            memo_key = (str(path), status.st_size, status.st_mtime_ns)
            digest = self._digest_memo.get(memo_key)
            if digest is None:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                self._digest_memo[memo_key] = digest
        except OSError as error:
            reason = "missing" if isinstance(error, FileNotFoundError) else "unreadable"
            return self._unusable(path, reason, error.strerror or str(error))
        if digest in self._undecodable:  # reported when it failed; not decoded again
            return _blank_request()
        return _Request(digest, path=path)

    def _unusable(self, path: Path, reason: str, detail: str) -> _Request:
        """A file that cannot be used: an error, or the blank image under policy "blank"."""
        self.report.problems.append(ImageProblem(path.name, None, reason, str(path), detail))
        if self.policy == "error":
            raise DataError(f"{reason} image: {detail}", path=path, field="image")
        return _blank_request()

    def _decode(self, request: _Request) -> Image.Image:
        if request.image is not None:
            return request.image
        if request.path is not None:
            # the images module's loader: same decoding, guards and error messages as the rest of mmie
            return load_image(request.path.name, request.path.parent, "error", report=self.report)
        return _decode_bytes(request.data or b"")

    # --- computing ---------------------------------------------------------------------------------
    def _compute(self, batch: list[_Request]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        images: list[Image.Image] = []
        stored_as: list[str] = []  # the digest each computed image is stored under
        for request in batch:
            try:
                images.append(self._decode(request))
                stored_as.append(request.digest)
            except DataError:
                # `load_image` has put the file and the reason in the report already
                if self.policy == "error" or request.path is None:
                    raise
                self._undecodable.add(request.digest)
                blank = _blank_request()
                images.append(blank.image)  # type: ignore[arg-type]
                stored_as.append(blank.digest)
        with torch.no_grad():
            out = self.encoder(images)
        results: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for index, (request, digest) in enumerate(zip(batch, stored_as)):
            # clone: an entry owns its memory instead of keeping the whole batch's tensor alive; contiguous,
            # because safetensors refuses strided views (a conv feature map's regions are transposed)
            entry = (
                out.global_features[index].detach().to("cpu", self.dtype).clone(memory_format=torch.contiguous_format),
                out.region_features[index].detach().to("cpu", self.dtype).clone(memory_format=torch.contiguous_format),
            )
            self._write_entry(digest, entry)
            results[request.digest] = self._remember(digest, entry)
        return results

    # --- disk --------------------------------------------------------------------------------------
    def _write_entry(self, digest: str, entry: tuple[torch.Tensor, torch.Tensor]) -> None:
        if not self.persistent:
            return
        path = self.entry_path(digest)
        metadata = {
            "format": ENTRY_FORMAT,
            "cache_version": str(CACHE_VERSION),
            "encoder_key": self.key,
            "image_sha256": digest,
            "crc32": str(_checksum(*entry)),
        }
        data = safetensors.torch.save({"global": entry[0], "regions": entry[1]}, metadata=metadata)
        try:
            path.parent.mkdir(exist_ok=True)
            with atomic_writer(path, binary=True) as handle:
                handle.write(data)
        except OSError as error:  # a full disk or a damaged folder: the features are still used, not kept
            logger.warning("feature cache %s: cannot write an entry (%s); going on without it", self.directory, error)

    def _read_entry(self, digest: str) -> Any:
        """The entry's tensors; ``_ABSENT`` when there is no file; None when it is corrupt or stale."""
        if not self.persistent:
            return _ABSENT
        try:
            data = self.entry_path(digest).read_bytes()
        except FileNotFoundError:
            return _ABSENT
        except OSError:  # a directory or an unreadable file where the entry should be: recompute it
            return None
        try:
            metadata = _safetensors_metadata(data)
            tensors = safetensors.torch.load(data)
        except Exception:  # truncated or garbled header/body: safetensors raises its own error type
            return None
        expected = {
            "format": ENTRY_FORMAT,
            "cache_version": str(CACHE_VERSION),
            "encoder_key": self.key,
            "image_sha256": digest,
        }
        if any(metadata.get(key) != value for key, value in expected.items()) or set(tensors) != {"global", "regions"}:
            return None
        global_features, region_features = tensors["global"], tensors["regions"]
        dims = (self.encoder.num_regions, self.encoder.hidden_size)
        if (
            tuple(global_features.shape) != dims[1:]
            or tuple(region_features.shape) != dims
            or global_features.dtype != self.dtype
            or region_features.dtype != self.dtype
            or metadata.get("crc32") != str(_checksum(global_features, region_features))
        ):
            return None
        return global_features, region_features

    def _write_identity(self) -> None:
        """Write ``identity.json`` when it is missing or differs; a damaged one is rewritten with a warning."""
        path = self.directory / "identity.json"
        text = json.dumps({"name": self.encoder.name, "key": self.key, **self.identity}, indent=1, default=str)
        try:
            existing = path.read_bytes()
        except FileNotFoundError:
            existing = None
        except OSError as error:
            raise DataError(f"cannot read the feature cache's identity: {error.strerror or error}", path=path) from None
        if existing == text.encode("utf-8"):
            return
        if existing is not None and _read_identity(path) is None:
            logger.warning("feature cache %s: identity.json was damaged; rewritten", self.directory)
        with atomic_writer(path) as handle:
            handle.write(text)

    # --- memory ------------------------------------------------------------------------------------
    def _remember(self, digest: str, entry: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        size = sum(tensor.numel() * tensor.element_size() for tensor in entry)
        if size <= self.memory_bytes and digest not in self._memory:
            self._memory[digest] = entry
            self._memory_used += size
            while self._memory_used > self.memory_bytes:
                _, evicted = self._memory.popitem(last=False)
                self._memory_used -= sum(tensor.numel() * tensor.element_size() for tensor in evicted)
        return entry


def _blank_request() -> _Request:
    """The stand-in of an unusable image under policy "blank": the same blank image `load_image` gives."""
    blank = Image.new("RGB", DEFAULT_BLANK_SIZE)
    return _Request(_pixels_digest(blank), image=blank)


def _pixels_digest(image: Image.Image) -> str:
    """A content hash for an image given decoded: mode, size and pixels (never equal to a file hash)."""
    digest = hashlib.sha256(f"pil:{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def _checksum(*tensors: torch.Tensor) -> int:
    value = 0
    for tensor in tensors:
        value = zlib.crc32(tensor_bytes(tensor), value)
    return value


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file: 8-byte little-endian header length, then JSON."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    return header.get("__metadata__") or {}


def _decode_bytes(data: bytes) -> Image.Image:
    """Image bytes (an upload, not a file) -> RGB, with Pillow's decompression-bomb guard kept on."""
    return decode_image_bytes(data)


def image_files(folder: str | Path) -> list[Path]:
    """Every image file under ``folder`` (recursive, sorted; hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("the image folder does not exist", path=folder, field="images")
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()
    )


def build_feature_cache(cache: FeatureCache, items: Sequence[ImageItem], *, progress: bool = False) -> CacheStats:
    """Make sure every item has an entry (computing in batches of ``cache.batch_size``); returns the stats."""
    from tqdm.auto import tqdm

    with tqdm(total=len(items), unit="img", disable=not progress, desc="caching features") as bar:
        for start in range(0, len(items), cache.batch_size):
            chunk = items[start : start + cache.batch_size]
            cache.get_many(chunk)
            cache.forget_memory()  # a build reads nothing back: keep memory flat
            bar.update(len(chunk))
    return cache.stats


def _read_identity(path: Path) -> dict[str, Any] | None:
    """The JSON object of an ``identity.json``; None when it is not readable UTF-8 JSON holding an object."""
    try:
        identity = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # (UnicodeDecodeError is a ValueError)
        return None
    return identity if isinstance(identity, dict) else None


def cache_summary(root: str | Path) -> list[dict[str, Any]]:
    """One row per encoder folder under ``root``: name, key, entries, bytes, leftover temporary files.

    A damaged ``identity.json`` gives a row with ``"damaged": true`` (and a warning): the next run
    that uses that encoder rewrites it.
    """
    rows = []
    for identity_file in sorted(Path(root).glob("*/identity.json")):
        folder = identity_file.parent
        identity = _read_identity(identity_file)
        if identity is None:
            logger.warning("feature cache %s: identity.json is damaged (rewritten at the next use)", folder)
        entries = list(folder.glob("??/*.safetensors"))
        known = identity or {}
        rows.append(
            {
                "folder": str(folder),
                "name": known.get("name"),
                "key": known.get("key"),
                "hidden_size": known.get("hidden_size"),
                "num_regions": known.get("num_regions"),
                "storage_dtype": known.get("storage_dtype"),
                "entries": len(entries),
                "bytes": sum(entry.stat().st_size for entry in entries),
                "temporary_files": len(list(folder.glob("??/.*.tmp"))),
                "damaged": identity is None,
            }
        )
    return rows
