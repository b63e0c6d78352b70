"""Leased shards on a PostgreSQL log: the tables and every rule, as SQL, without the driver.

Several engines share one log by splitting the work into *shards* (``engine.runtime.leases``
names them: an account and region of functions, and one shard for planning). Each shard is a
row of ``leases``; an engine owns a shard while its row names it and has not expired. Times
are the server's (``clock_timestamp()``), never an engine's clock, so engines on machines
whose clocks disagree still agree on who owns what.

    leases   shard (key), owner (NULL when free), epoch, expires_at
    engines  engine (key), expires_at: one row per live engine, renewed with its leases

Rules, each one statement of ``tick``'s transaction:

- an engine renews only what it owns and has not expired; a lease that expired is gone, even
  if nobody took it yet (taking it again gives a new epoch, and the sagas are resumed from the
  log as after any take);
- it takes free or expired shards up to its fair share, ``ceil(shards / live engines)``, and
  gives back what it holds above it, so an engine that joins gets its share;
- every take increments the shard's *epoch*, the fencing token: an append made for a shard
  carries the owner and epoch it was made under (a ``Fence``), and the store refuses it inside
  the append's own transaction (``FENCE_CHECK``) when the row has moved on. A former owner that
  was paused past its lease can therefore never land a late write.

Takes run under the append lock (``pg_log.APPEND_LOCK``), so a take and an append are ordered:
an append either commits before the take (under the old epoch, which was current) or it checks
the fence after the take and is refused; the new owner reads the log after its take and so
sees every append made under the old epoch.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from engine.errors import FencedOut
from engine.events import NewEvent, RecordedEvent
from engine.ports import ANY_VERSION
from engine.store.batching import Pending
from engine.store.pg_log import APPEND_LOCK
from engine.store.records import AppendRequest, StoredRow, to_recorded

T = TypeVar("T")

TABLES = """
CREATE TABLE IF NOT EXISTS leases (
    shard      text        PRIMARY KEY,
    owner      text,
    epoch      bigint      NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE TABLE IF NOT EXISTS engines (
    engine     text        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
"""

FENCE_CHECK = (
    "SELECT 1 FROM leases WHERE shard = %s AND owner = %s AND epoch = %s "
    "AND expires_at > clock_timestamp()"
)
_LATER = "clock_timestamp() + make_interval(secs => %s)"


class Sql(Protocol):
    """One open transaction on the log's database (the store's writer connection)."""

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql``; its rows (none for a statement that returns none)."""
        ...


Transaction = Callable[[Callable[[Sql], Awaitable[T]]], Awaitable[T]]


@dataclass(frozen=True, slots=True)
class Fence:
    """What an append for a shard carries: the owner and epoch it was decided under."""

    shard: str
    owner: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Lease:
    """One row of ``leases``, as ``glam db info`` and the tests see it."""

    shard: str
    owner: str | None
    epoch: int
    expires_at: datetime
    live: bool


@dataclass(frozen=True, slots=True)
class Tick:
    """What one ``tick`` left this engine with: the shards it owns and their epochs (renewed
    or just taken), the ones it took just now, the ones over its share it should hand back,
    and how many engines are live."""

    held: dict[str, int]
    taken: frozenset[str]
    excess: tuple[str, ...]
    live: int
    shards: int


def fair_share(shards: int, live: int) -> int:
    """How many shards one of ``live`` engines may hold: every shard owned, none twice as
    many as another engine's but for rounding."""
    return math.ceil(shards / max(live, 1))


def fenced_out(fence: Fence) -> FencedOut:
    return FencedOut(
        f"shard {fence.shard} is no longer leased to engine {fence.owner} at epoch "
        f"{fence.epoch}: the append was refused, nothing was written",
        hint="another engine owns the shard now and resumes its work from the log",
    )


async def check_fence(sql: Sql, fence: Fence) -> None:
    """Raise ``FencedOut`` unless ``fence`` is the shard's current lease (call it inside the
    append's transaction, after the append lock)."""
    if not await sql.fetch(FENCE_CHECK, (fence.shard, fence.owner, fence.epoch)):
        raise fenced_out(fence)


class FencedAppends:
    """The fenced side of the PostgreSQL writer (a mixin of ``PostgresEventStore``): an
    append request registered with a fence (``_fences``, by the request's id while it is
    queued) is checked in the batch's transaction, under the append lock, and answered
    ``FencedOut`` when stale; the batch's other appends go on, group-committed as ever."""

    _fences: dict[int, Fence]

    async def _submit(self, pending: Pending) -> Any:
        raise NotImplementedError

    async def _append_batch(
        self, conn: Any, requests: list[AppendRequest]
    ) -> tuple[list[Any], Any]:
        raise NotImplementedError

    async def _fenced_batch(
        self, conn: Any, requests: list[AppendRequest]
    ) -> tuple[list[Any], Any]:
        fenced = [(i, self._fences[id(r)]) for i, r in enumerate(requests) if id(r) in self._fences]
        if not fenced:
            return await self._append_batch(conn, requests)
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
        refused: dict[int, FencedOut] = {}
        for i, fence in fenced:
            cur = await conn.execute(FENCE_CHECK, (fence.shard, fence.owner, fence.epoch))
            if not await cur.fetchall():
                refused[i] = fenced_out(fence)
        kept = [r for i, r in enumerate(requests) if i not in refused]
        outcomes, added = await self._append_batch(conn, kept)
        rest: Iterator[Any] = iter(outcomes)
        return [refused[i] if i in refused else next(rest) for i in range(len(requests))], added

    async def transaction(self, body: Callable[[Sql], Awaitable[T]]) -> T:
        """Run ``body`` in one transaction of the writer, in turn with the appends (the lease
        rules of this module)."""
        return await self._submit(Pending(job=lambda conn: body(_Sql(conn))))  # type: ignore[no-any-return]

    async def append_fenced(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int = ANY_VERSION,
        *,
        fence: Fence,
    ) -> list[RecordedEvent]:
        """``append``, refused with ``FencedOut`` (nothing written) unless ``fence`` is its
        shard's current lease, checked under the append lock in the append's transaction."""
        request = AppendRequest(stream, list(events), expected_version)
        self._fences[id(request)] = fence
        try:
            rows: list[StoredRow] = await self._submit(Pending(request=request))
        finally:
            del self._fences[id(request)]
        return [to_recorded(row) for row in rows]


class _Sql:
    """``pg_leases.Sql`` on one connection inside its transaction."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = await self._conn.execute(sql, params)
        return await cur.fetchall() if cur.description else []


class LeaseReads:
    """The lease table on the store's reader (a mixin of ``PostgresEventStore``, which
    provides ``_fetch``), for a store that may be open read-only."""

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def leases(self) -> list[Lease] | None:
        """The lease table as the reader sees it (``glam db info``): None when no engine ever
        ran shared on this log."""
        return await read_leases(_Reads(self))


class _Reads:
    """``pg_leases.Sql`` on the store's reader (statements that only read)."""

    def __init__(self, store: LeaseReads) -> None:
        self._store = store

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._store._fetch(sql, params)


