"""``glam demo``: glam end to end on an embedded AWS (see ``engine.demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.app import app
from engine.cli.output import examples

_HELP = """Deploy a sample repository on an embedded AWS, in four acts: a first deployment of
three functions (SQS, HTTP API, ALB), a canary (50 % then 100 %), a broken version rolled back
by its alarm, and a delete. Then print `glam status`, the last events and what to run next.

Needs git and the 'local' extra (moto); ./scripts/demo installs everything. Takes about a
minute; nothing leaves 127.0.0.1.
"""


@app.command(
    "demo",
    help=_HELP,
    epilog=examples("glam demo", "glam demo --dir /tmp/glam-demo --keep"),
)
def demo(
    folder: Annotated[
        Path,
        typer.Option(
            "--dir",
            help="Folder for the sample repository and the event log; a previous demo "
            "folder is emptied first.",
        ),
    ] = Path(".glam") / "demo",
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Keep the embedded AWS running at the end, until Ctrl-C."),
    ] = False,
    wait: Annotated[
        int,
        typer.Option("--wait", help="Seconds each canary step bakes (waitInterval).", min=1),
    ] = 3,
) -> None:
    # Imported here: the rest of the CLI works without the optional 'local' extra.
    from engine.demo import DemoOptions, run_demo

    raise typer.Exit(run_demo(DemoOptions(folder=folder, keep=keep, wait=wait)))
