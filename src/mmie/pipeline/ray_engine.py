"""``mmie extract --engine ray``: a corpus's extraction on Ray Data, written in numbered parts, resumable.

The driver reads and checks the corpus (:func:`~mmie.pipeline.corpus.read_posts`: a bad line is an
error naming FILE:LINE before any work starts) and cuts its lines into parts of ``part_size``. The
parts not written yet go to Ray Data: ``map_batches`` over a pool of ``actors`` actors, each of which
loads the Extractor once from the model folders and turns a whole part into result records with
:func:`~mmie.pipeline.corpus.extract_lines`, the loop of the in-process engine. A part is a whole
number of ``batch_size`` model batches, so the models see the batches of the in-process run and the
records are the same. The driver writes each part atomically as it arrives, as
``<out>.parts/part-000003-<digest>.jsonl``, and once all are there writes ``--out`` from them in order
(JSON lines: their concatenation; Parquet: one row group per part).

Resuming: Ray's own writers (``write_json``, ``write_parquet``) name files by a run id and block and
write from many workers at once, so a rerun writes everything again and a killed run leaves files no
one can tell complete. Here a part exists only once complete (an atomic rename), and its name holds
its number and a digest of its input lines: a rerun computes only the parts whose file is missing, and
a part whose lines changed gets a new digest, so it is computed again (its old file is removed).
``<out>.parts/settings.json`` holds what else decides the records (the model folders, limits,
``include_none``, ``batch_size``, ``part_size``); a rerun with other settings is refused.

Ray is imported only here, and only when this engine runs: ``pip install 'mmie[ray]'``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tqdm.auto import tqdm

from mmie.errors import DataError, MmieError
from mmie.io import atomic_path, atomic_writer, write_atomic
from mmie.pipeline.corpus import (
    CorpusLine,
    extract_lines,
    is_parquet,
    json_line,
    parquet_table,
    pyarrow_modules,
    result_schema,
)
from mmie.pipeline.extractor import Extractor
from mmie.pipeline.limits import ExtractionLimits

SETTINGS_FILE = "settings.json"
RAY_LOG = "ray.log"
LOGGERS = ("ray", "ray.data")


@dataclass(frozen=True)
class RaySettings:
    """How the Ray engine runs. ``address``: a running cluster (``ray://host:10001`` or ``host:6379``);
    None: the ``RAY_ADDRESS`` environment variable, else a local runtime of ``actors x cpus_per_actor``
    CPUs with an object store of ``object_store_mb``, its logs under the temporary folder."""

    actors: int = 2
    part_size: int = 256
    address: str | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    object_store_mb: int = 256

    def check(self, batch_size: int) -> None:
        """An error for settings the engine cannot run (before anything is read or started)."""
        if self.actors < 1 or self.part_size < 1:
            raise MmieError("--actors and --part-size must be at least 1")
        if self.part_size % batch_size:
            raise MmieError(
                f"--part-size ({self.part_size}) must be a multiple of --batch-size ({batch_size}): "
                "a part is whole model batches, those of the in-process run"
            )


@dataclass(frozen=True)
class RayRun:
    """What a run did: posts written to ``out`` (error records among them), parts computed now and
    parts found written before."""

    written: int
    errors: int
    computed: int
    reused: int


def parts_folder(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def extract_on_ray(
    input_path: Path,
    lines: list[CorpusLine],
    out: Path,
    *,
    ner: Path | None,
    re: Path | None,
    device: str | None = None,
    include_none: bool = False,
    limits: ExtractionLimits | None = None,
    batch_size: int = 32,
    skip_invalid: bool = False,
    settings: RaySettings | None = None,
    echo: Callable[[str], None] = print,
    progress: bool = False,
) -> RayRun:
    """Extract ``lines`` (read from ``input_path``) into ``out`` (``.jsonl`` or ``.parquet``) on Ray;
    ``echo`` says what a rerun finds, ``progress`` shows a bar of the posts written."""
    settings = settings or RaySettings()
    limits = limits or ExtractionLimits()
    settings.check(batch_size)
    folder = parts_folder(out)
    if out.exists() and not folder.is_dir():
        raise MmieError(f"{out} exists and was not written by --engine ray (no {folder}); pick another --out")
    decides = {
        "ner": str(ner.resolve()) if ner is not None else None,
        "re": str(re.resolve()) if re is not None else None,
        "include_none": include_none,
        "limits": dataclasses.asdict(limits),
        "batch_size": batch_size,
        "part_size": settings.part_size,
    }
    _open_folder(folder, decides)
    parts = [lines[start : start + settings.part_size] for start in range(0, len(lines), settings.part_size)]
    payloads = [[_payload(line) for line in part] for part in parts]
    names = [f"part-{k:06d}-{_digest(payload)}.jsonl" for k, payload in enumerate(payloads)]
    _remove_stale(folder, set(names), echo)
    todo = [k for k, name in enumerate(names) if not (folder / name).exists()]
    reused = len(parts) - len(todo)
    if reused:
        echo(f"{folder}: {reused} of {len(parts)} parts already written, {len(todo)} to go")
    if todo:
        worker = {
            "ner": decides["ner"],
            "re": decides["re"],
            "device": device,
            "include_none": include_none,
            "limits": decides["limits"],
            "input": str(input_path),
            "batch_size": batch_size,
            "skip_invalid": skip_invalid,
            "threads": max(1, math.floor(settings.cpus_per_actor)),
        }
        total = sum(len(parts[k]) for k in todo)
        with tqdm(total=total, unit="post", desc="extract (ray)", disable=not progress, dynamic_ncols=True) as bar:
            for k, text in _run(settings, worker, [(k, payloads[k]) for k in todo], folder):
                write_atomic(folder / names[k], text)
                bar.update(len(parts[k]))
    written, errors = _assemble(folder, names, out)
    return RayRun(written, errors, len(todo), reused)


# ------------------------------------------------------------------------------ the parts folder


def _open_folder(folder: Path, decides: dict) -> None:
    """Create the parts folder with its settings, or check that those of the parts there match."""
    settings = folder / SETTINGS_FILE
    if settings.exists():
        try:
            before = json.loads(settings.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise DataError(f"unreadable ({error}); delete the folder to start afresh", path=settings) from None
        changed = sorted(key for key in set(before) | set(decides) if before.get(key) != decides.get(key))
        if changed:
            raise MmieError(
                f"{folder} holds parts written with other settings ({', '.join(changed)}): "
                "rerun with the same ones, or delete the folder (or pick another --out) to start afresh"
            )
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the folder: {error.strerror or error}", path=folder) from None
    write_atomic(settings, json.dumps(decides, indent=2) + "\n")


def _payload(line: CorpusLine) -> dict:
    """A line as it travels to an actor (JSON): its number and post, or the error it holds."""
    if line.post is not None:
        return {"number": line.number, "post": line.post}
    assert line.error is not None
    return {"number": line.number, "error": {"field": line.error.field, "message": line.error.message}}


def _line(payload: dict) -> CorpusLine:
    if "post" in payload:
        return CorpusLine(payload["number"], payload["post"])
    problem = payload["error"]
    return CorpusLine(payload["number"], error=DataError(problem["message"], field=problem["field"]))


def _digest(payload: list[dict]) -> str:
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _remove_stale(folder: Path, names: set[str], echo: Callable[[str], None]) -> None:
    """Remove the parts of other input lines (the input changed) and the temporary files of a kill."""
    stale = [path for path in folder.glob("part-*.jsonl") if path.name not in names]
    for path in [*stale, *folder.glob(".part-*.tmp")]:
        path.unlink(missing_ok=True)
    if stale:
        echo(f"{folder}: {len(stale)} parts were written from other input lines; they are computed again")


def _assemble(folder: Path, names: list[str], out: Path) -> tuple[int, int]:
    """Write ``out`` from the parts in order; (records, error records)."""
    written = errors = 0
    if is_parquet(out):
        pyarrow, parquet = pyarrow_modules()
        with atomic_path(out) as temporary:
            with contextlib.closing(parquet.ParquetWriter(temporary, result_schema(pyarrow))) as writer:
                for name in names:
                    records = [json.loads(line) for line in (folder / name).read_text(encoding="utf-8").splitlines()]
                    written += len(records)
                    errors += sum("error" in record for record in records)
                    if records:
                        writer.write_table(parquet_table(records))
        return written, errors
    with atomic_writer(out, binary=True) as handle:
        for name in names:
            data = (folder / name).read_bytes()
            records = [json.loads(line) for line in data.splitlines()]
            written += len(records)
            errors += sum("error" in record for record in records)
            handle.write(data)
    return written, errors


# ------------------------------------------------------------------------------ Ray


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library (the `data` extra of ray) must be there too
    except ImportError as error:
        raise MmieError(f"--engine ray needs Ray: pip install 'mmie[ray]' ({error})") from None
    return ray


@contextlib.contextmanager
def _quiet(log: Path) -> Iterator[None]:
    """Ray's INFO and WARNING lines go to ``log`` while the block runs, not to the terminal (its
    errors still show there)."""
    handler = logging.FileHandler(log, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()


def _terminal_errors_only(changed: dict[logging.Handler, int]) -> None:
    """Ray's terminal handlers (which ``ray.init`` sets up) print errors only; ``changed`` keeps each
    handler's level before, for :func:`_restore_levels`. Handlers of the host process (those on the root
    logger, which Ray's loggers may share) are left alone."""
    hosts = set(logging.getLogger().handlers)
    for name in LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                if handler not in hosts:
                    changed.setdefault(handler, handler.level)
                    handler.setLevel(logging.ERROR)


