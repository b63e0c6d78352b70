"""The PostgreSQL writer without its driver: ``append`` and ``import_rows``, their SQL, the
chain checks around them, and relaying notifications.

A mixin of ``engine.store.postgres.PostgresEventStore``, which provides the connections, the
write queue (``_submit``) and the error handling; the connections are psycopg
``AsyncConnection``s, typed ``Any`` here because only the adapter module imports psycopg.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import anyio

from engine.events import NewEvent, RecordedEvent
from engine.ports import ANY_VERSION
from engine.store.batching import Pending
from engine.store.integrity import Head, LogIntegrity
from engine.store.pg_log import APPEND_LOCK, CHANNEL, rows_to_import
from engine.store.records import (
    COLUMNS,
    GENESIS_HASH,
    AppendRequest,
    StoredRow,
    format_time,
    plan_batch,
    to_recorded,
)
from engine.store.witness import WitnessWriter


class PgWrites:
    """Appends and imports: what they queue, their SQL, and the chain checks made under the
    append lock."""

    _integrity: LogIntegrity
    _now: Callable[[], datetime]
    _witness: WitnessWriter | None
    _witness_scope: anyio.CancelScope

    async def _submit(self, pending: Pending) -> Any:
        raise NotImplementedError

    def _notify(self) -> None:
        raise NotImplementedError

    async def _run_witness(self) -> None:
        assert self._witness is not None
        with self._witness_scope:  # cancelled on close, after the last write is flushed
            await self._witness.run()

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> list[RecordedEvent]:
        """Append atomically (see ``engine.ports.EventStore``). Once queued the append is
        committed even if the caller is cancelled while waiting, as with any database. A
        ``StoreUnavailable`` means the outcome is unknown: repeat the same append."""
        rows: list[StoredRow] = await self._submit(
            Pending(request=AppendRequest(stream, list(events), expected_version))
        )
        return [to_recorded(row) for row in rows]

    async def _catch_up(self, conn: Any) -> None:
        """Verify what other engines or commands appended since this store's verified head,
        before a new event is chained onto it (under the append lock)."""
        integrity = self._integrity
        head = integrity.head
        while True:
            cur = await conn.execute(
                f"SELECT {COLUMNS} FROM events WHERE position > %s "  # noqa: S608
                "ORDER BY position LIMIT 10000",
                (head.position,),
            )
            rows = [StoredRow(*values) for values in await cur.fetchall()]
            if not rows:
                break
            head = integrity.verify(rows, head)
        integrity.advance(head)

    async def _append_batch(
        self, conn: Any, requests: list[AppendRequest]
    ) -> tuple[list[Any], Head | None]:
        last_position, last_hash, last_time = await self._lock_and_read_last(conn)
        await self._catch_up(conn)
        ids = [new.meta.event_id for r in requests for new in r.events]
        cur = await conn.execute(
            f"SELECT {COLUMNS} FROM events WHERE event_id = ANY(%s)",  # noqa: S608
            (ids,),
        )
        existing = {values[1]: StoredRow(*values) for values in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT stream, max(version) FROM events WHERE stream = ANY(%s) GROUP BY stream",
            (sorted({r.stream for r in requests}),),
        )
        versions = {stream: version for stream, version in await cur.fetchall()}
        # Never earlier than the last stored event, whatever this machine's clock says: with
        # several engines on one log, recorded times still grow with positions.
        recorded_at = max(format_time(self._now()), last_time)
        plan = plan_batch(
            requests,
            existing=existing,
            versions=versions,
            last_position=last_position,
            last_hash=last_hash,
            recorded_at=recorded_at,
            chain=self._integrity.chain,
        )
        # Refuse to store what cannot be read back (e.g. an event class without a SCHEMA bump).
        for row in plan.new_rows:
            to_recorded(row)
        if not plan.new_rows:
            return list(plan.outcomes), None
        await self._insert(conn, plan.new_rows)
        return list(plan.outcomes), Head(plan.new_rows[-1].position, plan.new_rows[-1].hash)

    @staticmethod
    async def _lock_and_read_last(conn: Any) -> tuple[int, str, str]:
        # The lock first, the read after, as two statements: each statement of a READ
        # COMMITTED transaction sees every commit made before it began, so the last position
        # read here includes the transaction that held the lock just before.
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
        cur = await conn.execute(
            "SELECT position, hash, recorded_at FROM events ORDER BY position DESC LIMIT 1"
        )
        last = await cur.fetchone()
        return (last[0], last[1], last[2]) if last else (0, GENESIS_HASH, "")

    @staticmethod
    async def _insert(conn: Any, rows: Sequence[StoredRow]) -> None:
        sql = f"COPY events ({COLUMNS}) FROM STDIN"
        async with conn.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                await copy.write_row(row.as_tuple())
        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(rows[-1].position)))

    async def _relay_notifications(self, conn: Any) -> None:
        """Wake the followers at each notification, until the connection breaks. Read from
        the socket directly, not through ``conn.notifies()``, whose wait wakes every 0.1 s to
        look for timeouts: an idle store would never be idle."""
        pgconn = conn.pgconn
        while True:
            await anyio.wait_readable(pgconn.socket)
            pgconn.consume_input()  # OperationalError once the connection is gone
            woken = False
            while pgconn.notifies() is not None:
                woken = True
            if woken:
                self._notify()

    async def import_rows(self, rows: Sequence[StoredRow]) -> None:
        """Append rows exported from a glam log verbatim (copy, restore, benchmarks). They
        must continue this log's hash chain exactly, or nothing is written; rows already
        stored unchanged (a repeated import) are skipped."""
        batch = list(rows)
        chain = self._integrity.chain

        async def job(conn: Any) -> Head | None:
            last_position, last_hash, _ = await self._lock_and_read_last(conn)
            await self._catch_up(conn)
            stored = [row.position for row in batch if row.position <= last_position]
            cur = await conn.execute(
                "SELECT position, hash FROM events WHERE position = ANY(%s)", (stored,)
            )
            found: dict[int, str] = dict(await cur.fetchall())
            fresh = rows_to_import(batch, last_position, last_hash, found, chain)
            if not fresh:
                return None
            await self._insert(conn, fresh)
            return Head(fresh[-1].position, fresh[-1].hash)

        if batch:
            await self._submit(Pending(job=job, appends=True))
            if self._integrity.first_hash is None and batch[0].position == 1:
                self._integrity.first_hash = batch[0].hash
