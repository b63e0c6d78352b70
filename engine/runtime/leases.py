"""Several engines on one PostgreSQL log: the shards this engine leases, and its fenced appends.

The work is split into *shards*: one per account and region of the functions in the log
(``fn:<account>:<region>:<name>`` streams belong to shard ``<account>:<region>``), and the
``plan`` shard, whose owner watches the repositories, plans and hands operator commands over.
A shard's sagas run only in the engine that leases it, so the rate limiter of an account and
region is only ever spent by one engine.

``LeaseManager.run`` is the engine's lease task: every third of the lease time it renews what
it holds and takes free or expired shards up to its fair share, in one transaction of the log's
database (the rules, in server time, are ``engine.store.pg_leases``'s). On each change it calls
the engine back: ``on_taken(shard)`` (resume the shard's sagas from the log), and
``on_lost(shard)`` (stop them at once) — a lease lost to another engine, given back because it
was over the fair share, or one this engine could not renew before its own deadline. That
deadline is counted from the moment the last successful renewal was *sent*, on this machine's
monotonic clock, so it always falls before the server's expiry: the former owner stops before
anyone may take over.

Every append made for a shard goes through a ``FencedStore``, which sends the lease's owner and
epoch with it; the store checks them inside the append's transaction and refuses a stale one
(``FencedOut``), so even an engine that was paused past its lease and wakes up mid-append
writes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

import anyio

from engine.errors import FencedOut, GlamError
from engine.events import NewEvent, RecordedEvent
from engine.logs import get_logger
from engine.ports import ANY_VERSION, EventStore, ProjectionStore
from engine.store import pg_leases
from engine.store.forwarding import ReadThrough
from engine.store.pg_leases import Fence, Sql
from engine.streams import FUNCTION_PREFIX, parse_function_stream

log = get_logger("leases")

T = TypeVar("T")
PLAN_SHARD = "plan"
DEFAULT_TTL = 15.0


def shard_of(stream: str) -> str | None:
    """The shard a function stream belongs to (``<account>:<region>``); None for any other."""
    if not stream.startswith(FUNCTION_PREFIX):
        return None
    account, region, _ = parse_function_stream(stream)
    return f"{account}:{region}"


class SharedLog(ProjectionStore, Protocol):
    """A log several engines can share: transactions of its own, and fenced appends (the
    PostgreSQL store)."""

    async def transaction(self, body: Callable[[Sql], Awaitable[T]]) -> T: ...

    async def append_fenced(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int = ANY_VERSION,
        *,
        fence: Fence,
    ) -> list[RecordedEvent]: ...


ShardHook = Callable[[str], Awaitable[None]]


class LeaseManager:
    """This engine's leases on ``store`` (see the module docstring). ``engine`` names it in
    the lease table; ``ttl`` is the lease time in seconds."""

    def __init__(
        self,
        store: SharedLog,
        engine: str,
        *,
        ttl: float = DEFAULT_TTL,
        on_taken: ShardHook,
        on_lost: ShardHook,
    ) -> None:
        self.store = store
        self.engine = engine
        self.ttl = ttl
        self._on_taken = on_taken
        self._on_lost = on_lost
        self._held: dict[str, int] = {}
        self._deadline = float("-inf")
        self._known: set[str] = {PLAN_SHARD}
        self._changed = anyio.Event()
        #: engines live at the last renewal, and shards in the table
        self.live = 0
        self.shards = 0

    # -- what the engine asks ------------------------------------------------------------------

    def know(self, shard: str) -> None:
        """Register ``shard`` at the next renewal (a function in a new account or region)."""
        self._known.add(shard)

    def holds(self, shard: str) -> bool:
        return shard in self._held and anyio.current_time() < self._deadline

    @property
    def held(self) -> frozenset[str]:
        return frozenset(s for s in self._held if self.holds(s))

    def fence(self, shard: str) -> Fence:
        """The fence of an append for ``shard``; ``FencedOut`` at once when this engine does
        not hold it (or its lease ran past the local deadline)."""
        if not self.holds(shard):
            raise FencedOut(
                f"engine {self.engine} does not hold shard {shard}: the append was refused, "
                "nothing was written",
                hint="the shard's owner resumes its work from the log",
            )
        return Fence(shard, self.engine, self._held[shard])

    def store_for(self, shard: str) -> FencedStore:
        """The event store appends for ``shard`` go through."""
        return FencedStore(self.store, self, shard)

    async def changed(self) -> None:
        """Wait for the next change of the shards held (tests, benchmarks)."""
        await self._changed.wait()

    # -- the lease task -----------------------------------------------------------------------

    async def start(self) -> None:
        """Create the lease tables if need be, and take a first share."""
        await self.store.transaction(pg_leases.create_tables)
        await self.renew()

    async def run(self) -> None:
        """Renew every third of the lease time until cancelled; then leave (shielded)."""
        try:
            while True:
                await anyio.sleep(self.ttl / 3)
                try:
                    await self.renew()
                except GlamError as exc:
                    log.warning("leases not renewed: %s", exc.one_line())
                    await self._expire_locally()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(self.ttl / 3):
                await self.leave()

    async def renew(self) -> None:
        """One renewal: heartbeat, renew, take up to the fair share, hand back the excess."""
        sent = anyio.current_time()
        # Past the local deadline, a saga may have been refused and stopped while the server
        # still kept the lease: whatever is still held is then resumed as if just taken.
        stale = sent >= self._deadline
        previous = dict(self._held)
        known = sorted(self._known)
        with anyio.move_on_after(self.ttl / 3) as scope:
            tick = await self.store.transaction(
                lambda sql: pg_leases.tick(sql, self.engine, self.ttl, known)
            )
        if scope.cancelled_caught:
            log.warning("leases not renewed in time: the database is slow or unreachable")
            await self._expire_locally()
            return
        self.live, self.shards = tick.live, tick.shards
        self._held = dict(tick.held)
        self._deadline = sent + self.ttl
        lost = [s for s, e in previous.items() if tick.held.get(s) != e]
        taken = [s for s, e in tick.held.items() if stale or previous.get(s) != e]
        for shard in lost:
            log.info("shard %s: lease lost", shard)
            await self._on_lost(shard)
        for shard in tick.excess:
            log.info("shard %s: handed over (over the fair share of %s engines)", shard, tick.live)
            self._held.pop(shard, None)
            await self._on_lost(shard)
        if tick.excess:
            excess = tick.excess
            await self.store.transaction(lambda sql: pg_leases.release(sql, self.engine, excess))
        for shard in taken:
            if shard in self._held:
                log.info("shard %s: taken at epoch %s", shard, self._held[shard])
                await self._on_taken(shard)
        if lost or taken or tick.excess:
            self._changed.set()
            self._changed = anyio.Event()

    async def _expire_locally(self) -> None:
        if anyio.current_time() < self._deadline:
            return
        held, self._held = list(self._held), {}
        for shard in held:
            log.info("shard %s: lease ran out before it was renewed", shard)
            await self._on_lost(shard)
        if held:
            self._changed.set()
            self._changed = anyio.Event()

    async def leave(self) -> None:
        """Free every shard at once and stop counting as live (a clean stop)."""
        self._held = {}
        with contextlib.suppress(GlamError):
            await self.store.transaction(lambda sql: pg_leases.leave(sql, self.engine))


class FencedStore(ReadThrough):
    """The ``EventStore`` port for one shard's appends: each carries the shard's fence, so the
    store refuses it once the lease moved on. Reads go to the log as they are."""

    _store: SharedLog

    def __init__(self, store: SharedLog, leases: LeaseManager, shard: str) -> None:
        self._store = store
        self._leases = leases
        self.shard = shard

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> list[RecordedEvent]:
        fence = self._leases.fence(self.shard)
        return await self._store.append_fenced(stream, events, expected_version, fence=fence)

    async def aclose(self) -> None:
        """The log is the engine's to close, not one shard's."""


if TYPE_CHECKING:

    def _conforms(store: FencedStore) -> EventStore:
        return store