def _restore_levels(changed: dict[logging.Handler, int]) -> None:
    for handler, level in changed.items():
        handler.setLevel(level)


@contextlib.contextmanager
def _runtime(settings: RaySettings, log: Path) -> Iterator[Any]:
    """Ray, connected: to the runtime this process already has, to ``address`` or ``RAY_ADDRESS``, or to
    a local runtime started here (and stopped at the end)."""
    ray = _import_ray()
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    changed: dict[logging.Handler, int] = {}
    with _quiet(log):
        try:
            _terminal_errors_only(changed)
            if ray.is_initialized():
                yield ray
                return
            address = settings.address or os.environ.get("RAY_ADDRESS") or None
            options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
            if address is None:
                options.update(
                    num_cpus=max(1, math.ceil(settings.actors * settings.cpus_per_actor)),
                    include_dashboard=False,
                    object_store_memory=settings.object_store_mb * 2**20,
                    _temp_dir=str(Path(tempfile.gettempdir()) / "mmie-ray"),
                )
            try:
                ray.init(address=address, **options)
            except (ConnectionError, ValueError, RuntimeError) as error:
                raise MmieError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {error}") from None
            _terminal_errors_only(changed)  # ray.init sets its handlers up anew
            try:
                yield ray
            finally:
                ray.shutdown()
        finally:
            _restore_levels(changed)  # the process's logging as it was before


