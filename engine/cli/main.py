"""The ``glam`` command: every subcommand module, registered on the one ``app``
(``engine.cli.app``), and ``main``, which catches glam's errors once for the whole tree.

A subcommand module registers its commands on ``app`` when it is imported. ``main`` imports
only the module of the command it runs (``COMMANDS``), so that ``glam replay`` does not pay
for the imports of ``glam run`` or ``glam plan``; ``--help``, completion and anything it does
not recognise import them all. ``engine.cli.main.app`` is the app with every command on it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.errors import GlamError

if TYPE_CHECKING:
    import typer

# The module of each command and group, the modules in the order `glam --help` lists their
# commands (tests/cli/test_imports.py holds it equal to what the modules register).
COMMANDS = {
    "aws-local": "aws_local",
    "config": "config",
    "dashboard": "dashboard",
    "db": "db",
    "demo": "demo",
    "drift": "drift",
    "deployments": "history",
    "commits": "history",
    "promote": "ops",
    "hold": "ops",
    "resume": "ops",
    "extend": "ops",
    "abort": "ops",
    "retry": "ops",
    "allow-deletes": "ops",
    "plan": "plan",
    "events": "query",
    "status": "query",
    "replay": "replay",
    "run": "run",
    "schema": "schema",
    "sync": "sync",
    "wait": "wait",
    "whatif": "whatif",
}
SUBCOMMANDS = tuple(dict.fromkeys(COMMANDS.values()))

__all__ = ["COMMANDS", "SUBCOMMANDS", "first_glam_error", "load_commands", "main"]


def load_commands(args: Sequence[str]) -> None:
    """Register what ``glam ARGS...`` needs: the one module of its command when ``args``
    starts with a command's name, else every command (``--help``, ``--version``, shell
    completion, a name that is no command: click lists or suggests them all)."""
    module = COMMANDS.get(args[0]) if args else None
    completing = any(key.startswith("_GLAM_COMPLETE") for key in os.environ)
    for name in SUBCOMMANDS if module is None or completing else (module,):
        importlib.import_module(f"engine.cli.{name}")


def __getattr__(name: str) -> typer.Typer:
    """``engine.cli.main.app``: the app with every command registered."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from engine.cli.app import app

    load_commands(())
    return app


def first_glam_error(exc: BaseException) -> GlamError | None:
    """``exc`` if it is a GlamError, else the first GlamError inside it when it is an
    exception group (depth first, in order), else None.

    Task groups wrap what leaves them (``async with Engine(...)``, a writable store) in an
    ``ExceptionGroup``, even a single error; the user must still get its one line."""
    if isinstance(exc, GlamError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = first_glam_error(inner)
            if found is not None:
                return found
    return None


def main() -> None:
    """Entry point: runs the CLI, turns a GlamError into one line and an exit code
    (2 for usage errors, 1 for failures).

    Usage errors, ``--help`` and Ctrl-C are handled by click's standalone mode (exit 2 for a
    usage error); everything glam raises on purpose is a ``GlamError`` and caught here once,
    also when it arrives inside an exception group.
    """
    from engine.cli.app import app

    try:
        load_commands(sys.argv[1:])
        app()
    except KeyboardInterrupt:
        print("glam: interrupted", file=sys.stderr)
        sys.exit(130)
    except BaseException as exc:
        error = first_glam_error(exc)
        if error is None:
            raise
        print(f"glam: {error.one_line()}", file=sys.stderr)
        sys.exit(error.exit_code)
