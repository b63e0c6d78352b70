"""``SqliteEventStore``: the event log in one SQLite file, through aiosqlite.

The only module that imports aiosqlite. sqlite3 errors are turned into ``StoreError``s here.

Layout (file schema version ``SCHEMA_VERSION`` in ``PRAGMA user_version``, glam's
``PRAGMA application_id`` so another SQLite file is never mistaken for a log):

- ``events``: one row per event, ``position`` the primary key (global order), ``event_id``
  unique (idempotent retries), ``UNIQUE(stream, version)`` (optimistic concurrency), and the
  hash chain (``prev_hash``, ``hash``; see ``engine.store.records``). Never updated or deleted.
- ``view_rows`` and ``checkpoints``: projection rows and how far they have folded, written
  together in one transaction (``save_views``).

Writes go through ONE writer task: ``append`` queues a request and waits; the writer takes
everything queued, plans it against the stored state and commits it in one transaction (group
commit), so a thousand concurrent appends cost a handful of fsyncs, not a thousand. Reads use a
second connection, so they never see a transaction in progress. WAL lets them run while the
writer commits; ``synchronous=FULL`` makes an acknowledged append survive power loss.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite  # noqa: TID251 - this is the SQLite adapter
import anyio
from anyio.abc import TaskGroup

from engine.errors import StoreCorrupt, StoreError, StoreTooNew
from engine.events import NewEvent, RecordedEvent
from engine.events.catalog import check_readable
from engine.ports import ANY_VERSION, ViewSnapshot
from engine.store.records import (
    COLUMNS,
    GENESIS_HASH,
    AppendRequest,
    ChainVerifier,
    StoredRow,
    decode_values,
    format_time,
    gc_paused,
    plan_batch,
    to_recorded,
)
from engine.store.sqlite_snapshots import (
    SqliteSnapshots,
    create_snapshot_tables,
    drop_snapshots,
    write_snapshot,
)

SCHEMA_VERSION = 1
APPLICATION_ID = 0x676C616D  # "glam"
BUSY_TIMEOUT_MS = 10_000
# Above this size the full integrity check at open takes too long; quick_check still reads
# every page and catches torn or truncated files.
FULL_CHECK_MAX_BYTES = 256 * 1024 * 1024
MAX_BATCH = 2_000
_SQL_CHUNK = 500  # bound parameters per IN (...) query
# S608 is silenced below only where the interpolated text is COLUMNS or "?" placeholders.

_SCHEMA = f"""
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
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
"""

_NO_LOG_HINT = (
    "start the engine with `glam run --repo URL` to create it, try `glam demo`, "
    "or point --db / $GLAM_DB at an existing log"
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _row(values: Sequence[Any]) -> StoredRow:
    return StoredRow(*values)


@dataclass(slots=True)
class _Pending:
    """One queued write and the slot its result comes back in."""

    request: AppendRequest | None = None
    job: Callable[[aiosqlite.Connection], Any] | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None
    error: BaseException | None = None


class SqliteEventStore(SqliteSnapshots):
    """The ``EventStore`` and ``ViewStore`` ports on one SQLite file.

    Use it as an async context manager, which starts and stops the writer task::

        async with SqliteEventStore(path) as store:
            await store.append("fn:1:eu-west-1:orders", [new_event], expected_version=0)

    ``readonly=True`` opens the file with ``mode=ro`` and ``query_only`` (query commands): it
    must exist, and appends raise ``StoreError``. Opening refuses a file that fails SQLite's
    integrity check (``StoreCorrupt``), is not a glam log (``StoreCorrupt``) or was written by
    a newer glam (``StoreTooNew``); it never tries to repair anything.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        now: Callable[[], datetime] = _utc_now,
        max_batch: int = MAX_BATCH,
        poll_interval: float = 0.5,
        check: bool = True,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._now = now
        self._max_batch = max(1, max_batch)
        self._poll_interval = poll_interval
        self._check = check
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: deque[_Pending] = deque()
        self._wake = anyio.Event()
        self._appended = anyio.Event()
        self._closing = False
        self._closed = False
        self._writer_done = anyio.Event()
        self._task_group: TaskGroup | None = None
        #: transactions committed by the writer (group commit makes it far below appends)
        self.commits = 0

    @classmethod
    def open(cls, path: str | Path, **options: Any) -> SqliteEventStore:
        """Same as the constructor; reads well as ``async with SqliteEventStore.open(p):``."""
        return cls(path, **options)

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> SqliteEventStore:
        try:
            await self._connect()
        except BaseException:
            await self._close_connections()
            raise
        if not self.readonly:
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
            self._task_group.start_soon(self._write_loop, name="glam event store writer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        task_group, self._task_group = self._task_group, None
        if task_group is not None:
            return await task_group.__aexit__(exc_type, exc, tb)
        return None

    async def aclose(self) -> None:
        """Finish every queued write, stop the writer, close the file."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        with anyio.CancelScope(shield=True):
            if self._task_group is not None:
                await self._writer_done.wait()  # it drains what was queued before closing
            self._closed = True
            self._notify()
            await self._close_connections()

    async def _close_connections(self) -> None:
        for conn in (self._writer, self._reader):
            if conn is not None:
                # Closing a broken file must not hide the error that made us close it.
                with contextlib.suppress(sqlite3.Error):
                    await conn.close()
        self._writer = self._reader = None

    async def _connect(self) -> None:
        try:
            if self.readonly:
                # File system calls in a worker thread: they can block (a network disk).
                if not await anyio.to_thread.run_sync(self.path.is_file):
                    raise StoreError(f"no event log at {self.path}", hint=_NO_LOG_HINT)
                uri = self.path.absolute().as_uri() + "?mode=ro"
                self._reader = await aiosqlite.connect(uri, uri=True, isolation_level=None)
                await self._reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                await self._check_format(self._reader, may_create=False)
                await self._reader.execute("PRAGMA query_only = 1")
                return
            await anyio.to_thread.run_sync(
                functools.partial(self.path.parent.mkdir, parents=True, exist_ok=True)
            )
            self._writer = await aiosqlite.connect(self.path, isolation_level=None)
            await self._writer.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await self._check_format(self._writer, may_create=True)
            await self._writer.execute("PRAGMA journal_mode = WAL")
            await self._writer.execute("PRAGMA synchronous = FULL")
            await create_snapshot_tables(self._writer)  # a log from before snapshots lacks them
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            await self._reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await self._reader.execute("PRAGMA query_only = 1")
        except sqlite3.Error as exc:
            raise self._corrupt(exc) from exc

    def _corrupt(self, exc: sqlite3.Error) -> StoreError:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            return StoreError(
                f"{self.path} is busy: {exc}",
                hint="retry when the other writer is done",
                retryable=True,
            )
        return StoreCorrupt(
            f"{self.path} is not a readable glam event log ({exc})",
            hint="restore it from a backup; glam never repairs a damaged log",
        )

    async def _check_format(self, conn: aiosqlite.Connection, *, may_create: bool) -> None:
        app_id = await self._scalar(conn, "PRAGMA application_id")
        user_version = await self._scalar(conn, "PRAGMA user_version")
        tables = await self._scalar(conn, "SELECT count(*) FROM sqlite_master")
        if app_id == 0 and user_version == 0 and tables == 0:
            if not may_create:
                raise StoreError(
                    f"{self.path} is an empty file, not an event log", hint=_NO_LOG_HINT
                )
            await conn.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nCOMMIT;")
            return
        if app_id != APPLICATION_ID:
            raise StoreCorrupt(
                f"{self.path} is an SQLite file but not a glam event log",
                hint="point --db / $GLAM_DB at a glam database",
            )
        if user_version > SCHEMA_VERSION:
            raise StoreTooNew(
                f"{self.path} was written by a newer glam (database schema {user_version}, "
                f"this glam reads up to {SCHEMA_VERSION})",
                hint="upgrade glam; this version must not write to it",
            )
        if self._check:
            size = (await anyio.to_thread.run_sync(self.path.stat)).st_size
            pragma = "integrity_check" if size <= FULL_CHECK_MAX_BYTES else "quick_check"
            rows = await conn.execute_fetchall(f"PRAGMA {pragma}")
            problems = [str(r[0]) for r in rows if r[0] != "ok"]
            if problems:
                raise StoreCorrupt(
                    f"{self.path} failed SQLite's {pragma}: {problems[0]}",
                    hint="restore it from a backup; glam never repairs a damaged log",
                )

    @staticmethod
    async def _scalar(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
        async with conn.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        return None if row is None else row[0]

    # -- appends: one writer, group commit ---------------------------------------------------

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> list[RecordedEvent]:
        """Append atomically (see ``engine.ports.EventStore``). Once queued the append is
        committed even if the caller is cancelled while waiting, as with any database."""
        rows: list[StoredRow] = await self._submit(
            _Pending(request=AppendRequest(stream, list(events), expected_version))
        )
        return [to_recorded(row) for row in rows]

    async def _submit(self, pending: _Pending) -> Any:
        if self.readonly:
            raise StoreError(
                "this event store is open read-only", hint="query commands never write"
            )
        if self._closing or self._task_group is None:
            raise StoreError(
                "the event store is not open",
                hint="use it inside `async with SqliteEventStore(path) as store:`",
            )
        self._queue.append(pending)
        self._wake.set()
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    async def _write_loop(self) -> None:
        try:
            await self._write_until_closed()
        finally:
            # Cancelled from outside: whoever still waits must hear that nothing was written.
            while self._queue:
                pending = self._queue.popleft()
                pending.error = StoreError(
                    "the event store closed before this write", hint="retry after reopening"
                )
                pending.done.set()
            self._writer_done.set()

    async def _write_until_closed(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._queue:
                batch: list[_Pending] = []
                if self._queue[0].job is not None:
                    batch.append(self._queue.popleft())
                else:
                    while (
                        self._queue and self._queue[0].job is None and len(batch) < self._max_batch
                    ):
                        batch.append(self._queue.popleft())
                # A transaction half done must finish (commit or roll back), and every waiter
                # must hear back, even when the store is being cancelled.
                with anyio.CancelScope(shield=True):
                    await self._run_batch(batch)
            if self._closing:
                return

    async def _run_batch(self, batch: list[_Pending]) -> None:
        conn = self._writer
        assert conn is not None
        try:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                if batch[0].job is not None:
                    batch[0].result = await batch[0].job(conn)
                    appended = False
                else:
                    appended = await self._append_batch(conn, batch)
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            error: BaseException = StoreError(
                f"could not write to {self.path}: {exc}",
                hint="check the disk and the file's permissions, then retry",
                retryable=isinstance(exc, sqlite3.OperationalError),
            )
            for pending in batch:
                pending.error = error
            appended = False
        except Exception as exc:  # a bug or a decode failure: every waiter must hear of it
            for pending in batch:
                pending.error = exc
            appended = False
        else:
            self.commits += 1
        for pending in batch:
            pending.done.set()
        if appended:
            self._notify()

    async def _append_batch(self, conn: aiosqlite.Connection, batch: list[_Pending]) -> bool:
        requests = [p.request for p in batch if p.request is not None]
        last = list(
            await conn.execute_fetchall(
                "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
            )
        )
        last_position, last_hash = (last[0][0], last[0][1]) if last else (0, GENESIS_HASH)
        ids = [new.meta.event_id for r in requests for new in r.events]
        existing: dict[str, StoredRow] = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for values in await conn.execute_fetchall(
                f"SELECT {COLUMNS} FROM events WHERE event_id IN ({marks})",  # noqa: S608
                chunk,
            ):
                existing[values[1]] = _row(values)
        versions: dict[str, int] = {}
        for chunk in _chunks(sorted({r.stream for r in requests})):
            marks = ",".join("?" * len(chunk))
            for stream, version in await conn.execute_fetchall(
                f"SELECT stream, max(version) FROM events WHERE stream IN ({marks}) "  # noqa: S608
                "GROUP BY stream",
                chunk,
            ):
                versions[stream] = version
        plan = plan_batch(
            requests,
            existing=existing,
            versions=versions,
            last_position=last_position,
            last_hash=last_hash,
            recorded_at=format_time(self._now()),
        )
        # Refuse to store what cannot be read back (e.g. an event class without SCHEMA bump).
        for row in plan.new_rows:
            to_recorded(row)
        if plan.new_rows:
            await conn.executemany(
                f"INSERT INTO events ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                [row.as_tuple() for row in plan.new_rows],
            )
        for pending, outcome in zip(batch, plan.outcomes, strict=True):
            if isinstance(outcome, Exception):
                pending.error = outcome
            else:
                pending.result = outcome
        return bool(plan.new_rows)

    def _notify(self) -> None:
        self._appended.set()
        self._appended = anyio.Event()

    # -- reads ---------------------------------------------------------------------------

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> Iterable[Sequence[Any]]:
        conn = self._reader
        if conn is None:
            raise StoreError("the event store is not open", hint="open it before reading")
        try:
            return await conn.execute_fetchall(sql, params)
        except sqlite3.Error as exc:
            raise self._corrupt(exc) from exc

    async def read_rows(self, from_position: int = 1, limit: int | None = None) -> list[StoredRow]:
        """Raw stored rows, undecoded (audit, verify, export)."""
        return [
            _row(values)
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
        with gc_paused():
            return [decode_values(values) for values in rows]

    async def read_selected(
        self, types: Collection[str], streams: Collection[str] = ()
    ) -> list[RecordedEvent]:
        """Every event whose type is in ``types`` or whose stream is in ``streams``, in log
        order, for a reader that folds only some events (``glam plan`` needs four types of the
        function streams, not every step of every deployment). The rows left out are not
        decoded, but their types and schema versions are checked: a log this glam cannot read
        fails here exactly as ``read_all`` would."""
        for type_name, schema_version in await self._fetch(
            "SELECT type, max(schema_version) FROM events GROUP BY type"
        ):
            check_readable(type_name, schema_version)
        type_list, stream_list = sorted(types), sorted(streams)
        type_marks = ",".join("?" * len(type_list))
        stream_marks = ",".join("?" * len(stream_list))
        rows = await self._fetch(
            f"SELECT {COLUMNS} FROM events "  # noqa: S608 - only COLUMNS and "?" marks
            f"WHERE type IN ({type_marks}) OR stream IN ({stream_marks}) ORDER BY position",
            (*type_list, *stream_list),
        )
        with gc_paused():
            return [decode_values(values) for values in rows]

    async def read_stream(self, stream: str, from_version: int = 1) -> list[RecordedEvent]:
        return [
            decode_values(values)
            for values in await self._fetch(
                f"SELECT {COLUMNS} FROM events WHERE stream = ? AND version >= ? "  # noqa: S608
                "ORDER BY version",
                (stream, from_version),
            )
        ]

    async def follow(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        """Every event from ``from_position`` on, then new ones: at once for appends made
        through this store, within ``poll_interval`` for appends by another process."""
        position = max(from_position, 1)
        while not self._closed:
            appended = self._appended  # taken before reading, so no append slips between
            batch = await self.read_all(position, limit=1000)
            for record in batch:
                yield record
                position = record.position + 1
            if not batch:
                with anyio.move_on_after(self._poll_interval):
                    await appended.wait()

    async def last_position(self) -> int:
        rows = list(await self._fetch("SELECT max(position) FROM events"))
        return int(rows[0][0] or 0)

    async def stream_version(self, stream: str) -> int:
        rows = list(
            await self._fetch("SELECT max(version) FROM events WHERE stream = ?", (stream,))
        )
        return int(rows[0][0] or 0)

    async def position_at(self, moment: datetime) -> int:
        """The last position recorded at or before ``moment`` (0 if none)."""
        rows = list(
            await self._fetch(
                "SELECT max(position) FROM events WHERE recorded_at <= ?", (format_time(moment),)
            )
        )
        return int(rows[0][0] or 0)

    async def verify(self, *, chunk: int = 10_000) -> int | None:
        """Walk the hash chain from position 1; the first position that does not check out
        (altered, missing or reordered), or None when the whole log is intact."""
        return (await self.verify_detail(chunk=chunk))[0]

    async def verify_detail(self, *, chunk: int = 10_000) -> tuple[int | None, str]:
        """``verify`` with the reason for the first bad position."""
        verifier = ChainVerifier()
        position = 1
        while True:
            rows = await self.read_rows(position, chunk)
            for row in rows:
                if not verifier.feed(row):
                    return verifier.first_bad, verifier.reason
            if len(rows) < chunk:
                return None, ""
            position = rows[-1].position + 1

    async def import_rows(self, rows: Sequence[StoredRow]) -> None:
        """Append rows exported from a glam log verbatim (restore, golden logs, benchmarks).
        They must continue this log's hash chain exactly, or nothing is written."""
        batch = list(rows)

        async def job(conn: aiosqlite.Connection) -> None:
            last = list(
                await conn.execute_fetchall(
                    "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
                )
            )
            verifier = ChainVerifier()
            if last:
                verifier.position, verifier.hash = last[0][0], last[0][1]
            for row in batch:
                if not verifier.feed(row):
                    raise StoreCorrupt(
                        f"row {verifier.first_bad} cannot be imported: {verifier.reason}",
                        hint="import an unaltered export that continues this log",
                    )
            await conn.executemany(
                f"INSERT INTO events ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                [row.as_tuple() for row in batch],
            )

        await self._submit(_Pending(job=job))
        self._notify()

    # -- projections (the ViewStore port) ----------------------------------------------------

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

    async def save_views(
        self,
        projection: str,
        checkpoint: int,
        rows: Mapping[tuple[str, str], str | None],
        *,
        reset: bool = False,
        snapshot: ViewSnapshot | None = None,
    ) -> None:
        """Write changed rows (None deletes) and the checkpoint in one transaction;
        ``reset`` first drops every row and snapshot of the projection (rebuild);
        ``snapshot`` is written in the same transaction (``engine.store.sqlite_snapshots``)."""
        upserts = [(projection, v, k, d) for (v, k), d in rows.items() if d is not None]
        deletes = [(projection, v, k) for (v, k), d in rows.items() if d is None]

        async def job(conn: aiosqlite.Connection) -> None:
            if reset:
                await conn.execute("DELETE FROM view_rows WHERE projection = ?", (projection,))
                await drop_snapshots(conn, projection)
            if snapshot is not None:
                assert snapshot.position == checkpoint, "a snapshot is of its checkpoint"
                await write_snapshot(conn, projection, snapshot)
            if deletes:
                await conn.executemany(
                    "DELETE FROM view_rows WHERE projection = ? AND view = ? AND key = ?", deletes
                )
            if upserts:
                await conn.executemany(
                    "INSERT OR REPLACE INTO view_rows (projection, view, key, data) "
                    "VALUES (?,?,?,?)",
                    upserts,
                )
            await conn.execute(
                "INSERT OR REPLACE INTO checkpoints (projection, position) VALUES (?, ?)",
                (projection, checkpoint),
            )

        await self._submit(_Pending(job=job))


def _chunks(items: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _SQL_CHUNK):
        yield list(items[start : start + _SQL_CHUNK])
