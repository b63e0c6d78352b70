"""The PostgreSQL log without its driver: the tables, the checks made at open (the format,
the engine lock), the log's notes, and every read written as SQL.

``engine.store.postgres`` runs these through psycopg (``LogReads._fetch``, and its
connections for ``check_format``, ``take_engine_lock`` and ``write_notes``); keeping them here
keeps the adapter about connections, the writer and errors.

Layout: the tables of the SQLite log, column for column (``events``, ``view_rows``,
``checkpoints``, ``glam_meta``; the hash chain of ``engine.store.records``), plus ``glam_log``,
one row with the application name and the schema version (what the SQLite file keeps in its
``application_id`` and ``user_version`` pragmas). They live in the first schema of the
connection's ``search_path``, so one database can hold several logs
(``?options=-csearch_path%3Dteam_a``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import anyio

from engine.errors import StoreCorrupt, StoreError, StoreLocked, StoreTooNew
from engine.events import RecordedEvent
from engine.store.records import (
    COLUMNS,
    UNKEYED,
    Chain,
    ChainVerifier,
    StoredRow,
    format_time,
)
from engine.store.sql_reads import TYPE_INDEX, TYPE_INDEX_DDL, TYPES_BY_INDEX, SqlReads

SCHEMA_VERSION = 1
APPLICATION = "glam"
APPEND_LOCK = 0x676C616D_00000001  # "glam", 1: the advisory lock every append takes
# "glam", 2: the engine lock, a session advisory lock the server drops with the session
# (a killed engine's goes with it): held exclusive by the one engine of a log, shared by each
# of several shared engines (--shared), so neither kind starts beside the other.
ENGINE_LOCK = 0x676C616D_00000002
TAKE_ENGINE_LOCK = {
    "exclusive": "SELECT pg_try_advisory_lock(%s)",
    "shared": "SELECT pg_try_advisory_lock_shared(%s)",
}
# Whether the holders are shared engines: a shared lock can be had (and is let go at once).
PROBE_SHARED = (
    "SELECT CASE WHEN pg_try_advisory_lock_shared(%(k)s) "
    "THEN pg_advisory_unlock_shared(%(k)s) ELSE false END"
)


def engine_lock_refused(mode: str, where: str, *, held_shared: bool) -> StoreLocked:
    """Why the engine lock of mode ``mode`` could not be had on the log at ``where``."""
    if mode == "shared":
        return StoreLocked(
            f"an engine that is not shared (glam run without --shared) is running on {where}",
            hint="stop it first, or run every engine on this log with --shared",
        )
    if held_shared:
        return StoreLocked(
            f"shared engines (glam run --shared) are running on {where}",
            hint="run this one with --shared too, or stop them first",
        )
    return StoreLocked(
        f"another glam engine is running on {where}", hint="stop it first, or use another --db"
    )


async def take_engine_lock(conn: Any, mode: str, where: str) -> None:
    """Take the engine lock of ``mode`` on ``conn``'s session, or raise ``StoreLocked`` saying
    which kind of engine holds it."""
    row = await (await conn.execute(TAKE_ENGINE_LOCK[mode], (ENGINE_LOCK,))).fetchone()
    if not (row and row[0]):
        probe = await conn.execute(PROBE_SHARED, {"k": ENGINE_LOCK})
        held_shared = bool((await probe.fetchone() or (False,))[0])
        raise engine_lock_refused(mode, where, held_shared=held_shared)


CHANNEL = "glam_events"  # NOTIFY channel, one notification per append transaction

# Sessions that take the append lock give up waiting for it, and a transaction left open by a
# client that stopped (SIGSTOP, a dead network) is ended by the server, so its lock goes too:
# sooner than a waiter gives up, so one paused engine never makes the others' appends fail.
# An append's transaction is never idle for long: it only runs its statements.
WRITER_SETTINGS = (
    "SET lock_timeout = '15s'",
    "SET idle_in_transaction_session_timeout = '10s'",
)
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5"}
NO_LOG_HINT = (
    "start the engine with this --db to create the log, or point --db at the database "
    "(and search_path) that holds it"
)
GRANT_HINT = (
    "grant this user CREATE on the schema for the first start, and SELECT, INSERT, UPDATE, "
    "DELETE on glam's tables"
)

# The tables of the SQLite log, column for column, plus glam_log (what the SQLite file keeps in
# its application_id and user_version pragmas). Data and metadata stay text, not jsonb: the
# hash covers the exact stored characters, and jsonb would reorder keys and drop whitespace.
SCHEMA = f"""
CREATE TABLE glam_log (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    application    text    NOT NULL,
    schema_version integer NOT NULL
);
CREATE TABLE events (
    position       bigint  PRIMARY KEY,
    event_id       text    NOT NULL UNIQUE,
    stream         text    NOT NULL,
    version        bigint  NOT NULL,
    type           text    NOT NULL,
    schema_version integer NOT NULL,
    data           text    NOT NULL,
    metadata       text    NOT NULL,
    recorded_at    text    NOT NULL,
    prev_hash      text    NOT NULL,
    hash           text    NOT NULL,
    UNIQUE (stream, version)
);
CREATE INDEX events_by_type ON events (type, position);
{TYPE_INDEX_DDL};
CREATE INDEX events_by_time ON events (recorded_at);
CREATE TABLE view_rows (
    projection text NOT NULL,
    view       text NOT NULL,
    key        text NOT NULL,
    data       text NOT NULL,
    PRIMARY KEY (projection, view, key)
);
CREATE TABLE checkpoints (
    projection text   PRIMARY KEY,
    position   bigint NOT NULL
);
"""
# The log's notes about its chain (engine.store.integrity), added to a log of an earlier glam.
NOTES = "CREATE TABLE IF NOT EXISTS glam_meta (key text PRIMARY KEY, value text NOT NULL)"
NOTE_UPSERT = (
    "INSERT INTO glam_meta (key, value) VALUES (%s, %s) "
    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
)


async def check_format(conn: Any, where: str, *, may_create: bool) -> None:
    """Create the log's tables in a database without them (``may_create``; else
    ``StoreError``), add the notes table a log of an earlier glam lacks, and refuse a database
    whose ``events`` or ``glam_log`` table is not glam's (``StoreCorrupt``) or that a newer
    glam wrote (``StoreTooNew``). psycopg's errors pass through to the adapter."""
    async with conn.transaction():
        if may_create:  # two engines starting at once create the tables once
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
        cur = await conn.execute(
            "SELECT to_regclass('glam_log') IS NOT NULL, to_regclass('events') IS NOT NULL"
        )
        has_log, has_events = await cur.fetchone() or (False, False)
        if not has_log:
            if has_events:
                raise StoreCorrupt(
                    f"{where} has an events table but is not a glam event log",
                    hint="give glam a database, or a search_path schema, of its own",
                )
            if not may_create:
                raise StoreError(f"no event log at {where}", hint=NO_LOG_HINT)
            await conn.execute(SCHEMA)
            await conn.execute(
                "INSERT INTO glam_log (application, schema_version) VALUES (%s, %s)",
                (APPLICATION, SCHEMA_VERSION),
            )
        if may_create:  # a log of an earlier glam gets its notes table
            cur = await conn.execute("SELECT to_regclass('glam_meta') IS NULL")
            if (await cur.fetchone() or (False,))[0]:
                await conn.execute(NOTES)
        cur = await conn.execute("SELECT application, schema_version FROM glam_log")
        row = await cur.fetchone()
    if row is None or row[0] != APPLICATION:
        raise StoreCorrupt(
            f"{where} holds a glam_log table that is not glam's",
            hint="give glam a database, or a search_path schema, of its own",
        )
    if row[1] > SCHEMA_VERSION:
        raise StoreTooNew(
            f"{where} was written by a newer glam (database schema {row[1]}, this "
            f"glam reads up to {SCHEMA_VERSION})",
            hint="upgrade glam; this version must not write to it",
        )


