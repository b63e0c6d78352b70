"""The ``glam`` command. Each group of subcommands lives in its own module and registers itself
here; errors from the whole tree are caught once, in ``main``."""

from __future__ import annotations

import sys

import typer

from engine.errors import GlamError


def _exit_with(result: object, **_: object) -> None:
    """A command may return its exit code (``glam plan`` returns 0, 1, 2 or 3)."""
    if isinstance(result, int) and not isinstance(result, bool) and result != 0:
        raise typer.Exit(result)


app = typer.Typer(
    result_callback=_exit_with,
    name="glam",
    help="GitOps for AWS Lambda: make AWS match the Lambda definitions in a Git repository.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Subcommand modules register themselves on `app` when imported (one import per module).


@app.callback()
def _root() -> None:
    """GitOps for AWS Lambda."""
    # An explicit callback keeps `glam <command>` a command group even while only one
    # subcommand is registered (typer would otherwise run that command as the whole app).


def main() -> None:
    """Entry point: runs the CLI, turns a GlamError into one line and an exit code
    (2 for usage errors, 1 for failures).

    Usage errors, ``--help`` and Ctrl-C are handled by click's standalone mode (exit 2 for a
    usage error); everything glam raises on purpose is a ``GlamError`` and caught here once.
    """
    try:
        app()
    except GlamError as exc:
        print(f"glam: {exc.one_line()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("glam: interrupted", file=sys.stderr)
        sys.exit(130)


import engine.cli.aws_local  # noqa: E402  (registers `glam aws-local`)
import engine.cli.demo  # noqa: E402  (registers `glam demo`)
import engine.cli.plan  # noqa: E402, F401  (registers `glam plan`)
from engine.cli import ops as _ops  # noqa: E402, F401  (registers the operator commands)
from engine.cli import query as _query  # noqa: E402, F401  (registers events, status, replay)
from engine.cli import run as _run  # noqa: E402, F401  (registers `glam run`)

if __name__ == "__main__":
    # Run as `python -m engine.cli.main`: this file is then `__main__`, a second copy of the
    # module the subcommands register on. Call the real one.
    from engine.cli.main import main as _main

    _main()
