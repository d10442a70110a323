"""The ``mmie`` command: a thin layer over the Python API.

Each command group lives in its own module and registers itself on :data:`app`; errors that mmie
raises on purpose (:class:`mmie.errors.MmieError`) are printed as one line, never as a trace.
"""

from __future__ import annotations

import sys

import typer

from mmie.errors import MmieError

app = typer.Typer(
    name="mmie",
    help="Multimodal information extraction from social-media posts with 1-4 images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Datasets: statistics, conversion, synthetic samples.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _register() -> None:
    # Imported for their side effect of adding commands to `app`.
    from mmie.cli import cache_cmds, data_cmds, score_cmds, synth_cmds, train_cmds  # noqa: F401
    from mmie.cli import regions_cmds  # noqa: F401
    from mmie.cli import extract_cmds  # noqa: F401
    from mmie.cli import data_check_cmds, report_cmds, sweep_cmds  # noqa: F401
    from mmie.cli import challenge_cmds  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        # Standalone mode: typer itself prints usage errors (missing or bad options) and exits 2.
        app(args=argv, prog_name="mmie")
    except SystemExit as done:
        if done.code not in (0, None):
            raise  # usage errors: exit code 2, already explained on stderr
    except MmieError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
