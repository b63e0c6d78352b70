"""The SQLite log without its driver: the tables, the format check made at open, the log's
notes, and every read written as SQL.

``engine.store.sqlite`` runs these through aiosqlite (``SqliteReads._fetch``, and its
connections for ``check_format`` and ``write_notes``); keeping them here keeps the adapter
about connections, the writer and errors. See that module for the layout.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from engine.errors import StoreCorrupt, StoreError, StoreTooNew
from engine.events import RecordedEvent
from engine.store.file_check import check_pragma, refuse_problems
from engine.store.records import (
    COLUMNS,
    StoredRow,
    format_time,
)
from engine.store.sql_reads import TYPE_INDEX, TYPE_INDEX_DDL, TYPES_BY_INDEX, SqlReads

SCHEMA_VERSION = 1
APPLICATION_ID = 0x676C616D  # "glam"
NO_LOG_HINT = (
    "start the engine with `glam run --repo URL` to create it, try `glam demo`, "
    "or point --db / $GLAM_DB at an existing log"
)
# S608 is silenced below only where the interpolated text is COLUMNS or "?" placeholders.

NOTES = "CREATE TABLE IF NOT EXISTS glam_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT"
NOTE_UPSERT = "INSERT OR REPLACE INTO glam_meta (key, value) VALUES (?, ?)"

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
{TYPE_INDEX_DDL};
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


async def check_format(
    conn: Any, path: Path, *, where: Path, may_create: bool, check: bool
) -> None:
    """Create the log's tables in an empty file (``may_create``; else ``StoreError``), refuse
    a file that is not a glam log (``StoreCorrupt``) or was written by a newer glam
    (``StoreTooNew``), run SQLite's integrity check (``check``; the quick one when the file at
    ``path`` is large) and add the notes table a log of an earlier glam lacks. ``where`` names
    the file in messages, as given; sqlite3's errors pass through to the adapter."""
    app_id = await _scalar(conn, "PRAGMA application_id")
    user_version = await _scalar(conn, "PRAGMA user_version")
    tables = await _scalar(conn, "SELECT count(*) FROM sqlite_master")
    if app_id == 0 and user_version == 0 and tables == 0:
        if not may_create:
            raise StoreError(f"{where} is an empty file, not an event log", hint=NO_LOG_HINT)
        await conn.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nCOMMIT;")
        return
    if app_id != APPLICATION_ID:
        raise StoreCorrupt(
            f"{where} is an SQLite file but not a glam event log",
            hint="point --db / $GLAM_DB at a glam database",
        )
    if user_version > SCHEMA_VERSION:
        raise StoreTooNew(
            f"{where} was written by a newer glam (database schema "
            f"{user_version}, this glam reads up to {SCHEMA_VERSION})",
            hint="upgrade glam; this version must not write to it",
        )
    if check:
        pragma = check_pragma((await anyio.to_thread.run_sync(path.stat)).st_size)
        refuse_problems(where, pragma, await conn.execute_fetchall(f"PRAGMA {pragma}"))
    if may_create:  # a log of an earlier glam gets its notes table and its type index
        await conn.executescript(f"BEGIN IMMEDIATE;\n{NOTES};\n{TYPE_INDEX_DDL};\nCOMMIT;")


async def write_notes(conn: Any, notes: Mapping[str, str | None]) -> None:
    """Write (None: remove) the log's notes, inside the caller's transaction."""
    for key, value in notes.items():
        if value is None:
            await conn.execute("DELETE FROM glam_meta WHERE key = ?", (key,))
        else:
            await conn.execute(NOTE_UPSERT, (key, value))


async def _scalar(conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
    async with conn.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    return None if row is None else row[0]


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

    async def _first_of_type(self, type_name: str) -> int:
        return await self._scalar_read(
            "SELECT min(position) FROM events WHERE type = ?", (type_name,)
        )

    async def _types_by_index(self) -> str | None:
        found = await self._scalar_read(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?", (TYPE_INDEX,)
        )
        return TYPES_BY_INDEX if found else None

    async def _read_notes(self) -> dict[str, str]:
        if not await self._scalar_read(
            "SELECT count(*) FROM sqlite_master WHERE name = 'glam_meta'"
        ):
            return {}  # a log of an earlier glam, opened read-only
        stored = await self._fetch("SELECT key, value FROM glam_meta")
        return {str(key): str(value) for key, value in stored}

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
        self, types: Collection[str], streams: Collection[str] = (), *, after: int = 0
    ) -> list[RecordedEvent]:
        """Every event whose type is in ``types`` or whose stream is in ``streams``, in log
        order, for a reader that folds only some events (``glam plan`` needs four types of the
        function streams, not every step of every deployment). The rows left out are not
        decoded, but their types and schema versions are checked: a log this glam cannot read
        fails here exactly as ``read_all`` would. ``after``: only events after that position."""
        await self._check_log_types(
            "SELECT type, max(schema_version), min(position), max(position) FROM events "
            "WHERE position > ? GROUP BY type"
        )
        type_list, stream_list = sorted(types), sorted(streams)
        type_marks = ",".join("?" * len(type_list))
        stream_marks = ",".join("?" * len(stream_list))
        rows = await self._fetch(
            f"SELECT {COLUMNS} FROM events "  # noqa: S608 - only COLUMNS and "?" marks
            f"WHERE position > ? AND (type IN ({type_marks}) OR stream IN ({stream_marks})) "
            "ORDER BY position",
            (after, *type_list, *stream_list),
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

    async def load_rows(
        self, projection: str, view: str, keys: Collection[str] | None = None
    ) -> tuple[int, dict[str, str]]:
        """The projection's checkpoint and the rows of one view (only those of ``keys``, when
        given), by key. Each statement reads one snapshot, as ``load_views`` does; many keys
        take one statement per 500."""
        wanted = sorted(keys) if keys is not None else None
        parts: list[list[str] | None] = (
            [None]
            if wanted is None
            else [wanted[i : i + 500] for i in range(0, max(len(wanted), 1), 500)]
        )
        checkpoint = 0
        found: dict[str, str] = {}
        for part in parts:
            marks = "" if part is None else f" AND key IN ({','.join('?' * len(part))})"
            rows = await self._fetch(
                "SELECT NULL, NULL, position FROM checkpoints WHERE projection = ? "  # noqa: S608 - "?" marks only
                "UNION ALL SELECT key, data, NULL FROM view_rows "
                f"WHERE projection = ? AND view = ?{marks}",
                (projection, projection, view, *(part or ())),
            )
            for key, data, position in rows:
                if key is None:
                    checkpoint = int(position)
                else:
                    found[key] = data
        return checkpoint, found

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
