"""``mmie data synth``: write a SYNTHETIC MNER-MI or MRE-MI style dataset (demo and pathway tests)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from mmie.cli.typer_apps import data_app
from mmie.data.synth import DEFAULT_POSTS, DEFAULT_SEED, generate_dataset


class SynthTask(str, Enum):
    mner = "mner"
    mre = "mre"


@data_app.command("synth")
def synth(
    task: SynthTask = typer.Option(..., "--task", help="mner (MNER-MI layout) or mre (MRE-MI layout)."),
    out: Path = typer.Option(..., "--out", help="Directory to write the dataset into (created if missing)."),
    posts: int = typer.Option(DEFAULT_POSTS, "--posts", help="Number of posts in total, split 70/15/15."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Same seed, same bytes."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a synthetic dataset already in --out."),
) -> None:
    """Generate SYNTHETIC posts whose labels often depend on one of their 1-4 images (not real data)."""
    summary = generate_dataset(task.value, out, posts, seed, overwrite=overwrite)
    splits = ", ".join(f"{name} {size}" for name, size in summary.split_sizes.items())
    typer.echo(
        f"wrote SYNTHETIC {summary.task} data to {summary.out}: {splits} posts; {summary.images} images"
        + (f", {summary.crops} grounding crops" if summary.task == "mre" else "")
        + f"; {summary.ambiguous} posts decided by an image"
    )
