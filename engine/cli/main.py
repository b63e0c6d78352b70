"""The ``glam`` command: every subcommand module, registered on the one ``app``
(``engine.cli.app``), and ``main``, which catches glam's errors once for the whole tree."""

from __future__ import annotations

import sys

from engine.cli import (
    aws_local,
    config,
    dashboard,
    db,
    demo,
    drift,
    history,
    ops,
    plan,
    query,
    replay,
    run,
    schema,
    sync,
    wait,
    whatif,
)
from engine.cli.app import app
from engine.errors import GlamError

# Imported for what importing them does: each registers its commands on `app`.
SUBCOMMANDS = (
    aws_local,
    config,
    dashboard,
    db,
    demo,
    drift,
    history,
    ops,
    plan,
    query,
    replay,
    run,
    schema,
    sync,
    wait,
    whatif,
)

__all__ = ["app", "first_glam_error", "main"]


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
    try:
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