# The type index of ``events`` (not another schema's on the search path), and whether it is
# valid: a build that did not finish leaves an index PostgreSQL does not use.
TYPE_INDEX_STATE = (
    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE i.indrelid = 'events'::regclass AND c.relname = %s"
)


# Built by hand on a log of an earlier glam (the engine does not: a build at its start would
# wait for every older transaction on the database, a backup's included, and two engines
# starting at once deadlock on it).
TYPE_INDEX_BUILD = TYPE_INDEX_DDL.replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1)


async def type_index_missing(conn: Any) -> str | None:
    """What to run for a log without a usable type index (None: it has one). Without it the
    checks of the log's event types group every event, as they did before the index."""
    cur = await conn.execute(TYPE_INDEX_STATE, (TYPE_INDEX,))
    found = await cur.fetchone()
    if found is not None and found[0]:
        return None
    drop = "" if found is None else f"DROP INDEX CONCURRENTLY {TYPE_INDEX}; "
    return f"{drop}{TYPE_INDEX_BUILD}"


async def write_notes(conn: Any, notes: Mapping[str, str | None]) -> None:
    """Write (None: remove) the log's notes, inside the caller's transaction."""
    for key, value in notes.items():
        if value is None:
            await conn.execute("DELETE FROM glam_meta WHERE key = %s", (key,))
        else:
            await conn.execute(NOTE_UPSERT, (key, value))


# S608 is silenced below only where the interpolated text is COLUMNS.
_RANGE = f"SELECT {COLUMNS} FROM events WHERE position >= %s ORDER BY position LIMIT %s"  # noqa: S608
_STREAM = f"SELECT {COLUMNS} FROM events WHERE stream = %s AND version >= %s ORDER BY version"  # noqa: S608
_SELECTED = (
    f"SELECT {COLUMNS} FROM events "  # noqa: S608
    "WHERE position > %s AND (type = ANY(%s) OR stream = ANY(%s)) ORDER BY position"
)


