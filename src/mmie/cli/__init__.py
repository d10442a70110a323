"""The ``mmie`` command: a thin layer over the Python API.

Each command group lives in its own module and registers itself on :data:`app` (defined in
:mod:`mmie.cli.typer_apps`); errors that mmie raises on purpose (:class:`mmie.errors.MmieError`) are
printed as one line, never as a trace.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

# Imported for their side effect of adding commands to `app`; they take `app` from mmie.cli.typer_apps,
# never from here, so this package depends on them and not the other way round. Keep this order (not
# sorted): commands are listed in `mmie --help` in the order they are registered.
# isort: off
from mmie.cli import cache_cmds, data_cmds, score_cmds, synth_cmds, train_cmds  # noqa: F401
from mmie.cli import regions_cmds  # noqa: F401
from mmie.cli import extract_cmds  # noqa: F401
from mmie.cli import data_check_cmds, report_cmds, sweep_cmds  # noqa: F401
from mmie.cli import challenge_cmds  # noqa: F401
from mmie.cli import imagetext_cmds, llm_cmds  # noqa: F401
from mmie.cli import encoders_cmds  # noqa: F401

# isort: on
from mmie.cli.typer_apps import app, data_app  # noqa: F401 - re-exported: `mmie.cli.app` as before
from mmie.errors import MmieError

_PACKAGE = Path(__file__).resolve().parents[1]


def _one_line_warnings(python_show: Callable[..., None]) -> Callable[..., None]:
    """mmie's own warnings as one line (``warning: ...``), as its errors are; other packages' as Python shows them."""

    def show(
        message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
    ) -> None:
        if Path(filename).resolve().is_relative_to(_PACKAGE):
            typer.echo(f"warning: {message}", err=True)
        else:
            python_show(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> None:
    python_show = warnings.showwarning
    warnings.showwarning = _one_line_warnings(python_show)
    try:
        # Standalone mode: typer itself prints usage errors (missing or bad options) and exits 2.
        app(args=argv, prog_name="mmie")
    except SystemExit as done:
        if done.code not in (0, None):
            raise  # usage errors: exit code 2, already explained on stderr
    except MmieError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
    finally:
        warnings.showwarning = python_show