def _run(
    settings: RaySettings, worker: dict, todo: list[tuple[int, list[dict]]], folder: Path
) -> Iterator[tuple[int, str]]:
    """(part number, its JSON lines) for each part of ``todo``, in their order."""
    with _runtime(settings, folder / RAY_LOG) as ray:
        context = ray.data.DataContext.get_current()
        before = (context.enable_progress_bars, context.execution_options.preserve_order)
        context.enable_progress_bars = False
        # Parts come back in their order, so when a part fails every part before it is written: a
        # rerun then resumes at the failed part (unordered, a later part's failure could come back
        # before earlier parts, which were then computed for nothing).
        context.execution_options.preserve_order = True
        try:
            yield from _rows(ray, settings, worker, todo)
        finally:
            context.enable_progress_bars, context.execution_options.preserve_order = before


def _rows(
    ray: Any, settings: RaySettings, worker: dict, todo: list[tuple[int, list[dict]]]
) -> Iterator[tuple[int, str]]:
    """The parts of ``todo`` through the actor pool, in order; a part that failed raises its error."""
    items = [{"part": k, "lines": json.dumps(payload, ensure_ascii=False)} for k, payload in todo]
    with warnings.catch_warnings():  # `max_restarts` as a remote argument is deprecated from Ray 2.60 on
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _bound_worker(worker),
            batch_size=1,  # one part per call: the actor cuts it into the model batches itself
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(settings.actors, len(items))),
            num_cpus=settings.cpus_per_actor,
            num_gpus=settings.gpus_per_actor or None,
            # An actor that dies is not restarted: the run stops, the parts written stay, a rerun
            # resumes. (A restart could not recover Ray Data's constructor arguments, Ray warns.)
            max_restarts=0,
        )
    rows = iter(dataset.iter_rows())
    try:
        for row in rows:
            if row["failure"]:
                problem = json.loads(row["failure"])
                raise DataError(problem["message"], path=worker["input"], line=problem["line"], field=problem["field"])
            yield int(row["part"]), str(row["text"])
    finally:
        close = getattr(rows, "close", None)
        if close is not None:  # a run stopped by an error stops its actors now, not after the corpus
            close()


class PartWorker:
    """A Ray Data actor: loads the Extractor once (``settings``, bound by :func:`_bound_worker`), then turns
    whole parts into result records; a post that stops the run comes back as ``failure``."""

    settings: ClassVar[dict] = {}

    def __init__(self) -> None:
        import torch

        settings = self.settings
        torch.set_num_threads(settings["threads"])  # the actor's CPUs, not the node's
        self.extractor = Extractor.from_pretrained(
            ner=settings["ner"],
            re=settings["re"],
            device=settings["device"],
            include_none=settings["include_none"],
            limits=ExtractionLimits(**settings["limits"]),
        )

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        settings = self.settings
        texts, failures = [], []
        for payload in batch["lines"]:
            lines = [_line(item) for item in json.loads(str(payload))]
            try:
                records = extract_lines(
                    self.extractor, lines, Path(settings["input"]), settings["batch_size"], settings["skip_invalid"]
                )
                texts.append("".join(json_line(record) for record in records))
                failures.append("")
            except DataError as error:
                texts.append("")
                failures.append(json.dumps({"line": error.line, "field": error.field, "message": error.message}))
        return {"part": list(batch["part"]), "text": texts, "failure": failures}


def _bound_worker(settings: dict) -> type:
    """:class:`PartWorker` with its settings as a class attribute (Ray ships the class by value)."""
    return type("BoundPartWorker", (PartWorker,), {"settings": settings})
