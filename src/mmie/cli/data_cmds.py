"""`mmie data stats` and `mmie data convert`: thin commands over :mod:`mmie.data`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mmie.cli.typer_apps import data_app
from mmie.data import DEFAULT_TARGET, FORMATS, Dataset, convert_dataset, read_dataset
from mmie.data.stats import dataset_stats, render_stats, skip_reason, skipped_by_reason

_FORMAT_HELP = f"Input format ({', '.join(FORMATS)}); detected from the content when omitted."
FormatOption = Annotated[str | None, typer.Option("--format", "-f", help=_FORMAT_HELP)]
StrictTagsOption = Annotated[
    bool, typer.Option("--strict-tags", help="Make irregular I- tags (`O I-PER`) errors instead of counting them.")
]
SkipInvalidOption = Annotated[
    bool, typer.Option("--skip-invalid", help="Load the valid records and report the invalid ones, grouped by reason.")
]


def _report_skipped(dataset: Dataset) -> None:
    """To stderr, so that `--json` output stays clean: how many records were skipped, why, and one example each."""
    if not dataset.skipped:
        return
    reasons = skipped_by_reason(dataset.skipped)
    summary = ", ".join(f"{count} {reason}" for reason, count in reasons.items())
    typer.echo(f"{dataset.path}: skipped {len(dataset.skipped)} invalid records ({summary})", err=True)
    shown: set[str] = set()
    for error in dataset.skipped:
        reason = skip_reason(error)
        if reason not in shown:
            shown.add(reason)
            typer.echo(f"  e.g. {error}", err=True)


@data_app.command("stats")
def stats(
    files: Annotated[list[Path], typer.Argument(help="Dataset files (one table each).")],
    format: FormatOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list, one object per file.")] = False,
    strict_tags: StrictTagsOption = False,
    skip_invalid: SkipInvalidOption = False,
    image_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--image-dir", help="Also decode every image from this folder (repeatable) and count broken ones."
        ),
    ] = None,
) -> None:
    """Posts (NER) or instances and distinct posts (RE), tokens, entities or relations, images per post."""
    results = []
    for path in files:
        dataset = read_dataset(path, format, strict_tags=strict_tags, skip_invalid=skip_invalid)
        _report_skipped(dataset)
        results.append(dataset_stats(dataset, image_dir or None))
    if as_json:
        typer.echo(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        typer.echo("\n\n".join(render_stats(result) for result in results))


@data_app.command("convert")
def convert(
    source: Annotated[Path, typer.Argument(help="The file to read.")],
    target: Annotated[Path, typer.Argument(help="The file to write (replaced atomically).")],
    format: FormatOption = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Output format: mnermi (NER) or mremi (RE) by default, the multi-image layouts; "
            "twitter and mnre are accepted when the records fit them.",
        ),
    ] = None,
    strict_tags: StrictTagsOption = False,
    skip_invalid: SkipInvalidOption = False,
) -> None:
    """Convert any NER file to the MNER-MI JSONL layout and any RE file to the MRE-MI layout."""
    dataset = convert_dataset(source, target, format=format, to=to, strict_tags=strict_tags, skip_invalid=skip_invalid)
    _report_skipped(dataset)
    written = to or DEFAULT_TARGET[dataset.task]
    kind = "posts" if dataset.task == "ner" else "instances"
    typer.echo(f"wrote {len(dataset):,} {kind} from {source} ({dataset.format}) to {target} ({written})")
