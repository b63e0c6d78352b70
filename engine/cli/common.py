"""What every glam command shares: where the database is, its options, the current views."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from engine.ports import ProjectionStore
from engine.store import is_postgres_url, make_store
from projections.runner import PROJECTION
from projections.views import Views

if TYPE_CHECKING:
    from engine.store import Store

DEFAULT_DB = Path(".glam") / "glam.db"


def db_location(value: str | Path | None) -> Path | str:
    """``--db``, else ``$GLAM_DB``, else ``./.glam/glam.db``: a ``postgresql://`` URL as it is
    (a path would fold its ``//``), anything else as the path of an SQLite file."""
    text = value if value is not None else os.environ.get("GLAM_DB") or None
    if text is None:
        return DEFAULT_DB
    if isinstance(text, Path) or is_postgres_url(text):
        return text
    return Path(text)


@asynccontextmanager
async def read_log(db: str | Path | None) -> AsyncIterator[Store]:
    """The log ``db`` names (``db_location``), opened read-only for a query."""
    async with make_store(db_location(db), readonly=True) as store:
        yield store


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Event log: an SQLite file or a postgresql:// URL (the password in $PGPASSWORD "
        "or ~/.pgpass). Default: $GLAM_DB, else ./.glam/glam.db",
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
