"""``PostgresEventStore``: the event log in a PostgreSQL database, through psycopg 3.

The only module that imports psycopg. Its errors become ``StoreError``s here::

    psycopg.OperationalError    connection refused or lost, server shutting down, lock or
                                statement timeout -> StoreUnavailable (retryable), once the
                                store's own retries are spent
    InsufficientPrivilege       -> StoreError naming the grant to ask for
    any other psycopg.Error     -> StoreError
    an ``events`` table that is not glam's -> StoreCorrupt; a newer schema -> StoreTooNew

Layout: see ``engine.store.pg_log`` (the tables of the SQLite log, plus ``glam_log``).

Global order. The writer gives positions from the last stored row, under a transaction-level
advisory lock (``pg_advisory_xact_lock``) that every append transaction takes first. Appends of
every process are therefore serialised: a transaction commits, and is visible, before the next
one reads the last position, so a reader that has seen position N never later finds a lower
position committed after it (the anomaly of a sequence, whose numbers are handed out before
commit to transactions that then commit in any order). The commit itself releases the lock, so
a client that dies never leaves it held.

Group commit. As in the SQLite store one writer task per store takes everything queued and
commits it in one transaction: the lock is taken once per batch, not once per append.

Followers. Every append transaction sends ``NOTIFY glam_events``, delivered at commit; a
listening connection per store wakes its followers, in this process or any other. The poll
interval is only the fallback for a listener that has lost its connection.

Connection loss. A write that fails because the connection broke is retried on a new
connection for up to ``retry_for`` seconds. That is safe even when the break hid a successful
COMMIT: an append whose event ids are all stored returns the stored rows (``plan_batch``), a
view save writes the same rows again, an import skips the rows already stored unchanged. A read
is retried once on a new connection.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import psycopg  # noqa: TID251 - this is the PostgreSQL adapter
from anyio.abc import TaskGroup
from psycopg import errors as pg_errors  # noqa: TID251 - same adapter
from psycopg.conninfo import conninfo_to_dict  # noqa: TID251 - same adapter

from engine.errors import StoreError, StoreLocked, StoreUnavailable
from engine.ports import EventStore, ProjectionStore
from engine.store import pg_log
from engine.store.batching import Pending, WriteQueue
from engine.store.integrity import (
    HEAD_NOTE,
    Head,
    Integrity,
    LogIntegrity,
)
from engine.store.pg_leases import Fence, FencedAppends, LeaseReads
from engine.store.pg_log import CHANNEL, NOTE_UPSERT, LogReads
from engine.store.pg_views import ViewRows, create_snapshot_tables
from engine.store.pg_writes import PgWrites
from engine.store.sql_reads import TYPE_INDEX
from engine.store.witness import Witness, WitnessWriter

MAX_BATCH = 2_000

log = logging.getLogger("glam.store")
T = TypeVar("T")
Connection = psycopg.AsyncConnection[tuple[Any, ...]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def describe_url(url: str) -> str:
    """``postgresql://user@host:port/database`` for messages: never the password, and never
    the URL as written (it may hold one)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        # psycopg's message quotes the URL, password included: it is not repeated.
        raise StoreError(
            "the PostgreSQL URL cannot be parsed",
            hint="write it as postgresql://USER@HOST:PORT/DATABASE, with the password in "
            "$PGPASSWORD or ~/.pgpass",
        ) from None
    user = params.get("user") or ""
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    return f"postgresql://{user}{'@' if user else ''}{host}:{port}/{params.get('dbname') or ''}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.splitlines()[0].split())


def _broken(exc: BaseException) -> bool:
    """A failure after which the connection cannot be trusted: reconnect and repeat."""
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | TimeoutError)


