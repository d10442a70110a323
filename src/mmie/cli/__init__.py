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


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        app(args=argv, standalone_mode=False)
    except MmieError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except SystemExit:
        raise
    except Exception as error:  # click's usage errors arrive here with standalone_mode=False
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(error.exit_code)
        raise
