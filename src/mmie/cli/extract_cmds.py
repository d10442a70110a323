"""``mmie extract`` and ``mmie serve``: thin wrappers of :mod:`mmie.pipeline`."""

from __future__ import annotations

import contextlib
import enum
import json
from pathlib import Path

import typer

from mmie.cli.typer_apps import app
from mmie.errors import DataError, MmieError

NER_HELP = "NER model folder (<run>/model); omit it to give entities in the input."
RE_HELP = "RE model folder (<run>/model); omit it for entities only."
MAX_ENTITIES_HELP = "Entities a post may give (more: an error for that post)."
MAX_PAIRS_HELP = "Candidate pairs classified per post, closest first (the others are listed in skipped_pairs)."
TIMEOUT_HELP = "Seconds of work per post (a batch of n posts: n times this); 0: no deadline."


class Engine(str, enum.Enum):
    inprocess = "inprocess"
    ray = "ray"


def _extractor(ner: Path | None, re_model: Path | None, device: str | None, include_none: bool = False, **limits):
    from mmie.pipeline import Extractor
    from mmie.pipeline.limits import ExtractionLimits

    if ner is None and re_model is None:
        raise MmieError("give --ner, --re or both")
    return Extractor.from_pretrained(
        ner=ner, re=re_model, device=device, include_none=include_none, limits=ExtractionLimits(**limits)
    )


ENGINE_HELP = "inprocess: this process; ray: Ray Data, a pool of model-holding actors (pip install 'mmie[ray]')."
RAY_ADDRESS_HELP = "--engine ray: a running Ray cluster (default: $RAY_ADDRESS, else a local runtime)."
PART_HELP = "--engine ray: posts per output part (a multiple of --batch-size); a rerun skips written parts."


@app.command("extract")
def extract_command(
    ner: Path | None = typer.Option(None, "--ner", help=NER_HELP),
    re_model: Path | None = typer.Option(None, "--re", help=RE_HELP),
    text: str | None = typer.Option(None, "--text", help="One post's text."),
    image: list[Path] = typer.Option([], "--image", help="An image of the post (repeat, up to 4, in order)."),
    input_file: Path | None = typer.Option(
        None,
        "--input",
        help='JSON lines, one post a line: {"id", "text", "images": [paths], "entities"?}; or .parquet, those columns.',
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Where --input's results go (JSON lines; .parquet with --engine ray; resumable)."
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    include_none: bool = typer.Option(False, "--include-none", help="Also list pairs classified None."),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Write an error record for a bad post (JSON, text, image, entities) and go on."
    ),
    max_entities: int = typer.Option(32, "--max-entities", min=1, help=MAX_ENTITIES_HELP),
    max_pairs: int = typer.Option(64, "--max-pairs", min=0, help=MAX_PAIRS_HELP),
    timeout: float = typer.Option(30.0, "--timeout", min=0.0, help=TIMEOUT_HELP),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: GPU if any)."),
    engine: Engine = typer.Option(Engine.inprocess, "--engine", help=ENGINE_HELP),
    actors: int = typer.Option(
        2, "--actors", min=1, help="--engine ray: model-holding actors (each loads the models)."
    ),
    part_size: int = typer.Option(256, "--part-size", min=1, help=PART_HELP),
    ray_address: str | None = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
    cpus_per_actor: float = typer.Option(1.0, "--cpus-per-actor", min=0.0, help="--engine ray: CPUs an actor holds."),
    gpus_per_actor: float = typer.Option(0.0, "--gpus-per-actor", min=0.0, help="--engine ray: GPUs an actor holds."),
) -> None:
    """Entities and relations of one post (--text) or of a JSON-lines file (--input ... --out ...).

    Ids are unique non-empty strings (or integers); a post without one gets its line number. A post over
    a limit (--max-entities, --timeout) gets an error record in --out; a bad post stops the run with
    FILE:LINE unless --skip-invalid. A rerun with the same --out skips the posts already written (error
    records included), so an interrupted run resumes. --engine ray runs the file on Ray Data
    (docs/extraction.md): the same records, written in parts under OUT.parts/.
    """
    if (text is None) == (input_file is None):
        raise MmieError("give --text (one post) or --input (a JSON-lines file), not both")
    limits = {"max_entities": max_entities, "max_pairs": max_pairs, "timeout_s": timeout or None}
    if text is not None:
        extractor = _extractor(ner, re_model, device, include_none, **limits)
        try:
            result = extractor(text, images=list(image))
        except DataError as error:  # no file here: name the field only
            raise MmieError(f"{error.field}: {error.message}" if error.field else error.message) from None
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    if out is None:
        raise MmieError("--input needs --out (the results file)")
    assert input_file is not None
    from mmie.pipeline.corpus import extract_lines, is_parquet, json_line, read_posts  # torch: only when used

    if engine == Engine.ray:
        if ner is None and re_model is None:
            raise MmieError("give --ner, --re or both")
        from mmie.pipeline.limits import ExtractionLimits
        from mmie.pipeline.ray_engine import RaySettings, extract_on_ray

        settings = RaySettings(actors, part_size, ray_address, cpus_per_actor, gpus_per_actor)
        settings.check(batch_size)
        lines = read_posts(input_file, skip_invalid)
        run = extract_on_ray(
            input_file,
            lines,
            out,
            ner=ner,
            re=re_model,
            device=device,
            include_none=include_none,
            limits=ExtractionLimits(max_entities, max_pairs, timeout or None),
            batch_size=batch_size,
            skip_invalid=skip_invalid,
            settings=settings,
            echo=lambda message: typer.echo(message, err=True),
            progress=True,
        )
        note = f", {run.errors} of them error records" if run.errors else ""
        typer.echo(
            f"wrote {run.written} results to {out}{note} ({len(lines)} posts in {input_file}; "
            f"{run.computed} parts computed, {run.reused} written before)"
        )
        return
    if is_parquet(out):
        raise MmieError("Parquet results come from --engine ray; the in-process engine appends JSON lines")
    lines = read_posts(input_file, skip_invalid)
    done_ids, done_lines = _resume(out)
    todo = [
        line
        for line in lines
        if (line.post["id"] not in done_ids if line.post is not None else line.number not in done_lines)
    ]
    if done_ids or done_lines:
        typer.echo(f"{out}: {len(done_ids) + len(done_lines)} posts already written, {len(todo)} to go", err=True)
    extractor = _extractor(ner, re_model, device, include_none, **limits)
    results = extract_lines(extractor, todo, input_file, batch_size, skip_invalid, progress=True)
    written = errors = 0
    with open(out, "a", encoding="utf-8") as handle, contextlib.closing(results):  # the bar ends before a message
        for result in results:
            handle.write(json_line(result))
            handle.flush()
            written += 1
            errors += "error" in result
    note = f", {errors} of them error records" if errors else ""
    typer.echo(f"wrote {written} results to {out}{note} ({len(lines)} posts in {input_file})")


