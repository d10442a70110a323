"""``mmie imagetext build``: captions, object tags or OCR text of a dataset's images, in one JSON-lines file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmie.cli.typer_apps import app

imagetext_app = typer.Typer(help="Image-derived text: captions, object tags, OCR text.", no_args_is_help=True)
app.add_typer(imagetext_app, name="imagetext")


@imagetext_app.command("build")
def build(
    data: Annotated[list[Path], typer.Argument(help="Data files whose images to describe.")],
    images: Annotated[Path, typer.Option("--images", help="Folder the records' images are in.")],
    model: Annotated[str, typer.Option("--model", help="Hugging Face model name or local folder.")],
    out: Annotated[Path, typer.Option("--out", help="Output JSON-lines file (docs/imagetext.md).")],
    task: Annotated[
        str, typer.Option("--task", help="object-detection | image-classification | image-text-to-text.")
    ] = "object-detection",
    field: Annotated[str | None, typer.Option("--field", help="image-text-to-text: caption or ocr.")] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", help="image-text-to-text: the instruction.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Tags kept per image.")] = 5,
    threshold: Annotated[float, typer.Option("--threshold", help="Lowest score of a kept tag.")] = 0.5,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Where answers are cached (default: beside OUT).")
    ] = None,
    data_format: Annotated[str | None, typer.Option("--format", help="Data format; detected when omitted.")] = None,
) -> None:
    """Run a named model once over every image of DATA; what was done before comes from its cache."""
    from mmie.imagetext import HubImageText
    from mmie.imagetext.build import build_image_text

    provider = HubImageText(
        model,
        task,
        cache_dir=cache_dir or out.parent / "imagetext_cache",
        field=field,
        prompt=prompt,
        top_k=top_k,
        threshold=threshold,
    )
    try:
        entries = build_image_text(data, images, provider, out, data_format=data_format)
    finally:
        provider.close()
    typer.echo(f"{len(entries)} images ({provider.runs} run through {model}, the rest cached) -> {out}")


@imagetext_app.command("convert")
def convert(
    out: Annotated[Path, typer.Option("--out", help="Output JSON-lines file (docs/imagetext.md).")],
    visualpt_captions: Annotated[
        Path | None, typer.Option("--visualpt-captions", help="VisualPT-MoE caption dictionary (.pt).")
    ] = None,
    visualpt_tags: Annotated[
        Path | None, typer.Option("--visualpt-tags", help="VisualPT-MoE object-tag dictionary (.pt).")
    ] = None,
    ita: Annotated[Path | None, typer.Option("--ita", help='ITA\'s preprocessed "doc" column file.')] = None,
    ita_dataset: Annotated[
        Path | None, typer.Option("--ita-dataset", help="The dataset file of the same split (it names the images).")
    ] = None,
    ita_order: Annotated[
        str, typer.Option("--ita-order", help="The fields of ITA's image text, in order, comma separated.")
    ] = "caption,tags,ocr",
) -> None:
    """Convert released image-text files (VisualPT-MoE's .pt dictionaries, ITA's doc files) to mmie's format."""
    from mmie.imagetext.convert import convert_ita, convert_visualpt_moe

    if ita is not None or ita_dataset is not None:
        if ita is None or ita_dataset is None:
            raise typer.BadParameter("--ita and --ita-dataset go together (the posts of one split)")
        done = convert_ita(ita, ita_dataset, out, order=tuple(ita_order.split(",")))
        typer.echo(
            f"{done.posts} posts: image text of {done.images} images -> {out}"
            + (f" ({done.without_image_text} posts without image text)" if done.without_image_text else "")
        )
        return
    report = convert_visualpt_moe(out, captions=visualpt_captions, tags=visualpt_tags)
    typer.echo(
        f"{report.images} images: {report.captions} captions, {report.tag_lists} tag lists -> {out}"
        + (f" ({report.placeholder_captions} placeholder captions dropped)" if report.placeholder_captions else "")
    )
