"""The ``glam`` Typer app. Each group of subcommands lives in its own module and registers
itself on ``app`` when imported; ``engine.cli.main`` imports the one a command needs (all of
them for ``--help``) and runs it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Annotated

import typer

PACKAGE = "glam-gitops"


def glam_version() -> str:
    """The installed version of glam (``unknown`` when run from a bare checkout)."""
    try:
        return package_version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        print(f"glam {glam_version()}")
        raise typer.Exit


def _exit_with(result: object, **_: object) -> None:
    """A command may return its exit code (``glam plan`` returns 0, 1, 2 or 3)."""
    if isinstance(result, int) and not isinstance(result, bool) and result != 0:
        raise typer.Exit(result)


app = typer.Typer(
    result_callback=_exit_with,
    name="glam",
    help="GitOps for AWS Lambda: make AWS match the Lambda definitions in a Git repository.",
    no_args_is_help=True,
    add_completion=True,  # glam --install-completion / --show-completion
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print glam's version and exit.",
        ),
    ] = False,
) -> None:
    """GitOps for AWS Lambda."""
    # An explicit callback keeps `glam <command>` a command group even while only one
    # subcommand is registered (typer would otherwise run that command as the whole app).
