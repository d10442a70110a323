"""``mmie extract`` and ``mmie serve``: thin wrappers of :mod:`mmie.pipeline`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import typer

from mmie.cli.typer_apps import app
from mmie.errors import DataError, MmieError

NER_HELP = "NER model folder (<run>/model); omit it to give entities in the input."
RE_HELP = "RE model folder (<run>/model); omit it for entities only."


def _extractor(ner: Path | None, re_model: Path | None, device: str | None, include_none: bool = False):
    from mmie.pipeline import Extractor

    if ner is None and re_model is None:
        raise MmieError("give --ner, --re or both")
    return Extractor.from_pretrained(ner=ner, re=re_model, device=device, include_none=include_none)


@app.command("extract")
def extract_command(
    ner: Path | None = typer.Option(None, "--ner", help=NER_HELP),
    re_model: Path | None = typer.Option(None, "--re", help=RE_HELP),
    text: str | None = typer.Option(None, "--text", help="One post's text."),
    image: list[Path] = typer.Option([], "--image", help="An image of the post (repeat, up to 4, in order)."),
    input_file: Path | None = typer.Option(
        None, "--input", help='JSON lines, one post a line: {"id", "text", "images": [paths], "entities"?}.'
    ),
    out: Path | None = typer.Option(None, "--out", help="Where --input's results go (JSON lines; resumable)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    include_none: bool = typer.Option(False, "--include-none", help="Also list pairs classified None."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: GPU if any)."),
) -> None:
    """Entities and relations of one post (--text) or of a JSON-lines file (--input ... --out ...).

    A rerun with the same --out skips the posts already written, so an interrupted run resumes.
    """
    if (text is None) == (input_file is None):
        raise MmieError("give --text (one post) or --input (a JSON-lines file), not both")
    if text is not None:
        extractor = _extractor(ner, re_model, device, include_none)
        typer.echo(json.dumps(extractor(text, images=list(image)), ensure_ascii=False, indent=2))
        return
    if out is None:
        raise MmieError("--input needs --out (the results file)")
    assert input_file is not None
    posts = list(_read_posts(input_file))
    done = _resume(out)
    todo = [post for post in posts if post["id"] not in done]
    if done:
        typer.echo(f"{out}: {len(done)} posts already written, {len(todo)} to go", err=True)
    extractor = _extractor(ner, re_model, device, include_none)
    with open(out, "a", encoding="utf-8") as handle:
        for result in extractor.pipe(todo, batch_size=batch_size, progress=True):
            handle.write(json.dumps(result, ensure_ascii=False, allow_nan=False) + "\n")
            handle.flush()
    typer.echo(f"wrote {len(posts) - len(done)} results to {out} ({len(posts)} posts in {input_file})")


def _read_posts(path: Path) -> Iterator[dict]:
    """The posts of a JSON-lines file; image paths resolve against the file's folder; ids must be unique."""
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read the posts: {error}", path=path) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            post = json.loads(line)
        except ValueError as error:
            raise DataError(f"not valid JSON: {error}", path=path, line=number) from None
        if not isinstance(post, dict) or not isinstance(post.get("text"), str):
            raise DataError(
                'a post is {"id": ..., "text": "...", "images": [...]}', path=path, line=number, field="text"
            )
        identifier = str(post.get("id", number))
        if identifier in seen:
            raise DataError(f"id {identifier!r} appears twice", path=path, line=number, field="id")
        seen.add(identifier)
        images = post.get("images") or []
        if not isinstance(images, list) or not all(isinstance(ref, str) for ref in images):
            raise DataError("images must be a list of file paths", path=path, line=number, field="images")
        yield {**post, "id": identifier, "images": [str(path.parent / ref) for ref in images]}


def _resume(out: Path) -> set[str]:
    """Ids already in ``out``; a last line cut off by a kill is dropped so the rerun rewrites it."""
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        return set()
    data = out.read_bytes()
    keep = data.rfind(b"\n") + 1  # everything after the last newline is an unfinished line
    if keep < len(data):
        with open(out, "r+b") as handle:
            handle.truncate(keep)
    done = set()
    for number, line in enumerate(data[:keep].decode("utf-8").splitlines(), start=1):
        try:
            done.add(str(json.loads(line)["id"]))
        except (ValueError, KeyError, TypeError):
            raise DataError(
                "not a result line of mmie extract; delete the file or pick another --out", path=out, line=number
            ) from None
    return done


@app.command("serve")
def serve_command(
    ner: Path | None = typer.Option(None, "--ner", help=NER_HELP),
    re_model: Path | None = typer.Option(None, "--re", help=RE_HELP),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    max_body_mb: float = typer.Option(16.0, "--max-body-mb", help="Largest request body, in MiB."),
    max_image_pixels: int = typer.Option(4096 * 4096, "--max-image-pixels", help="Largest image (width x height)."),
    max_text_chars: int = typer.Option(2000, "--max-text-chars"),
    device: str | None = typer.Option(None, "--device"),
) -> None:
    """The HTTP service (POST /extract, GET /health, GET /models, /docs) and its page at /."""
    from mmie.pipeline.service import ServiceLimits, serve

    limits = ServiceLimits(
        max_body_bytes=int(max_body_mb * 2**20), max_image_pixels=max_image_pixels, max_text_chars=max_text_chars
    )
    extractor = _extractor(ner, re_model, device)
    typer.echo(f"serving on http://{host}:{port}/  (page at /, API docs at /docs)", err=True)
    serve(extractor, host=host, port=port, limits=limits)
