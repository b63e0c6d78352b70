"""The SQLite log without its driver: the tables, and every read written as SQL.

``engine.store.sqlite`` runs these through aiosqlite (``SqliteReads._fetch``); keeping them
here keeps the adapter about connections, the writer and errors. See that module for the
layout.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

import anyio

from engine.events import RecordedEvent
from engine.store.records import (
    COLUMNS,
    StoredRow,
    format_time,
)
from engine.store.sql_reads import SqlReads

SCHEMA_VERSION = 1
APPLICATION_ID = 0x676C616D  # "glam"
# S608 is silenced below only where the interpolated text is COLUMNS or "?" placeholders.

NOTES = "CREATE TABLE IF NOT EXISTS glam_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT"

SCHEMA = f"""
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    event_id       TEXT    NOT NULL UNIQUE,
    stream         TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    recorded_at    TEXT    NOT NULL,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL,
    UNIQUE (stream, version)
) STRICT;
CREATE INDEX events_by_type ON events (type, position);
CREATE INDEX events_by_time ON events (recorded_at);
CREATE TABLE view_rows (
    projection TEXT NOT NULL,
    view       TEXT NOT NULL,
    key        TEXT NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (projection, view, key)
) STRICT, WITHOUT ROWID;
CREATE TABLE checkpoints (
    projection TEXT PRIMARY KEY,
    position   INTEGER NOT NULL
) STRICT;
{NOTES};
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
"""


class SqliteReads(SqlReads):
    """The read side of the ``EventStore`` and ``ViewStore`` ports (and audit reads) as SQL
    over ``_fetch``. Subclasses provide ``_fetch``, ``_closed``, ``_appended`` (an event set
    after every append this store learns of, replaced after each) and ``_poll_interval``."""

    _closed: bool
    _appended: anyio.Event
    _poll_interval: float

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> Iterable[Sequence[Any]]:
        raise NotImplementedError

    async def _scalar_read(self, sql: str, params: Sequence[Any] = ()) -> int:
        rows = list(await self._fetch(sql, params))
        return int(rows[0][0] or 0) if rows else 0

    async def read_rows(self, from_position: int = 1, limit: int | None = None) -> list[StoredRow]:
        """Raw stored rows, undecoded and unverified (audit, verify, export)."""
        return [
            StoredRow(*values)
            for values in await self._fetch(
                f"SELECT {COLUMNS} FROM events WHERE position >= ? "  # noqa: S608
                "ORDER BY position LIMIT ?",
                (from_position, -1 if limit is None else limit),
            )
        ]

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        rows = await self._fetch(
            f"SELECT {COLUMNS} FROM events WHERE position >= ? "  # noqa: S608
            "ORDER BY position LIMIT ?",
            (from_position, -1 if limit is None else limit),
        )
        return await self._decoded(list(rows))

    async def read_selected(
        self, types: Collection[str], streams: Collection[str] = ()
    ) -> list[RecordedEvent]:
        """Every event whose type is in ``types`` or whose stream is in ``streams``, in log
        order, for a reader that folds only some events (``glam plan`` needs four types of the
        function streams, not every step of every deployment). The rows left out are not
        decoded, but their types and schema versions are checked: a log this glam cannot read
        fails here exactly as ``read_all`` would."""
        self._check_types(
            await self._fetch(
                "SELECT type, max(schema_version), min(position) FROM events GROUP BY type"
            )
        )
        type_list, stream_list = sorted(types), sorted(streams)
        type_marks = ",".join("?" * len(type_list))
        stream_marks = ",".join("?" * len(stream_list))
        rows = await self._fetch(
            f"SELECT {COLUMNS} FROM events "  # noqa: S608 - only COLUMNS and "?" marks
            f"WHERE type IN ({type_marks}) OR stream IN ({stream_marks}) ORDER BY position",
            (*type_list, *stream_list),
        )
        return await self._decoded(list(rows))

    async def read_stream(self, stream: str, from_version: int = 1) -> list[RecordedEvent]:
        rows = await self._fetch(
            f"SELECT {COLUMNS} FROM events WHERE stream = ? AND version >= ? "  # noqa: S608
            "ORDER BY version",
            (stream, from_version),
        )
        return await self._decoded(list(rows))

    async def last_position(self) -> int:
        return await self._scalar_read("SELECT max(position) FROM events")

    async def stream_version(self, stream: str) -> int:
        return await self._scalar_read(
            "SELECT max(version) FROM events WHERE stream = ?", (stream,)
        )

    async def position_at(self, moment: datetime) -> int:
        """The last position recorded at or before ``moment`` (0 if none)."""
        return await self._scalar_read(
            "SELECT max(position) FROM events WHERE recorded_at <= ?", (format_time(moment),)
        )

    async def load_views(self, projection: str) -> tuple[int, dict[tuple[str, str], str]]:
        """The projection's checkpoint and its rows, read in one snapshot."""
        # ONE statement, so one implicit read transaction: rows and checkpoint come from the
        # same commit, and a cancelled caller cannot leave the shared reader connection inside
        # a transaction (aiosqlite runs the statement to its end in its thread regardless).
        # An explicit BEGIN ... COMMIT would: its COMMIT never runs in a cancelled scope, and
        # every later read would see that old snapshot.
        rows = await self._fetch(
            "SELECT NULL, NULL, NULL, position FROM checkpoints WHERE projection = ? "
            "UNION ALL SELECT view, key, data, NULL FROM view_rows WHERE projection = ?",
            (projection, projection),
        )
        checkpoint = 0
        found: dict[tuple[str, str], str] = {}
        for view, key, data, position in rows:
            if view is None:
                checkpoint = int(position)
            else:
                found[(view, key)] = data
        return checkpoint, found
