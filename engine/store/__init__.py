"""The event log: the SQLite store (``engine.store.sqlite``), the in-memory store
(``engine.store.memory``), the shared row format and hash chain (``engine.store.records``) and
the engine lock (``engine.store.lock``). ``open_store`` picks the store a location names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from engine.ports import ProjectionStore
from engine.store.lock import EngineLock


@asynccontextmanager
async def open_store(
    location: str | Path, *, exclusive: bool = False
) -> AsyncIterator[ProjectionStore]:
    """The writable store at ``location``: ``async with open_store(db) as store:``.

    A path is an SQLite file (created on first use); another kind of store is one more branch
    here, picked by its URL scheme. ``exclusive`` holds the engine lock for as long as the
    store is open: a second engine on the same log raises ``StoreLocked`` before it opens it.
    """
    # Imported here: only a caller that opens a store pays for its driver.
    from engine.store.sqlite import SqliteEventStore

    lock = EngineLock(location) if exclusive else None
    if lock is not None:
        lock.acquire()
    try:
        async with SqliteEventStore(location) as store:
            yield store
    finally:
        if lock is not None:
            lock.release()
