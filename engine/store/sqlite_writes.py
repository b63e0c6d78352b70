"""The SQLite writer without its driver: ``append`` and ``import_rows``, their SQL, and the
chain checks around them.

A mixin of ``engine.store.sqlite.SqliteEventStore``, which provides the connections, the
write queue (``_submit``), the batch's transaction and the error handling; the connection is
an aiosqlite ``Connection``, typed ``Any`` here because only the adapter module imports
aiosqlite. ``engine.store.pg_writes`` is the same for PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import anyio

from engine.errors import StoreCorrupt
from engine.events import NewEvent, RecordedEvent
from engine.ports import ANY_VERSION
from engine.store.batching import Pending
from engine.store.integrity import Head, LogIntegrity
from engine.store.records import (
    COLUMNS,
    GENESIS_HASH,
    AppendRequest,
    ChainVerifier,
    StoredRow,
    format_time,
    plan_batch,
    to_recorded,
)
from engine.store.witness import WitnessWriter

_SQL_CHUNK = 500  # bound parameters per IN (...) query
# S608 is silenced below only where the interpolated text is COLUMNS or "?" placeholders.
_LAST = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
_AFTER = f"SELECT {COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"  # noqa: S608
_INSERT = f"INSERT INTO events ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)"  # noqa: S608


def _row(values: Sequence[Any]) -> StoredRow:
    return StoredRow(*values)


class SqliteWrites:
    """Appends and imports: what they queue, their SQL, and the chain checks made in the
    writer's transaction."""

    _integrity: LogIntegrity
    _now: Callable[[], datetime]
    _witness: WitnessWriter | None
    _witness_scope: anyio.CancelScope

    async def _submit(self, pending: Pending) -> Any:
        raise NotImplementedError

    async def _run_witness(self) -> None:
        assert self._witness is not None
        with self._witness_scope:
            await self._witness.run()

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> list[RecordedEvent]:
        """Append atomically (see ``engine.ports.EventStore``). Once queued the append is
        committed even if the caller is cancelled while waiting, as with any database."""
        rows: list[StoredRow] = await self._submit(
            Pending(request=AppendRequest(stream, list(events), expected_version))
        )
        return [to_recorded(row) for row in rows]

    async def _catch_up(self, conn: Any) -> None:
        """Verify what other processes appended since this store's verified head, before a new
        event is chained onto it."""
        integrity = self._integrity
        head = integrity.head
        while True:
            rows = [
                _row(values)
                for values in await conn.execute_fetchall(_AFTER, (head.position, 10_000))
            ]
            if not rows:
                break
            head = integrity.verify(rows, head)
        integrity.advance(head)

    async def _append_batch(self, conn: Any, batch: list[Pending]) -> Head | None:
        requests = [p.request for p in batch if p.request is not None]
        last = list(await conn.execute_fetchall(_LAST))
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
            chain=self._integrity.chain,
        )
        # Refuse to store what cannot be read back (e.g. an event class without SCHEMA bump).
        for row in plan.new_rows:
            to_recorded(row)
        if plan.new_rows:
            await conn.executemany(_INSERT, [row.as_tuple() for row in plan.new_rows])
        for pending, outcome in zip(batch, plan.outcomes, strict=True):
            if isinstance(outcome, Exception):
                pending.error = outcome
            else:
                pending.result = outcome
        if not plan.new_rows:
            return None
        return Head(plan.new_rows[-1].position, plan.new_rows[-1].hash)

    async def import_rows(self, rows: Sequence[StoredRow]) -> None:
        """Append rows exported from a glam log verbatim (restore, golden logs, benchmarks).
        They must continue this log's hash chain exactly, or nothing is written."""
        batch = list(rows)
        integrity = self._integrity

        async def job(conn: Any) -> Head | None:
            last = list(await conn.execute_fetchall(_LAST))
            start = Head(last[0][0], last[0][1]) if last else Head(0, GENESIS_HASH)
            verifier = ChainVerifier(integrity.chain, start.position, start.hash)
            for row in batch:
                if not verifier.feed(row):
                    raise StoreCorrupt(
                        f"row {verifier.first_bad} cannot be imported: {verifier.reason}",
                        hint="import an unaltered export that continues this log",
                    )
            await conn.executemany(_INSERT, [row.as_tuple() for row in batch])
            return Head(verifier.position, verifier.hash) if batch else None

        await self._submit(Pending(job=job, appends=True))
        if integrity.first_hash is None and batch and batch[0].position == 1:
            integrity.first_hash = batch[0].hash


def _chunks(items: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _SQL_CHUNK):
        yield list(items[start : start + _SQL_CHUNK])
