"""The event log: the SQLite store (``engine.store.sqlite``), the in-memory store
(``engine.store.memory``), the shared row format and hash chain (``engine.store.records``) and
the engine lock (``engine.store.lock``). ``open_store`` picks the store a location names."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path

from engine.ports import ProjectionStore


def open_store(location: str | Path) -> AbstractAsyncContextManager[ProjectionStore]:
    """The writable store at ``location``, to use as ``async with open_store(db) as store:``.

    A path is an SQLite file (created on first use). Another kind of store is one more
    branch here, picked by its URL scheme.
    """
    # Imported here: only a caller that opens a store pays for its driver.
    from engine.store.sqlite import SqliteEventStore

    return SqliteEventStore(location)
