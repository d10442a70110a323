"""``mmie sweep``: every run of a paper table (configs/tables/*.yaml), resumable."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from mmie.cli.typer_apps import app


@app.command("sweep")
def sweep_command(
    sweep_file: Path = typer.Argument(..., help="A sweep file, e.g. configs/tables/mre_mi_table2.yaml."),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", help="Folder of the runs (default: the file's output_dir)."
    ),
    set_values: list[str] = typer.Option(
        [], "--set", help="Override a config key in every run, after the sweep's own: --set training.epochs=2."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs (and check their configs) without training."),
) -> None:
    """Train every row x dataset x grid value x seed; skip finished runs; go on past failures."""
    from mmie.training.sweep import is_finished, run_sweep

    logging.getLogger("mmie.sweep").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(message)s")
    sweep, runs, outcome = run_sweep(sweep_file, output_dir, extra_overrides=set_values, dry_run=dry_run)
    if dry_run:
        for run in runs:
            state = "finished" if is_finished(run.run_dir) else "to run"
            typer.echo(f"{state:<9} {run.run_dir}  <- {run.config} {' '.join(run.overrides)}")
        typer.echo(f"{len(runs)} runs in sweep {sweep.name}")
        return
    typer.echo(
        f"sweep {sweep.name}: {len(outcome.finished)} trained, {len(outcome.skipped)} already finished, "
        f"{len(outcome.failed)} failed ({len(runs)} runs)"
    )
    for run, message in outcome.failed:
        typer.echo(f"failed: {run.run_dir}: {message}", err=True)
    if outcome.failed:
        raise typer.Exit(1)
    folder = runs[0].run_dir.parent if runs else output_dir
    typer.echo(f"next: mmie report {folder}" + (f" --reference {sweep.reference}" if sweep.reference else ""))
