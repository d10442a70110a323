"""The typer applications the command modules register on: ``app`` (the ``mmie`` command) and ``data_app``.

They live in a module of their own so that every ``*_cmds`` module imports them from here, and
:mod:`mmie.cli` imports the command modules: the imports go one way. (Not named ``app.py``: the
package re-exports the ``app`` object, which would hide a submodule of that name.)
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="mmie",
    help="Multimodal information extraction from social-media posts with 1-4 images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Datasets: statistics, conversion, synthetic samples.", no_args_is_help=True)
app.add_typer(data_app, name="data")
