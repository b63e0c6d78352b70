"""What every glam command shares: where the database is, and how output and errors look."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_DB = Path(".glam") / "glam.db"


def db_path(value: Path | None) -> Path:
    """``--db``, else ``$GLAM_DB``, else ``./.glam/glam.db``."""
    if value is not None:
        return value
    env = os.environ.get("GLAM_DB")
    return Path(env) if env else DEFAULT_DB


DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="Event log database. Default: $GLAM_DB, else ./.glam/glam.db",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
