"""``mmie data check``: is my copy of the dataset the one the papers used?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mmie.cli.typer_apps import data_app
from mmie.data.check import DATASETS, check_dataset, render_check


@data_app.command("check")
def check(
    folder: Annotated[Path, typer.Argument(help="The dataset folder (the release's layout, see docs/reproducing.md).")],
    dataset: Annotated[str, typer.Option("--dataset", help=f"One of {', '.join(DATASETS)}.")],
    images: Annotated[
        list[Path] | None,
        typer.Option("--images", help="Image folder(s) to use instead of the release's (repeatable)."),
    ] = None,
    text_only: Annotated[
        bool, typer.Option("--text-only", help="Check the text files only (no image folder).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Files and layout, split counts against the papers, unusable images, and which release each split is.

    Exits 1 when a problem is found (a missing split, a count that differs, unusable images, a file
    that is another release's); warnings (an unknown fingerprint) do not change the exit code.
    """
    report = check_dataset(folder, dataset, images=images or None, text_only=text_only)
    typer.echo(json.dumps(report, indent=2) if as_json else render_check(report))
    if not report["ok"]:
        raise typer.Exit(1)