async def create_tables(sql: Sql) -> None:
    # Under the append lock: two engines starting at once must not both create the tables.
    await sql.fetch("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
    await sql.fetch(TABLES)


async def tick(
    sql: Sql, engine: str, ttl: float, shards: Sequence[str], *, take: bool = True
) -> Tick:
    """Heartbeat, register ``shards``, renew what ``engine`` owns, take free or expired shards
    up to its fair share (unless ``take`` is false: an engine stopping), say what is over it."""
    await sql.fetch("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
    await sql.fetch(
        f"INSERT INTO engines (engine, expires_at) VALUES (%s, {_LATER}) "  # noqa: S608
        "ON CONFLICT (engine) DO UPDATE SET expires_at = EXCLUDED.expires_at",
        (engine, ttl),
    )
    await sql.fetch("DELETE FROM engines WHERE expires_at < clock_timestamp() - interval '1 day'")
    if shards:
        await sql.fetch(
            "INSERT INTO leases (shard) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
            (sorted(set(shards)),),
        )
    renewed = await sql.fetch(
        f"UPDATE leases SET expires_at = {_LATER} "  # noqa: S608
        "WHERE owner = %s AND expires_at > clock_timestamp() RETURNING shard, epoch",
        (ttl, engine),
    )
    held = {shard: int(epoch) for shard, epoch in renewed}
    (live, total), *_ = await sql.fetch(
        "SELECT (SELECT count(*) FROM engines WHERE expires_at > clock_timestamp()), "
        "(SELECT count(*) FROM leases)"
    )
    share = fair_share(int(total), int(live))
    taken: dict[str, int] = {}
    if take and len(held) < share:
        rows = await sql.fetch(
            f"UPDATE leases SET owner = %s, epoch = epoch + 1, expires_at = {_LATER} "  # noqa: S608
            "WHERE shard IN (SELECT shard FROM leases "
            "WHERE owner IS NULL OR expires_at <= clock_timestamp() ORDER BY shard LIMIT %s) "
            "RETURNING shard, epoch",
            (engine, ttl, share - len(held)),
        )
        taken = {shard: int(epoch) for shard, epoch in rows}
        held.update(taken)
    excess = tuple(sorted(held)[share:]) if len(held) > share else ()
    return Tick(held, frozenset(taken), excess, int(live), int(total))


async def release(sql: Sql, engine: str, shards: Sequence[str]) -> None:
    """Give ``shards`` back at once (a clean stop, or a share handed over): free, same epoch,
    so the next owner's take increments it."""
    await sql.fetch(
        "UPDATE leases SET owner = NULL, expires_at = clock_timestamp() "
        "WHERE owner = %s AND shard = ANY(%s)",
        (engine, list(shards)),
    )


async def leave(sql: Sql, engine: str) -> None:
    """``engine`` stops: every shard it owns is freed and it no longer counts as live."""
    await sql.fetch(
        "UPDATE leases SET owner = NULL, expires_at = clock_timestamp() WHERE owner = %s",
        (engine,),
    )
    await sql.fetch("DELETE FROM engines WHERE engine = %s", (engine,))


async def list_leases(sql: Sql) -> list[Lease]:
    """Every lease row, by shard."""
    rows = await sql.fetch(
        "SELECT shard, owner, epoch, expires_at, expires_at > clock_timestamp() "
        "FROM leases ORDER BY shard"
    )
    return [Lease(s, o, int(e), at, bool(live)) for s, o, e, at, live in rows]


async def read_leases(sql: Sql) -> list[Lease] | None:
    """Every lease row, by shard, for a reader that may not create tables (``glam db info``,
    opened read-only); None when the log has no lease table (no engine ever ran shared)."""
    (exists,), *_ = await sql.fetch("SELECT to_regclass('leases') IS NOT NULL")
    return await list_leases(sql) if exists else None


async def live_engines(sql: Sql) -> list[str]:
    """The engines whose heartbeat has not expired, by name."""
    rows = await sql.fetch(
        "SELECT engine FROM engines WHERE expires_at > clock_timestamp() ORDER BY engine"
    )
    return [name for (name,) in rows]


async def expire(sql: Sql, shard: str) -> None:
    """End ``shard``'s lease now, as if its owner had stopped renewing it (tests, operators)."""
    await sql.fetch("UPDATE leases SET expires_at = clock_timestamp() WHERE shard = %s", (shard,))