class PostgresEventStore(LogReads, ViewRows, PgWrites, FencedAppends, LeaseReads):
    """The ``EventStore`` and ``ViewStore`` ports on a PostgreSQL database.

    Use it as an async context manager, which connects and starts the writer and listener::

        async with PostgresEventStore("postgresql://glam@db:5432/glam") as store:
            await store.append("fn:1:eu-west-1:orders", [new_event], expected_version=0)

    It creates its tables on first use (needs CREATE on the schema). ``readonly=True`` never
    creates or writes anything (the log must exist; appends raise ``StoreError``). It uses
    three connections: the writer, a reader and a listener. ``integrity`` and the engine's
    checks at open (``exclusive``) are those of the SQLite store (``engine.store.integrity``).
    ``password``, when given, wins over the URL's and libpq's (``PGPASSWORD``, ``PGPASSFILE``).
    ``shared``: one of several shared engines, which hold the engine lock shared.
    """

    def __init__(
        self,
        url: str,
        *,
        readonly: bool = False,
        now: Callable[[], datetime] = _utc_now,
        max_batch: int = MAX_BATCH,
        poll_interval: float = 5.0,
        retry_for: float = 30.0,
        connect_timeout: float = 10.0,
        attempt_timeout: float = 60.0,
        exclusive: bool = False,
        integrity: Integrity | None = None,
        password: str | None = None,
        shared: bool = False,
    ) -> None:
        self.where = describe_url(url)  # also refuses an unparsable URL before connecting
        options = integrity if integrity is not None else Integrity.from_env()
        self._integrity = LogIntegrity(options, self.where)
        self._witness = (
            WitnessWriter(Witness(options.witness))
            if options.witness is not None and not readonly
            else None
        )
        self._witness_scope = anyio.CancelScope()
        self._url = url
        self._password = password  # apart from the URL, which messages describe
        self.readonly = readonly
        self._now = now
        self._poll_interval = poll_interval
        self._retry_for = retry_for
        self._connect_timeout = connect_timeout
        self._attempt_timeout = attempt_timeout
        self._exclusive = exclusive and not readonly
        # The engine lock's mode (pg_log.ENGINE_LOCK): None for a query or a tool.
        self._lock = "exclusive" if self._exclusive else "shared" if shared else None
        self._check_rows = readonly
        self._lock_conn: Connection | None = None
        self._lock_scope = anyio.CancelScope()
        self._lock_kept: anyio.Event | None = None  # set when _keep_engine_lock has ended
        self._writer: Connection | None = None
        self._reader: Connection | None = None
        self._read_lock = anyio.Lock()
        self._writes = WriteQueue(max_batch=max_batch, name="PostgresEventStore(url) as store")
        self._appended = anyio.Event()
        self._fences: dict[int, Fence] = {}  # queued fenced appends (pg_leases.FencedAppends)
        self._closed = False
        self._listener_scope = anyio.CancelScope()
        self._task_group: TaskGroup | None = None
        #: transactions committed by the writer (group commit makes it far below appends)
        self.commits = 0
        #: connections opened again after one broke (writer, reader and listener)
        self.reconnects = 0
        #: True while the listener connection is listening
        self.listening = False
        self._listener_started = False

    def __repr__(self) -> str:
        return f"PostgresEventStore({self.where!r}{', readonly' if self.readonly else ''})"

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> PostgresEventStore:
        try:
            if self._lock:  # first: a second engine must not even create the tables
                self._lock_conn = await self._take_engine_lock()
            if not self.readonly:
                self._writer = await self._connect("writer")
                await self._check_format(self._writer, may_create=True)
                await self._add_snapshot_tables(self._writer)
                await self._note_type_index(self._writer)
            self._reader = await self._connect("reader")
            if self.readonly:
                await self._check_format(self._reader, may_create=False)
            await self._open_chain(writable=not self.readonly, engine=self._exclusive)
        except BaseException:
            await self._close_connections()
            raise
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        # A read-only store listens once something follows it: a query that opens, reads and
        # closes never has a LISTEN of its own cancelled under it.
        self._listener_started = not self.readonly
        if self._listener_started:
            self._task_group.start_soon(self._listen_loop, name="glam event store listener")
        if self._lock:
            self._lock_kept = anyio.Event()
            self._task_group.start_soon(self._keep_engine_lock, name="glam engine lock")
        if not self.readonly:
            self._writes.start()
            self._task_group.start_soon(
                self._writes.run, self._run_batch, name="glam event store writer"
            )
        if self._witness is not None:
            self._task_group.start_soon(self._run_witness, name="glam witness")
        return self

    async def _write_notes(self, notes: Mapping[str, str | None]) -> None:
        """Write (None: remove) notes in one transaction: directly while opening, through the
        writer once it runs."""

        async def job(conn: Connection) -> None:
            await pg_log.write_notes(conn, notes)

        if self._writes.running:
            await self._submit(Pending(job=job))
            return
        conn = self._writer
        if conn is None:
            return
        try:
            async with conn.transaction():
                await job(conn)
        except psycopg.Error as exc:
            raise self._translate(exc, "write the log's notes") from exc

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        task_group, self._task_group = self._task_group, None
        if task_group is not None:
            if isinstance(exc, Exception | GeneratorExit):
                # The writer and listener are stopped, and they never fail: an error of the
                # caller's own code reaches it as raised, not wrapped in an exception group
                # (nor a generator's close, when an async generator holds the store).
                await task_group.__aexit__(None, None, None)
                return None
            return await task_group.__aexit__(exc_type, exc, tb)
        return None

    async def aclose(self) -> None:
        """Finish every queued write, stop the writer and the listener, disconnect."""
        if self._closed:
            return
        with anyio.CancelScope(shield=True):
            await self._writes.close()  # the writer drains what was queued before closing
            self._closed = True
            if self._witness is not None:
                await self._witness.flush()
            self._witness_scope.cancel()
            self._listener_scope.cancel()
            self._lock_scope.cancel()
            self._notify()
            await self._close_connections()

    async def _close_connections(self) -> None:
        for conn in (self._writer, self._reader, self._lock_conn):  # the lock goes last
            if conn is not None:
                if conn is self._lock_conn:
                    await self._release_engine_lock(conn)
                with contextlib.suppress(psycopg.Error, OSError):
                    await conn.close()
        self._writer = self._reader = self._lock_conn = None

    async def _release_engine_lock(self, conn: Connection) -> None:
        """Give the engine lock back before the connection closes: the server releases a
        closed session's locks only when its backend has ended, after the client has gone,
        so an engine started right after this one could still find the lock held. First the
        task that watches the connection must have left it (it reads the same socket). (A
        lock connection that is broken or busy is only closed: its lock goes with its
        session.)"""
        with anyio.move_on_after(2), contextlib.suppress(psycopg.Error, OSError):
            if self._lock_kept is not None:
                await self._lock_kept.wait()
            await conn.execute("SELECT pg_advisory_unlock_all()")

    async def _take_engine_lock(self) -> Connection:
        """A connection holding the log's engine lock (a session advisory lock, released by
        the server when the connection ends, however the engine dies): exclusive for the one
        engine of the log, shared for each shared engine (``pg_log.ENGINE_LOCK``)."""
        conn = await self._connect("engine lock")
        try:
            await pg_log.take_engine_lock(conn, self._lock or "exclusive", self.where)
        except psycopg.Error as exc:
            await conn.close()
            raise self._translate(exc, "take the engine lock") from exc
        except StoreLocked:
            await conn.close()
            raise
        return conn

    async def _keep_engine_lock(self) -> None:
        """When the lock's connection breaks, take the lock again; if another engine took it
        meanwhile, fail (``StoreLocked`` stops the engine) rather than act beside it."""
        try:
            await self._keep_lock_connection()
        finally:
            if self._lock_kept is not None:
                self._lock_kept.set()

    async def _keep_lock_connection(self) -> None:
        with self._lock_scope:
            while True:
                conn = self._lock_conn
                assert conn is not None
                with contextlib.suppress(psycopg.Error, OSError):
                    await self._relay_notifications(conn)  # returns only when it breaks
                with anyio.CancelScope(shield=True), contextlib.suppress(psycopg.Error):
                    await conn.close()
                log.warning("event log %s: engine lock connection lost; retaking", self.where)
                deadline = anyio.current_time() + self._retry_for
                while True:
                    try:
                        self._lock_conn = await self._take_engine_lock()
                        break
                    except StoreUnavailable:
                        if anyio.current_time() > deadline:
                            raise
                        await anyio.sleep(0.5)
                self.reconnects += 1

    async def _connect(self, role: str) -> Connection:
        given = conninfo_to_dict(self._url)
        options: dict[str, Any] = {k: v for k, v in pg_log.KEEPALIVES.items() if k not in given}
        options.setdefault("application_name", f"glam {role}")
        if self._password is not None:
            options["password"] = self._password
        if "connect_timeout" not in given:
            options["connect_timeout"] = max(1, round(self._connect_timeout))
        conn: Connection | None = None
        try:
            with anyio.fail_after(self._connect_timeout + 1):
                conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, **options)
                if role == "writer":
                    for statement in pg_log.WRITER_SETTINGS:
                        await conn.execute(statement)
                else:  # the reader and the listener never write, whatever a bug asks
                    await conn.execute("SET default_transaction_read_only = on")
        except BaseException as exc:
            # Connected but not set up (cut, timed out or cancelled meanwhile): the half-made
            # connection is closed here, or its socket would outlive it.
            if conn is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(psycopg.Error, OSError):
                    await conn.close()
            if not isinstance(exc, (psycopg.Error, TimeoutError, OSError)):
                raise
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {self.where}: {_first_line(exc)}",
                hint="check that the server runs and the URL's host, port, database, user "
                "and password, then retry",
            ) from exc
        assert conn is not None
        return conn

    async def _check_format(self, conn: Connection, *, may_create: bool) -> None:
        try:
            await pg_log.check_format(conn, self.where, may_create=may_create)
        except psycopg.Error as exc:
            raise self._translate(exc, "open the event log") from exc

    async def _note_type_index(self, conn: Connection) -> None:
        """A log from before the type index (``pg_log.type_index_missing``) is told of, once
        per start, with the statement that adds it: only a faster check of the log's event
        types, so nothing waits for it."""
        try:
            statement = await pg_log.type_index_missing(conn)
        except psycopg.Error as exc:
            raise self._translate(exc, "open the event log") from exc
        if statement is not None:
            log.info(
                "the log has no index of its event types (%s): each first check of them "
                "reads every event; run once, as the tables' owner: %s",
                TYPE_INDEX,
                statement,
            )

    async def _add_snapshot_tables(self, conn: Connection) -> None:
        """A log from before snapshots lacks their tables (``engine.store.pg_views``)."""
        try:
            await create_snapshot_tables(conn)
        except psycopg.Error as exc:
            raise self._translate(exc, "open the event log") from exc

    def _translate(self, exc: psycopg.Error, doing: str) -> StoreError:
        message = f"could not {doing} at {self.where}: {_first_line(exc)}"
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return StoreError(message, hint=pg_log.GRANT_HINT)
        if _broken(exc):
            return StoreUnavailable(
                message, hint="check that PostgreSQL runs and is reachable, then retry"
            )
        return StoreError(message, hint="see the PostgreSQL server log; retry once it is fixed")

    # -- appends: one writer, group commit ---------------------------------------------------

    async def _submit(self, pending: Pending) -> Any:
        if self.readonly:
            raise StoreError(
                "this event store is open read-only", hint="query commands never write"
            )
        return await self._writes.submit(pending)

    async def _run_batch(self, batch: list[Pending]) -> None:
        deadline = anyio.current_time() + self._retry_for
        delay = 0.05
        appended = False
        while True:
            try:
                outcomes, added = await self._attempt(batch)
            except (psycopg.Error, TimeoutError, StoreUnavailable) as exc:
                if isinstance(exc, psycopg.Error) and not _broken(exc):
                    self._fail(batch, self._translate(exc, "write to the event log"))
                    break
                # The lost attempt may have committed: wake the followers whatever comes next.
                appended = True
                await self._drop_writer()
                if anyio.current_time() + delay < deadline:
                    log.warning("event log %s: %s; retrying", self.where, _first_line(exc))
                    await anyio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                self._fail(
                    batch,
                    StoreUnavailable(
                        f"lost the connection to {self.where} before this write was "
                        f"confirmed ({_first_line(exc)}): it may or may not be stored",
                        hint="retry the same append; its event ids make repeating it safe",
                    ),
                )
                break
            except Exception as exc:  # a bug or a decode failure: every waiter must hear of it
                self._fail(batch, exc)
                break
            else:
                appended = appended or added is not None
                self.commits += 1
                for pending, outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, Exception):
                        pending.error = outcome
                    else:
                        pending.result = outcome
                if added is not None:
                    self._integrity.advance(added)
                    await self._offer_witness(added)
                break
        if appended:
            self._notify()

    @staticmethod
    def _fail(batch: list[Pending], error: BaseException) -> None:
        for pending in batch:
            pending.error = error

    async def _attempt(self, batch: list[Pending]) -> tuple[list[Any], Head | None]:
        """One try at the batch in one transaction: the outcomes, and the new head if it
        added events (the head note is written in the same transaction)."""
        if self._writer is None:
            self._writer = await self._connect("writer")
            self.reconnects += 1
        conn = self._writer
        with anyio.fail_after(self._attempt_timeout):
            async with conn.transaction():
                job = batch[0].job
                if job is not None:
                    result = await job(conn)
                    head = result if batch[0].appends else None
                    outcomes = [result]
                else:
                    requests = [p.request for p in batch if p.request is not None]
                    outcomes, head = await self._fenced_batch(conn, requests)
                if head is not None:
                    await conn.execute(NOTE_UPSERT, (HEAD_NOTE, self._integrity.head_note(head)))
                return outcomes, head

    async def _drop_writer(self) -> None:
        conn, self._writer = self._writer, None
        if conn is not None:
            with anyio.CancelScope(shield=True), contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    def _notify(self) -> None:
        self._appended.set()
        self._appended = anyio.Event()

    def _following(self) -> None:
        if not self._listener_started and self._task_group is not None and not self._closed:
            self._listener_started = True
            self._task_group.start_soon(self._listen_loop, name="glam event store listener")

    async def _listen_loop(self) -> None:
        delay = 0.1
        with self._listener_scope:
            while not self._closed:
                try:
                    conn = await self._connect("listener")
                    try:
                        await conn.execute(f"LISTEN {CHANNEL}")
                        self.listening = True
                        # Whatever was appended while nobody listened is read now.
                        self._notify()
                        delay = 0.1
                        await self._relay_notifications(conn)
                    finally:
                        self.listening = False
                        with anyio.CancelScope(shield=True), contextlib.suppress(psycopg.Error):
                            await conn.close()
                except (psycopg.Error, StoreError, OSError) as exc:
                    log.warning(
                        "event log %s: not listening (%s); followers poll until it is back",
                        self.where,
                        _first_line(exc),
                    )
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self.reconnects += 1

    # -- reads ---------------------------------------------------------------------------

    async def _read(self, body: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``body`` on the reader; once more on a new connection if the first broke."""
        if self._closed or (self._reader is None and self._task_group is None):
            raise StoreError("the event store is not open", hint="open it before reading")
        async with self._read_lock:
            for attempt in (1, 2):
                if self._reader is None:
                    if self._closed:  # closed while this read waited: never connect again
                        raise StoreError("the event store is closed", hint="open it again")
                    self._reader = await self._connect("reader")
                    self.reconnects += 1
                conn = self._reader
                try:
                    with anyio.fail_after(self._attempt_timeout):
                        return await body(conn)
                except (psycopg.Error, TimeoutError) as exc:
                    if _broken(exc):
                        await self._drop_reader(conn)
                    if not _broken(exc) or attempt == 2:
                        if isinstance(exc, TimeoutError):
                            raise StoreUnavailable(
                                f"reading {self.where} took too long",
                                hint="check the server's load, then retry",
                            ) from exc
                        raise self._translate(exc, "read the event log") from exc
                except BaseException:
                    # Cancelled part way: the connection may be inside a query or a snapshot
                    # transaction, so the next read gets a fresh one.
                    await self._drop_reader(conn)
                    raise
        raise AssertionError("unreachable")

    async def _drop_reader(self, conn: Connection) -> None:
        self._reader = None
        with anyio.CancelScope(shield=True), contextlib.suppress(psycopg.Error, OSError):
            await conn.close()

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async def body(conn: Connection) -> list[tuple[Any, ...]]:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

        return await self._read(body)


if TYPE_CHECKING:  # the store must satisfy the ports the engine and the runner use

    def _conforms(store: PostgresEventStore) -> tuple[EventStore, ProjectionStore]:
        return store, store
