"""``SqliteEventStore``: the event log in one SQLite file, through aiosqlite.

The only module that imports aiosqlite. sqlite3 errors are turned into ``StoreError``s here,
in words from ``engine.store.sqlite_files`` (a full disk is not corruption).

Layout (file schema version ``SCHEMA_VERSION`` in ``PRAGMA user_version``, glam's
``PRAGMA application_id`` so another SQLite file is never mistaken for a log):

- ``events``: one row per event, ``position`` the primary key (global order), ``event_id``
  unique (idempotent retries), ``UNIQUE(stream, version)`` (optimistic concurrency), and the
  hash chain (``prev_hash``, ``hash``; see ``engine.store.records``). Never updated or deleted.
- ``view_rows`` and ``checkpoints``: projection rows and how far they have folded, written
  together in one transaction (``save_views``, in ``engine.store.sqlite_snapshots``).
- ``glam_meta``: the log's notes about its own chain (keyed or not, the verified head; see
  ``engine.store.integrity``), added to a log of an earlier glam when it is first written.

Writes go through ONE writer task (``engine.store.batching``): ``append`` queues a request and
waits; the writer takes everything queued, plans it against the stored state and commits it in
one transaction (group commit), so a thousand concurrent appends cost a handful of fsyncs, not a
thousand; the SQL of appends and imports is in ``engine.store.sqlite_writes``. Reads use a
second connection, so they never see a transaction in progress. WAL lets them run while the
writer commits; ``synchronous=FULL`` makes an acknowledged append survive power loss;
``journal_size_limit`` and an earlier checkpoint keep the ``-wal`` small on a small disk.
Before each commit the writer checks that its ``-wal`` is still the file it writes to.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite  # noqa: TID251 - this is the SQLite adapter
import anyio
from anyio.abc import TaskGroup

from engine.errors import EventDecodeError, StoreCorrupt, StoreError
from engine.store import sqlite_files
from engine.store.batching import Pending, WriteQueue
from engine.store.integrity import (
    HEAD_NOTE,
    Head,
    Integrity,
    LogIntegrity,
)
from engine.store.records import COLUMNS, DAMAGED_HINT
from engine.store.sqlite_log import (
    NO_LOG_HINT,
    NOTE_UPSERT,
    SqliteReads,
    check_format,
    write_notes,
)
from engine.store.sqlite_snapshots import SqliteSnapshots, create_snapshot_tables
from engine.store.sqlite_writes import SqliteWrites
from engine.store.witness import Witness, WitnessWriter

BUSY_TIMEOUT_MS = 10_000
MAX_BATCH = 2_000
# The -wal is checkpointed from 1 MiB (SQLite's default is 4 MiB) and cut back to 1 MiB after:
# on a small disk it is the -wal, not the log, that fills it.
WAL_AUTOCHECKPOINT_PAGES = 256
JOURNAL_SIZE_LIMIT = 1024 * 1024


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SqliteEventStore(SqliteReads, SqliteSnapshots, SqliteWrites):
    """The ``EventStore`` and ``ViewStore`` ports on one SQLite file.

    Use it as an async context manager, which starts and stops the writer task::

        async with SqliteEventStore(path) as store:
            await store.append("fn:1:eu-west-1:orders", [new_event], expected_version=0)

    ``readonly=True`` opens the file with ``mode=ro`` and ``query_only`` (query commands): it
    must exist, and appends raise ``StoreError``. Opening refuses a file that fails SQLite's
    integrity check (``StoreCorrupt``), is not a glam log (``StoreCorrupt``) or was written by
    a newer glam (``StoreTooNew``); it never tries to repair anything.

    ``integrity`` is the chain key, the witness and how many rows the engine checks again
    (default: from ``$GLAM_CHAIN_KEY_FILE``, ``$GLAM_WITNESS`` and ``$GLAM_RECHECK``).
    ``engine=True`` is the engine's own store, which holds the engine lock
    (``engine.store.lock``): before ``__aenter__`` returns it verifies the chain from the
    verified head to the end, and the last rows before it, so nothing acts on a log that does
    not verify. A read-only store checks each event it decodes against its own hash.
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
        integrity: Integrity | None = None,
        engine: bool = False,
    ) -> None:
        self.given_path = Path(path)
        self.path = self.given_path  # its own name (links resolved) once opened
        self.readonly = readonly
        self._now = now
        self._poll_interval = poll_interval
        self._check = check
        self._engine = engine and not readonly
        self._check_rows = readonly
        options = integrity if integrity is not None else Integrity.from_env()
        self._integrity = LogIntegrity(options, str(self.given_path))
        self._witness = (
            WitnessWriter(Witness(options.witness))
            if options.witness is not None and not readonly
            else None
        )
        self._witness_scope = anyio.CancelScope()
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._writes = WriteQueue(max_batch=max_batch, name="SqliteEventStore(path) as store")
        self._watch: sqlite_files.WalWatch | None = None
        self._failed: StoreError | None = None  # once set, every write raises it
        self._appended = anyio.Event()
        self._closed = False
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
            await self._open_chain(writable=not self.readonly, engine=self._engine)
        except BaseException:
            await self._close_connections()
            raise
        if not self.readonly:
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
            self._writes.start()
            self._task_group.start_soon(
                self._writes.run, self._run_batch, name="glam event store writer"
            )
            if self._witness is not None:
                self._task_group.start_soon(self._run_witness, name="glam witness")
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
        """Finish every queued write, bring the witness up to date, close the file."""
        if self._closed:
            return
        with anyio.CancelScope(shield=True):
            await self._writes.close()  # the writer drains what was queued before closing
            self._closed = True
            if self._witness is not None:
                try:
                    await self._witness.flush()
                finally:
                    self._witness_scope.cancel()
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
        # File system calls in a worker thread: they can block (a network disk).
        self.path = await anyio.to_thread.run_sync(sqlite_files.resolve, self.given_path)
        try:
            if self.readonly:
                if not await anyio.to_thread.run_sync(self.path.is_file):
                    raise StoreError(f"no event log at {self.given_path}", hint=NO_LOG_HINT)
                await anyio.to_thread.run_sync(sqlite_files.check_single_name, self.path)
                await anyio.to_thread.run_sync(sqlite_files.check_wal_present, self.path)
                uri = self.path.as_uri() + "?mode=ro"
                self._reader = await aiosqlite.connect(uri, uri=True, isolation_level=None)
                await self._reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                await self._check_format(self._reader, may_create=False)
                await self._reader.execute("PRAGMA query_only = 1")
                return
            await anyio.to_thread.run_sync(
                functools.partial(sqlite_files.prepare, self.path, create=True)
            )
            if not self._engine:
                await anyio.to_thread.run_sync(sqlite_files.check_wal_present, self.path)
            self._writer = await aiosqlite.connect(self.path, isolation_level=None)
            for pragma in (
                f"busy_timeout = {BUSY_TIMEOUT_MS}",
                "journal_mode = WAL",
                "synchronous = FULL",
                f"wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}",
                f"journal_size_limit = {JOURNAL_SIZE_LIMIT}",
            ):
                await self._writer.execute(f"PRAGMA {pragma}")
                if pragma.startswith("busy"):
                    await self._check_format(self._writer, may_create=True)
            await create_snapshot_tables(self._writer)  # a log from before snapshots lacks them
            self._watch = await anyio.to_thread.run_sync(sqlite_files.WalWatch, self.path)
            await anyio.to_thread.run_sync(self._watch.remember)
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            await self._reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await self._reader.execute("PRAGMA query_only = 1")
        except sqlite3.Error as exc:
            raise await sqlite_files.described(exc, self.path, "open") from exc

    async def _check_format(self, conn: aiosqlite.Connection, *, may_create: bool) -> None:
        await check_format(
            conn, self.path, where=self.given_path, may_create=may_create, check=self._check
        )

    async def _write_notes(self, notes: Mapping[str, str | None]) -> None:
        """Write (None: remove) notes in one transaction: directly while opening, through the
        writer once it runs."""

        async def job(conn: aiosqlite.Connection) -> None:
            await write_notes(conn, notes)

        if self._writes.running:
            await self._submit(Pending(job=job))
            return
        conn = self._writer
        if conn is None:
            return  # read-only: nothing is written
        try:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                await job(conn)
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise await sqlite_files.described(exc, self.path, "write the log's notes to") from exc

    # -- appends: one writer, group commit ---------------------------------------------------

    async def _submit(self, pending: Pending) -> Any:
        if self.readonly:
            raise StoreError(
                "this event store is open read-only", hint="query commands never write"
            )
        return await self._writes.submit(pending)

    async def _run_batch(self, batch: list[Pending]) -> None:
        error = self._failed
        if error is None and (lost := await self._files_problem()) is not None:
            await self._rescue()
            error = lost
        if error is not None:
            for pending in batch:
                pending.error = error
            return
        conn = self._writer
        assert conn is not None
        head: Head | None = None
        try:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                await self._catch_up(conn)
                job = batch[0].job
                if job is not None:
                    batch[0].result = await job(conn)
                    if batch[0].appends:
                        head = batch[0].result
                else:
                    head = await self._append_batch(conn, batch)
                if head is not None:
                    await conn.execute(NOTE_UPSERT, (HEAD_NOTE, self._integrity.head_note(head)))
                await conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (a full disk) has already rolled back: a ROLLBACK then would
                # replace the real error with "no transaction is active".
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            error = await sqlite_files.described(exc, self.path, _writing(batch))
            if not error.retryable:
                self._failed = StoreError(
                    error.message + "; glam writes nothing more until it is started again",
                    hint=error.hint,
                )
                error = self._failed
            for pending in batch:
                pending.error = error
            return
        except StoreCorrupt as exc:  # the chain does not verify: nothing more is written
            self._failed = exc
            for pending in batch:
                pending.error = exc
            return
        self.commits += 1
        if self._watch is not None and not self._watch.remembered:
            await anyio.to_thread.run_sync(self._watch.remember)
        if head is not None:
            self._integrity.advance(head)
            await self._offer_witness(head)
            self._notify()

    async def _files_problem(self) -> StoreError | None:
        """A deleted or replaced ``-wal`` (or file): what this store wrote is copied into the
        main file while it still can be (a checkpoint through the open connection), and every
        later write is refused. Two ``stat`` calls, in a worker thread, before each batch."""
        watch = self._watch
        problem = await anyio.to_thread.run_sync(watch.problem) if watch is not None else None
        if problem is None:
            return None
        self._failed = sqlite_files.wal_lost_error(problem)
        return self._failed

    async def _rescue(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(sqlite3.Error):
                await self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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
            if "Could not decode to UTF-8" in str(exc) and sql.startswith(f"SELECT {COLUMNS}"):
                located = await anyio.to_thread.run_sync(self._locate_bad_text, sql, params)
                if located is not None:
                    raise located from None
            raise await sqlite_files.described(exc, self.path, "read") from None

    def _locate_bad_text(self, sql: str, params: Sequence[Any]) -> EventDecodeError | None:
        """The row of an events query whose stored text is not UTF-8 (a damaged byte), read
        again as bytes on a connection of its own: the position, never the text."""
        conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True)
        try:
            conn.text_factory = bytes
            for values in conn.execute(sql, params):
                for value in values:
                    if isinstance(value, bytes):
                        try:
                            value.decode()
                        except UnicodeDecodeError:
                            return EventDecodeError(
                                f"the event at position {values[0]} cannot be read: its stored "
                                "text is not valid UTF-8 (a damaged byte)",
                                hint=DAMAGED_HINT,
                            )
        finally:
            conn.close()
        return None


def _writing(batch: Sequence[Pending]) -> str:
    """What a failed batch was writing, for its error: "could not ... glam.db"."""
    first = batch[0]
    if first.job is None or first.appends:
        return "write these events to"
    return "write the views and notes to"
