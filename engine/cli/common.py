"""What every glam command shares: where the database is, its options, the current views."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from engine.ports import ProjectionStore
from projections.runner import PROJECTION
from projections.views import Views

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


async def current_views(store: ProjectionStore) -> Views:
    """The stored views, brought up to the end of the log in memory (the engine may be
    stopped or behind; nothing is written)."""
    checkpoint, rows = await store.load_views(PROJECTION)
    views = Views.from_rows(checkpoint, rows)
    while batch := await store.read_all(views.position + 1, limit=5000):
        for record in batch:
            views.apply(record)
    return views