def rows_to_import(
    batch: Sequence[StoredRow],
    last_position: int,
    last_hash: str,
    stored: dict[int, str],
    chain: Chain = UNKEYED,
) -> list[StoredRow]:
    """The rows of ``batch`` to write after the log's last row (``last_position``,
    ``last_hash``), given the hashes ``stored`` at the batch's positions the log already has.
    Rows already stored unchanged are left out (a repeated import); a row that differs from
    the stored one, or that does not continue the chain, raises ``StoreCorrupt``."""
    hint = "import an unaltered export that continues this log"
    old = [row for row in batch if row.position <= last_position]
    for row in old:
        if stored.get(row.position) != row.hash:
            raise StoreCorrupt(
                f"row {row.position} cannot be imported: the log already holds another event there",
                hint=hint,
            )
    verifier = ChainVerifier(chain, last_position, last_hash)
    fresh = list(batch[len(old) :])
    for row in fresh:
        if not verifier.feed(row):
            raise StoreCorrupt(
                f"row {verifier.first_bad} cannot be imported: {verifier.reason}", hint=hint
            )
    return fresh


class LogReads(SqlReads):
    """The read side of the ``EventStore`` port (and audit reads) as SQL over ``_fetch``.

    Subclasses provide ``_fetch``, ``_closed``, ``_appended`` (an event set after every
    append this store learns of, replaced after each) and ``_poll_interval``.
    """

    _closed: bool
    _appended: anyio.Event
    _poll_interval: float

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def _scalar(self, sql: str, params: Sequence[Any] = ()) -> int:
        rows = await self._fetch(sql, params)
        return int(rows[0][0] or 0) if rows else 0

    async def _first_of_type(self, type_name: str) -> int:
        return await self._scalar("SELECT min(position) FROM events WHERE type = %s", (type_name,))

    async def _types_by_index(self) -> str | None:
        found = await self._fetch(TYPE_INDEX_STATE, (TYPE_INDEX,))
        return TYPES_BY_INDEX if found and found[0][0] else None

    async def read_rows(self, from_position: int = 1, limit: int | None = None) -> list[StoredRow]:
        """Raw stored rows, undecoded (audit, verify, export)."""
        return [StoredRow(*values) for values in await self._fetch(_RANGE, (from_position, limit))]

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        return await self._decoded(await self._fetch(_RANGE, (from_position, limit)))

    async def read_selected(
        self, types: Collection[str], streams: Collection[str] = (), *, after: int = 0
    ) -> list[RecordedEvent]:
        """Every event whose type is in ``types`` or whose stream is in ``streams``, in log
        order, for a reader that folds only some events. The rows left out are not decoded,
        but their types and schema versions are checked: a log this glam cannot read fails
        here exactly as ``read_all`` would. ``after``: only events after that position."""
        await self._check_log_types(
            "SELECT type, max(schema_version), min(position), max(position) FROM events "
            "WHERE position > %s GROUP BY type"
        )
        selected = await self._fetch(_SELECTED, (after, sorted(types), sorted(streams)))
        return await self._decoded(selected)

    async def read_stream(self, stream: str, from_version: int = 1) -> list[RecordedEvent]:
        return await self._decoded(await self._fetch(_STREAM, (stream, from_version)))

    async def last_position(self) -> int:
        return await self._scalar("SELECT max(position) FROM events")

    async def stream_version(self, stream: str) -> int:
        return await self._scalar("SELECT max(version) FROM events WHERE stream = %s", (stream,))

    async def position_at(self, moment: datetime) -> int:
        """The last position recorded at or before ``moment`` (0 if none)."""
        return await self._scalar(
            "SELECT max(position) FROM events WHERE recorded_at <= %s", (format_time(moment),)
        )

    async def _read_notes(self) -> dict[str, str]:
        if not await self._scalar("SELECT (to_regclass('glam_meta') IS NOT NULL)::int"):
            return {}  # a log of an earlier glam, opened read-only
        rows = await self._fetch("SELECT key, value FROM glam_meta")
        return {str(key): str(value) for key, value in rows}

    async def describe(self) -> dict[str, Any]:
        """What ``glam db info`` shows: server version, schema version, size, checkpoints."""
        server, schema, size = (
            await self._fetch(
                "SELECT current_setting('server_version'), "
                "(SELECT schema_version FROM glam_log), "
                "pg_total_relation_size('events') + pg_total_relation_size('view_rows') "
                "+ pg_total_relation_size('checkpoints')"
            )
        )[0]
        checkpoints = await self._fetch("SELECT projection, position FROM checkpoints")
        return {
            "server_version": server,
            "schema_version": int(schema),
            "size_bytes": int(size),
            "checkpoints": {name: int(position) for name, position in checkpoints},
        }
