"""What every glam command shares: where the database is, its options, the current views.

Light to import: a command that reads the log (``with_store``) starts the file's integrity
check before it imports what it reads with, so the two overlap.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import anyio
import typer

from engine.errors import StoreCorrupt
from engine.store import is_postgres_url

if TYPE_CHECKING:
    from engine.ports import ProjectionStore
    from engine.store import Store
    from engine.store.file_check import BackgroundCheck
    from projections.views import Views

T = TypeVar("T")

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
    check = await anyio.to_thread.run_sync(start_check, db) if check_beside else None
    async with read_beside(db, check) as store:
        yield store


def start_check(db: str | Path | None) -> BackgroundCheck | None:
    """The integrity check of the SQLite file ``db`` names, started now in a thread of its
    own (None for a PostgreSQL log, or a path that is no file: opening it says why).
    Blocking (file system calls): from an event loop, call it in a worker thread.

    The store's own refusals come first, as when it opens the file: the check's connection
    must not open a file with a second name, nor one whose running engine lost its
    ``-wal`` (SQLite would start a new one, and the history would split)."""
    from engine.store import sqlite_files
    from engine.store.file_check import BackgroundCheck

    location = db_location(db)
    if is_postgres_url(location):
        return None
    path = sqlite_files.resolve(location)
    if not path.is_file():
        return None
    sqlite_files.check_single_name(path)
    sqlite_files.check_wal_present(path)
    return BackgroundCheck.start(path, Path(location))


@asynccontextmanager
async def read_beside(db: str | Path | None, check: BackgroundCheck | None) -> AsyncIterator[Store]:
    """``read_log``'s body: the log opened read-only while ``check`` runs (None: checked at
    open, as any store opened read-only)."""
    from engine.store import make_store

    location = db_location(db)
    if check is None:
        async with make_store(location, readonly=True) as store:
            yield store
        return
    try:
        async with (
            make_store(location, readonly=True, check=False) as store,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(check.wait)
            yield store
    except BaseExceptionGroup as group:
        # One error, as if there were no task group: the check's refusal first (what the
        # caller read of a damaged file is not to be trusted), else the caller's own.
        corrupt, rest = group.split(StoreCorrupt)
        first = (corrupt or rest or group).exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    finally:
        check.stop()  # leaving early (an error, Ctrl-C): not a page more


def with_store(
    db: str | Path | None, body: Callable[[Store], Awaitable[T]], *, check_beside: bool = False
) -> T:
    """``body`` run on the log opened read-only (``--db``, else ``$GLAM_DB``, else the
    default): an SQLite file or a PostgreSQL database. With ``check_beside`` (for a ``body``
    that prints nothing: its caller prints what it returns) the file's integrity check starts
    first, in a thread of its own, and runs beside ``body`` (which imports what it reads
    with), and a failed one is raised instead of ``body``'s result."""
    check = start_check(db) if check_beside else None

    async def go() -> T:
        async with read_beside(db, check) as store:
            return await body(store)

    try:
        return anyio.run(go)
    finally:
        if check is not None:
            check.stop()


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


async def views_now(
    store: ProjectionStore, read: Callable[[Views], object] = lambda views: views.functions
) -> Views:
    """The views at the end of the log, for a command that reads every function and a few
    other rows (``glam status``): from the engine's newest snapshot when it is near the end
    (its rows decoded only when read: a function's, the deployments it names), else as
    ``current_views`` (which decodes every stored row: seconds on a long log). ``read``
    reads what the caller will (default: every function): a snapshot row among them that
    does not decode (the file was altered) makes it read the stored views instead."""
    from projections.history import PARTIAL_TAIL, History
    from projections.runner import PROJECTION
    from projections.views import SnapshotUnreadable, snapshot_format

    last = await store.last_position()
    ours = [p for p, f in await store.snapshots(PROJECTION) if f == snapshot_format()]
    if not ours or last - max(ours) > PARTIAL_TAIL:
        return await current_views(store)
    views = await History(store).at(last)
    try:
        read(views)  # decoded now, the log still open: a row that does not decode is seen here
    except SnapshotUnreadable:
        return await current_views(store)  # derived data: the stored views say the same
    return views


async def current_views(store: ProjectionStore) -> Views:
    """The stored views, brought up to the end of the log in memory (the engine may be
    stopped or behind; nothing is written)."""
    from projections.runner import PROJECTION
    from projections.views import Views

    checkpoint, rows = await store.load_views(PROJECTION)
    views = Views.from_rows(checkpoint, rows)
    while batch := await store.read_all(views.position + 1, limit=5000):
        for record in batch:
            views.apply(record)
    return views
