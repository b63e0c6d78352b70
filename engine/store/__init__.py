"""The event log: the SQLite store (``engine.store.sqlite``), the PostgreSQL store
(``engine.store.postgres``), the in-memory store (``engine.store.memory``), the shared row
format and hash chain (``engine.store.records``), the chain key, verified head and witness
(``engine.store.integrity``), the engine lock (``engine.store.lock``), and moving a log between
backends (``engine.store.copy``).

``open_store`` picks the store a location names: a ``postgresql://`` (or ``postgres://``) URL,
given as a string, is a PostgreSQL log; anything else is the path of an SQLite file. The
backends are imported only when opened, so a command that never touches PostgreSQL never loads
its driver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import anyio

if TYPE_CHECKING:
    from engine.ports import ProjectionStore
    from engine.store.integrity import Integrity
    from engine.store.postgres import PostgresEventStore
    from engine.store.sqlite import SqliteEventStore

    Store: TypeAlias = SqliteEventStore | PostgresEventStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: str | Path) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than an SQLite file (a
    ``Path`` never does: it would have folded the URL's ``//``)."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def describe_target(location: str | Path) -> str:
    """The log's location for messages: the path, or the URL without its password."""
    if is_postgres_url(location):
        from engine.store.postgres import describe_url

        return describe_url(str(location))
    return str(location)


@asynccontextmanager
async def open_store(
    location: str | Path,
    *,
    exclusive: bool = False,
    readonly: bool = False,
    integrity: Integrity | None = None,
    password: str | None = None,
    shared: bool = False,
) -> AsyncIterator[ProjectionStore]:
    """The store at ``location``: ``async with open_store(db) as store:``.

    A path is an SQLite file (created on first use), a ``postgresql://`` URL a PostgreSQL
    database (its tables created on first use). ``exclusive`` holds the engine lock for as
    long as the store is open, so a second engine on the same log raises ``StoreLocked``
    before it opens it: a lock on the SQLite file itself, a session advisory lock on the
    PostgreSQL server; the store it holds is the engine's, which verifies the log's hash chain
    from its verified head to the end before this returns (``engine.store.integrity``).
    ``readonly`` opens an existing log for queries. ``integrity`` is the chain key and the
    witness (default: from ``$GLAM_CHAIN_KEY_FILE`` and ``$GLAM_WITNESS``). ``password`` is
    a PostgreSQL log's, given apart from the URL so that no message can show it. ``shared``
    (PostgreSQL): one of several shared engines, holding the engine lock shared with each
    other, so that neither a lone engine starts beside them nor they beside a lone one.
    """
    if is_postgres_url(location):
        from engine.store.postgres import PostgresEventStore

        async with PostgresEventStore(
            str(location),
            readonly=readonly,
            exclusive=exclusive,
            integrity=integrity,
            password=password,
            shared=shared,
        ) as pg:
            yield pg
        return
    # Imported here: only a caller that opens a store pays for its driver.
    from engine.store.lock import EngineLock
    from engine.store.sqlite import SqliteEventStore

    lock = EngineLock(location) if exclusive else None
    if lock is not None:
        await anyio.to_thread.run_sync(lock.acquire)
    try:
        async with SqliteEventStore(
            location, readonly=readonly, integrity=integrity, engine=exclusive
        ) as store:
            yield store
    finally:
        if lock is not None:
            lock.release()


def make_store(
    location: str | Path,
    *,
    readonly: bool = False,
    now: Callable[[], datetime] | None = None,
    max_batch: int | None = None,
    poll_interval: float | None = None,
    check: bool = True,
    integrity: Integrity | None = None,
) -> Store:
    """The concrete store for ``location``, not yet open (``async with make_store(db)``), for
    what needs more than the ports: audit reads, imports, copies, benchmarks.

    ``check`` is SQLite's integrity check at open; a PostgreSQL server checks its own pages.
    Options left None keep each backend's default (SQLite polls other processes' appends
    every 0.5 s; PostgreSQL is woken by NOTIFY and polls only as a fallback); ``integrity``
    left None is read from the environment.
    """
    options: dict[str, Any] = {"readonly": readonly, "integrity": integrity}
    if now is not None:
        options["now"] = now
    if max_batch is not None:
        options["max_batch"] = max_batch
    if poll_interval is not None:
        options["poll_interval"] = poll_interval
    if is_postgres_url(location):
        from engine.store.postgres import PostgresEventStore

        return PostgresEventStore(str(location), **options)
    from engine.store.sqlite import SqliteEventStore

    return SqliteEventStore(location, check=check, **options)
