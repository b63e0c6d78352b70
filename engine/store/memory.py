"""``MemoryEventStore``: the event store port in memory, for fast tests and dry runs.

A real implementation, not a mock: it stores the same rows as the SQLite store (same encoding,
same hash chain, same append planning in ``engine.store.records``), so the one contract suite
in ``tests/store/test_contract.py`` holds for both. Nothing is persisted.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime

import anyio

from engine.errors import StoreError
from engine.events import NewEvent, RecordedEvent
from engine.ports import ANY_VERSION, RowKey, SnapshotListing, SnapshotRows, ViewSnapshot
from engine.store.records import (
    GENESIS_HASH,
    AppendRequest,
    StoredRow,
    format_time,
    plan_batch,
    to_recorded,
    verify_rows,
)

_Version = tuple[int, bytes] | None  # a snapshot row: (row position, payload), None if deleted


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MemoryEventStore:
    """The ``EventStore`` and ``ViewStore`` ports, in memory.

    ``now`` supplies ``recorded_at`` (pass a manual clock's ``now`` in tests).
    """

    def __init__(self, *, now: Callable[[], datetime] = _utc_now) -> None:
        self._now = now
        self._rows: list[StoredRow] = []
        self._records: list[RecordedEvent] = []
        self._by_id: dict[str, StoredRow] = {}
        self._streams: dict[str, list[int]] = {}  # stream -> positions, in version order
        self._appended = anyio.Event()
        self._closed = False
        self._views: dict[str, tuple[int, dict[tuple[str, str], str]]] = {}
        # projection -> snapshot position -> (format, its delta rows); see ViewSnapshot
        self._snapshots: dict[str, dict[int, tuple[str, dict[RowKey, _Version]]]] = {}

    async def __aenter__(self) -> MemoryEventStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- EventStore ------------------------------------------------------------------------

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> list[RecordedEvent]:
        self._check_open()
        last = self._rows[-1] if self._rows else None
        plan = plan_batch(
            [AppendRequest(stream, events, expected_version)],
            existing=self._by_id,
            versions={stream: len(self._streams.get(stream, ()))},
            last_position=last.position if last else 0,
            last_hash=last.hash if last else GENESIS_HASH,
            recorded_at=format_time(self._now()),
        )
        outcome = plan.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        # Decode before storing anything: a batch is all or nothing, as in SQLite.
        decoded = [to_recorded(row) for row in plan.new_rows]
        for row, record in zip(plan.new_rows, decoded, strict=True):
            self._rows.append(row)
            self._records.append(record)
            self._by_id[row.event_id] = row
            self._streams.setdefault(row.stream, []).append(row.position)
        if plan.new_rows:
            self._notify()
        return [self._records[row.position - 1] for row in outcome]

    async def read_stream(self, stream: str, from_version: int = 1) -> list[RecordedEvent]:
        self._check_open()
        positions = self._streams.get(stream, [])
        return [self._records[p - 1] for p in positions[max(from_version, 1) - 1 :]]

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        self._check_open()
        start = max(from_position, 1) - 1
        end = len(self._records) if limit is None else start + max(limit, 0)
        return self._records[start:end]

    async def read_selected(
        self, types: Collection[str], streams: Collection[str] = (), *, after: int = 0
    ) -> list[RecordedEvent]:
        """As the SQL stores': the events of ``types`` or ``streams`` after ``after``."""
        self._check_open()
        return [r for r in self._records[max(after, 0) :] if r.type in types or r.stream in streams]

    async def follow(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        position = max(from_position, 1)
        while not self._closed:
            appended = self._appended
            batch = self._records[position - 1 : position - 1 + 1000]
            for record in batch:
                yield record
                position = record.position + 1
            if not batch:
                await appended.wait()

    async def last_position(self) -> int:
        return len(self._rows)

    async def stream_version(self, stream: str) -> int:
        return len(self._streams.get(stream, ()))

    async def aclose(self) -> None:
        self._closed = True
        self._notify()  # wake followers so they end

    # -- beyond the port: audit and views ----------------------------------------------------

    async def verify(self) -> int | None:
        """The first position whose row breaks the hash chain, or None."""
        return verify_rows(self._rows)

    async def read_rows(self, from_position: int = 1, limit: int | None = None) -> list[StoredRow]:
        """Raw stored rows, undecoded (audit and export)."""
        start = max(from_position, 1) - 1
        end = len(self._rows) if limit is None else start + max(limit, 0)
        return self._rows[start:end]

    async def position_at(self, moment: datetime) -> int:
        """The last position recorded at or before ``moment`` (0 if none)."""
        key = format_time(moment)
        return bisect.bisect_right([row.recorded_at for row in self._rows], key)

    async def load_rows(
        self, projection: str, view: str, keys: Collection[str] | None = None
    ) -> tuple[int, dict[str, str]]:
        checkpoint, rows = self._views.get(projection, (0, {}))
        wanted = None if keys is None else set(keys)
        found = {
            key: data
            for (v, key), data in rows.items()
            if v == view and (wanted is None or key in wanted)
        }
        return checkpoint, found

    async def load_views(self, projection: str) -> tuple[int, dict[tuple[str, str], str]]:
        checkpoint, rows = self._views.get(projection, (0, {}))
        return checkpoint, dict(rows)

    async def save_views(
        self,
        projection: str,
        checkpoint: int,
        rows: Mapping[tuple[str, str], str | None],
        *,
        reset: bool = False,
        snapshot: ViewSnapshot | None = None,
    ) -> None:
        self._check_open()
        _, stored = self._views.get(projection, (0, {}))
        stored = {} if reset else dict(stored)
        for key, value in rows.items():
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = value
        self._views[projection] = (checkpoint, stored)
        if reset:
            self._snapshots.pop(projection, None)
        if snapshot is not None:
            self._save_snapshot(projection, checkpoint, snapshot)

    def _save_snapshot(self, projection: str, checkpoint: int, snapshot: ViewSnapshot) -> None:
        assert snapshot.position == checkpoint, "a snapshot is of the checkpoint saved with it"
        chain = {} if snapshot.clear else self._snapshots.get(projection, {})
        chain[snapshot.position] = (snapshot.format, dict(snapshot.rows))
        for dropped in sorted(snapshot.drop):
            later = [p for p in chain if p > dropped]
            if dropped not in chain or not later:
                continue  # unknown, or the latest (which is always kept)
            _, rows = chain.pop(dropped)
            _, into = chain[min(later)]
            for key, value in rows.items():
                into.setdefault(key, value)
        self._snapshots[projection] = dict(sorted(chain.items()))

    async def snapshots(self, projection: str) -> list[tuple[int, str]]:
        return [(p, f) for p, (f, _) in self._snapshots.get(projection, {}).items()]

    async def load_snapshot(
        self, projection: str, position: int, format: str
    ) -> tuple[int, SnapshotRows] | None:
        chain = self._snapshots.get(projection, {})
        found = [p for p, (f, _) in chain.items() if p <= position and f == format]
        if not found:
            return None
        at = max(found)
        rows: SnapshotRows = {}
        for p, (_, delta) in chain.items():  # oldest first: later versions replace earlier
            if p > at:
                break
            for (view, key), value in delta.items():
                if value is None:
                    rows.get(view, {}).pop(key, None)
                else:
                    rows.setdefault(view, {})[key] = value
        return at, rows

    async def list_snapshot(
        self, projection: str, position: int, format: str
    ) -> tuple[int, SnapshotListing] | None:
        loaded = await self.load_snapshot(projection, position, format)
        if loaded is None:
            return None
        at, rows = loaded
        return at, {view: {k: p for k, (p, _) in found.items()} for view, found in rows.items()}

    async def load_snapshot_rows(
        self, projection: str, at: int, keys: Collection[RowKey]
    ) -> dict[RowKey, tuple[int, bytes]] | None:
        chain = self._snapshots.get(projection, {})
        if at not in chain:
            return None
        format_, _ = chain[at]
        loaded = await self.load_snapshot(projection, at, format_)
        assert loaded is not None
        assert loaded[0] == at
        rows = loaded[1]
        return {(v, k): rows[v][k] for v, k in keys if k in rows.get(v, {})}

    def _notify(self) -> None:
        self._appended.set()
        self._appended = anyio.Event()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the event store is closed", hint="this is a bug in the caller")
