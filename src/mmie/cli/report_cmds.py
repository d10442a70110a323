"""``mmie report``: run folders -> Markdown, LaTeX and CSV tables with significance marks, and plots."""

from __future__ import annotations

from pathlib import Path

import typer

from mmie.cli.typer_apps import app


@app.command("report")
def report_command(
    run_dirs: list[Path] = typer.Argument(..., help="Run folders, or sweep folders holding them."),
    reference: str | None = typer.Option(
        None, "--reference", help="Row the others are tested against (default: the sweep's `reference`)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for the tables and plots (default: <first RUN_DIR>/report)."
    ),
    challenge: list[Path] = typer.Option(
        [], "--challenge", help="A `mmie evaluate --challenge` JSON file to plot (repeatable)."
    ),
    trials: int = typer.Option(10_000, "--trials", min=100, help="Approximate-randomisation trials."),
    seed: int = typer.Option(12345, "--seed", help="Seed of the significance test."),
    pair: list[str] = typer.Option(
        [],
        "--pair",
        help="ROW=COUNTERPART: also test ROW against COUNTERPART (repeatable; default: the sweep's `pairs`).",
    ),
    breakdown_by: Path | None = typer.Option(
        None,
        "--breakdown-by",
        help="JSON lines with `id` and `setting` per test post, for the by_setting table "
        "(default: synth_meta.jsonl beside each run's test file, when there is one).",
    ),
) -> None:
    """Mean ± std over seeds per row and dataset, † on rows significantly better than the reference (p < 0.05)."""
    from mmie.errors import ConfigError
    from mmie.reporting.report import build_report, render_markdown, write_report

    pairs: dict[str, str] | None = None
    if pair:
        bad = [item for item in pair if item.count("=") != 1 or not all(side.strip() for side in item.split("="))]
        if bad:
            raise ConfigError(f"--pair {bad[0]!r}: give ROW=COUNTERPART (row labels as in the report)")
        pairs = {row.strip(): counterpart.strip() for row, counterpart in (item.split("=") for item in pair)}
    report = build_report(run_dirs, reference, trials=trials, seed=seed, breakdown=breakdown_by, pairs=pairs)
    folder = out or run_dirs[0] / "report"
    written = write_report(report, folder, challenge)
    typer.echo(render_markdown(report))
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"wrote {len(written)} files to {folder}", err=True)
