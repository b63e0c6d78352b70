"""What every glam command shares: where the database is, its options, the current views."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
import typer

from engine.errors import StoreCorrupt
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
async def read_log(db: str | Path | None, *, check_beside: bool = False) -> AsyncIterator[Store]:
    """The log ``db`` names (``db_location``), opened read-only for a query.

    An SQLite file is checked (SQLite's integrity check) before it is read; with
    ``check_beside`` the check runs in a thread of its own while the caller reads, and leaving
    the block waits for it, so a command that prints only after the block still refuses a
    damaged file before printing anything, without waiting for the check first (it reads
    every page: seconds on a file of a gigabyte)."""
    location = db_location(db)
    if not check_beside or is_postgres_url(location):
        async with make_store(location, readonly=True) as store:
            yield store
        return
    from engine.store.sqlite_log import FileCheck

    async with make_store(location, readonly=True, check=False) as store:
        check = FileCheck(getattr(store, "path", Path(location)), Path(location))

        async def run_check() -> None:
            try:
                await anyio.to_thread.run_sync(check.run, abandon_on_cancel=True)
            except anyio.get_cancelled_exc_class():
                check.stop()  # the caller left (Ctrl-C, an error): not a page more
                raise

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_check)
                yield store
        except BaseExceptionGroup as group:
            # One error, as if there were no task group: the check's refusal first (what the
            # caller read of a damaged file is not to be trusted), else the caller's own.
            corrupt, rest = group.split(StoreCorrupt)
            first = (corrupt or rest or group).exceptions[0]
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None


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