def _resume(out: Path) -> tuple[set[str], set[int]]:
    """The ids already in ``out`` (results and error records), and the line numbers of its records of
    input lines that held no post; a last line cut off by a kill is dropped so the rerun rewrites it."""
    if not out.exists():
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(f"cannot create the folder: {error.strerror or error}", path=out.parent) from None
        return set(), set()
    try:
        data = out.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read the results file: {error.strerror or error}", path=out) from None
    keep = data.rfind(b"\n") + 1  # everything after the last newline is an unfinished line
    if keep < len(data):
        with open(out, "r+b") as handle:
            handle.truncate(keep)
    ids: set[str] = set()
    lines: set[int] = set()
    for number, raw in enumerate(data[:keep].split(b"\n")[:-1], start=1):
        try:
            record = json.loads(raw.decode("utf-8"))
            identifier = record["id"]
            if identifier is None and isinstance(record.get("line"), int) and "error" in record:
                lines.add(record["line"])
                continue
            if not isinstance(identifier, str):
                raise TypeError
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError):
            # (a line that is not UTF-8 raises UnicodeDecodeError, a ValueError)
            raise DataError(
                "not a result line of mmie extract; delete the file or pick another --out", path=out, line=number
            ) from None
        ids.add(identifier)
    return ids, lines


@app.command("serve")
def serve_command(
    ner: Path | None = typer.Option(None, "--ner", help=NER_HELP),
    re_model: Path | None = typer.Option(None, "--re", help=RE_HELP),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    max_body_mb: float = typer.Option(16.0, "--max-body-mb", help="Largest request body, in MiB."),
    max_image_pixels: int = typer.Option(4096 * 4096, "--max-image-pixels", help="Largest image (width x height)."),
    max_text_chars: int = typer.Option(2000, "--max-text-chars"),
    max_entities: int = typer.Option(32, "--max-entities", min=1, help=MAX_ENTITIES_HELP),
    max_pairs: int = typer.Option(64, "--max-pairs", min=0, help=MAX_PAIRS_HELP),
    timeout: float = typer.Option(
        30.0, "--timeout", min=0.1, help="Seconds from a request's arrival to its answer (503 waiting, 504 running)."
    ),
    max_pending_mb: float = typer.Option(
        64.0, "--max-pending-mb", help="Request bodies waiting or in progress, together, in MiB (past it: 503)."
    ),
    mode: str = typer.Option(
        "batch", "--mode", help="batch: gather waiting requests into micro-batches; one-at-a-time: in arrival order."
    ),
    max_batch: int = typer.Option(16, "--max-batch", min=1, help="batch: posts per micro-batch."),
    max_wait_ms: float = typer.Option(
        10.0, "--max-wait-ms", min=0.0, help="batch: how long a micro-batch's first request waits for others."
    ),
    max_queue: int = typer.Option(
        32, "--max-queue", min=1, help="batch: requests waiting for a micro-batch (past it: 503 with Retry-After)."
    ),
    device: str | None = typer.Option(None, "--device"),
) -> None:
    """The HTTP service (POST /extract, GET /health, GET /models, /docs) and its page at /."""
    from mmie.pipeline.service import ServiceLimits, serve

    limits = ServiceLimits(
        max_body_bytes=int(max_body_mb * 2**20),
        max_image_pixels=max_image_pixels,
        max_text_chars=max_text_chars,
        max_entities=max_entities,
        max_pairs=max_pairs,
        timeout_s=timeout,
        max_pending_bytes=int(max_pending_mb * 2**20),
        mode=mode,  # type: ignore[arg-type]  # checked by ServiceLimits
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
    )
    extractor = _extractor(ner, re_model, device)
    typer.echo(f"serving on http://{host}:{port}/  (page at /, API docs at /docs)", err=True)
    serve(extractor, host=host, port=port, limits=limits)
