"""What the read sides of the two SQL logs share: decoding checked rows, following the log, and
walking the hash chain. ``engine.store.sqlite_log.SqliteReads`` and
``engine.store.pg_log.LogReads`` add their SQL (``read_all`` and the rest); how soon a follower
hears of an append is the backend's (``_appended`` is set by each).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import anyio

from engine.errors import EventDecodeError, StoreError
from engine.events import RecordedEvent
from engine.events.catalog import check_readable
from engine.store.integrity import ChainChecks, walk_chain
from engine.store.records import decode_values, gc_paused, unreadable

FOLLOW_PAGE = 1_000  # events a follower reads at a time

# The index the first check of a store's event types reads: in every new log; an SQLite file
# of an earlier glam gets it from its first writer, a PostgreSQL log from its owner (the
# engine logs the statement, ``pg_log.type_index_missing``).
TYPE_INDEX = "events_by_type_version"
TYPE_INDEX_DDL = f"CREATE INDEX IF NOT EXISTS {TYPE_INDEX} ON events (type, schema_version)"
# ``_check_log_types``'s rows for the whole log, from that index: each type found by a seek
# past the one before (a loose index scan), then its newest schema version by a seek, and
# the log's last position; one statement, so one snapshot. The first position of a type is
# looked up only for a type refused (PostgreSQL may walk the log's order to find it).
TYPES_BY_INDEX = """
WITH RECURSIVE types(type) AS (
    SELECT min(type) FROM events
    UNION ALL
    SELECT (SELECT min(e.type) FROM events e WHERE e.type > t.type) FROM types t
    WHERE t.type IS NOT NULL
)
SELECT type,
    (SELECT max(e.schema_version) FROM events e WHERE e.type = types.type),
    NULL,
    (SELECT max(position) FROM events)
FROM types WHERE type IS NOT NULL
"""


class SqlReads(ChainChecks):
    """The shared part of an SQL log's reads. Subclasses provide ``read_all``, ``_closed``,
    ``_appended`` (an event set after every append this store learns of, replaced after each)
    and ``_poll_interval`` (the longest a follower waits before reading again)."""

    _closed: bool
    _appended: anyio.Event
    _poll_interval: float

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        raise NotImplementedError

    def _following(self) -> None:
        """A follower starts: a backend that hears of appends only while someone listens
        starts listening now (PostgreSQL's read-only store)."""

    @property
    def closed(self) -> bool:
        """Whether the store was closed (a follower ends then)."""
        return self._closed

    async def _decoded(self, values: Sequence[Sequence[Any]]) -> list[RecordedEvent]:
        await self._check_values(values)
        with gc_paused():
            return [decode_values(row) for row in values]

    # Events whose types this store has checked (``_check_log_types``), up to this position.
    _types_checked = 0

    async def _check_log_types(self, sql: str) -> None:
        """Fail as a full read would if the log holds an event type or schema version this
        glam cannot read. ``sql`` groups the events after a position (its one parameter) by
        type: (type, newest schema version, first position, last position). Each store
        checks an event once, and a command that reads selected events several times pays
        it once. The first check reads the log's index of types and schema versions when it
        has one (``TYPES_BY_INDEX``, a few seeks per type); grouping instead scans the type
        of every event, a second on a log of a million."""
        whole = None if self._types_checked else await self._types_by_index()
        if whole is not None:
            found = list(await self._fetch(whole))
        else:
            found = list(await self._fetch(sql, (self._types_checked,)))
        for type_name, schema_version, first, _ in found:
            try:
                check_readable(type_name, schema_version)
            except EventDecodeError as exc:
                if first is None:  # read from the index, which does not give it
                    first = await self._first_of_type(type_name)
                row = [first, None, None, None, type_name, schema_version]
                raise unreadable(row, exc) from None
        self._types_checked = max([self._types_checked, *(last for *_, last in found)])

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> Iterable[Sequence[Any]]:
        raise NotImplementedError

    async def _types_by_index(self) -> str | None:
        """The query of ``_check_log_types``'s rows for the whole log from the index of types
        and schema versions (None: this log has no such index, as a log an earlier glam
        wrote and no glam has opened for writing since)."""
        return None

    async def _first_of_type(self, type_name: str) -> int:
        """The first position of an event of ``type_name`` (the one a refusal names, as
        the grouped check does: the type's first event, whichever its version)."""
        raise NotImplementedError

    async def follow(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        """Every event from ``from_position`` on, then new ones as they are appended, until
        the store closes: at once when this store appended them or was told of them (SQLite:
        its own appends; PostgreSQL: NOTIFY from any process), else within ``poll_interval``."""
        position = max(from_position, 1)
        self._following()
        while not self._closed:
            appended = self._appended  # taken before reading, so no append slips between
            try:
                batch = await self.read_all(position, limit=FOLLOW_PAGE)
            except StoreError:
                if self.closed:  # closed under the read: the follower ends as it would
                    return
                raise
            for record in batch:
                yield record
                position = record.position + 1
            if not batch:
                with anyio.move_on_after(self._poll_interval):
                    await appended.wait()

    async def verify(self, *, chunk: int = 10_000) -> int | None:
        """Walk the hash chain from position 1; the first position that does not check out
        (altered, missing or reordered), or None when the whole log is intact."""
        return (await self.verify_detail(chunk=chunk))[0]

    async def verify_detail(self, *, chunk: int = 10_000) -> tuple[int | None, str]:
        """``verify`` with the reason for the first bad position."""
        result = await walk_chain(self, self._integrity.chain, chunk=chunk)
        return result.first_bad, result.reason
