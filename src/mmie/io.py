"""Atomic writes: a file or folder is replaced only once its new content is complete.

Every writer here builds the new content beside its destination (same folder, so same file system)
under a hidden temporary name and moves it into place with ``os.replace``; an error or a kill
part-way leaves the old content as it was, and an error removes the temporary file or folder.

    write_atomic(run_dir / "metrics.json", text)                # a whole str or bytes at once
    with atomic_writer(path) as handle: ...                      # streamed: write as you go
    with atomic_path(path) as temporary: writer(temporary)       # for writers that open files by name
    with atomic_folder(model_dir) as staging: ...                # a folder of files

An ``OSError`` while writing (a full disk, a folder in the way, no permission) is raised as a
:class:`~mmie.errors.DataError` naming the destination, so the CLI prints one line, not a trace.

The bottom layer of mmie: it imports only the standard library and :mod:`mmie.errors`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from mmie.errors import DataError


@contextmanager
def _temporary_file_beside(path: Path) -> Iterator[tuple[int, str]]:
    """An open descriptor and name of a new temporary file beside ``path``; it replaces ``path`` when the
    block ends without error and is deleted otherwise. The block must have closed the descriptor."""
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise DataError(f"cannot write here: {error.strerror or error}", path=path) from error
    try:
        yield descriptor, temporary
        # mkstemp makes the file private (0600); keep the mode of the file replaced, else a usual 0644.
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise DataError(f"cannot write: {error.strerror or error}", path=path) from error
        raise


@contextmanager
def atomic_writer(path: str | Path, *, binary: bool = False) -> Iterator[IO]:
    """A handle (UTF-8 text with ``\\n`` line ends, or bytes) whose content replaces ``path`` only when
    the block finishes without error."""
    path = Path(path)
    with _temporary_file_beside(path) as (descriptor, _temporary):
        handle: IO
        if binary:
            handle = os.fdopen(descriptor, "wb")
        else:
            handle = os.fdopen(descriptor, "w", encoding="utf-8", newline="\n")
        with handle:
            yield handle
            # On disk before the rename, so a crash of the machine cannot leave an empty file in place.
            handle.flush()
            os.fsync(handle.fileno())


def write_atomic(path: str | Path, content: str | bytes) -> None:
    """Replace ``path`` with ``content`` (text is written as UTF-8), all or nothing."""
    with atomic_writer(path, binary=isinstance(content, bytes)) as handle:
        handle.write(content)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file path beside ``path`` for writers that open a file by name themselves; the file
    they leave there replaces ``path`` when the block finishes without error."""
    path = Path(path)
    with _temporary_file_beside(path) as (descriptor, temporary):
        os.close(descriptor)  # the writer opens the file again by name
        yield Path(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """An empty folder beside ``path`` to fill; it replaces ``path`` (and all in it) when the block
    finishes without error, and is removed otherwise.

    The files are not fsynced: what fills a folder (safetensors, tokenizers) writes its files by name,
    and this keeps the cost of saving a model as it was. Parent folders are created as needed.
    """
    path = Path(path)
    # Named by process id, so two processes saving to the same destination do not share one folder.
    staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if staging.exists():  # left over by an earlier process with this id that was killed
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
    except OSError as error:
        raise DataError(f"cannot write here: {error.strerror or error}", path=path) from error
    try:
        yield staging
        if path.exists():
            # A folder cannot be replaced by os.replace while it has files: move the old one aside first.
            retired = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, retired)
            try:
                os.replace(staging, path)
            except BaseException:
                os.replace(retired, path)  # the old folder back where it was
                raise
            shutil.rmtree(retired)
        else:
            os.replace(staging, path)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise DataError(f"cannot write: {error.strerror or error}", path=path) from error
        raise
