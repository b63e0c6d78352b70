"""An engine in shared mode: one of several on one PostgreSQL log, working on its leased shards.

``SharedRun`` is what ``Engine.run`` does instead of starting everything itself when the
configuration says ``shared``. It starts the lease task (``engine.runtime.leases``), and from
then on reacts to the shards it gains and loses:

    a function shard taken   its streams are folded from the log and every one with work in
                             flight is resumed (the recovery path of an engine's start)
    a function shard lost    its sagas are stopped at once (the appends they still try are
                             refused by the store anyway)
    the plan shard taken     the repository loops and the operator commands start here, their
                             appends fenced by that shard
    the plan shard lost      they stop

and it follows the log: an event for a function stream of a shard it holds (a request the
planner of another engine appended, an operator's command) starts that stream's saga here;
while it holds the plan shard, an operator command (``ops``) is handed over at once and a
repository added or removed through another engine's API (``repositories``) is watched or
dropped here.

Whatever an engine holds, it serves the HTTP API when asked (``--listen``): reads answer from
the shared log, and operator commands and repositories added through it are appended to the
log as the CLI appends them, for the plan shard's owner to act on. Its drift sweep reads only
the functions of the shards it leases, its findings appended through their fences.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from engine.events import RecordedEvent
from engine.events.operator import OPS_STREAM
from engine.events.registry import REPOSITORIES_STREAM
from engine.logs import get_logger
from engine.ports import EventStore
from engine.runtime.drift import DriftSweep
from engine.runtime.fleet import Fleet, Watch
from engine.runtime.leases import PLAN_SHARD, LeaseManager, SharedLog, shard_of
from engine.runtime.operators import Operators
from engine.runtime.report import read_log
from engine.runtime.supervisor import Supervisor

if TYPE_CHECKING:
    from engine.runtime.engine import Engine

log = get_logger("engine")

# Why a shared engine refuses ``--once`` (``glam run`` refuses it before opening anything).
SHARED_ONCE = (
    "--once runs one engine until its work is done, and a shared engine's work is its "
    "share of the log's: it runs until stopped, handing its shards over when it stops"
)
SHARED_ONCE_HINT = (
    "drop --once; for a one-off run, stop the shared engines and run glam run --once "
    "without --shared"
)


class SharedRun:
    """The shared-mode part of one engine run (see the module docstring). ``planning(True)``
    starts the repository loops and operators, ``planning(False)`` stops them."""

    def __init__(
        self,
        store: SharedLog,
        leases: LeaseManager,
        task_group: TaskGroup,
        supervisor: Supervisor,
        planning: Callable[[bool], Awaitable[None]],
        on_record: Callable[[RecordedEvent], Awaitable[None]],
    ) -> None:
        self._store = store
        self.leases = leases
        self._tg = task_group
        self._supervisor = supervisor
        self._planning = planning
        self._on_record = on_record

    async def taken(self, shard: str) -> None:
        if shard == PLAN_SHARD:
            await self._planning(True)
            return
        # In a task of its own: reading a long log must not hold up the lease renewals.
        self._tg.start_soon(self._resume, shard, name=f"glam resume {shard}")

    async def _resume(self, shard: str) -> None:
        async for record in read_log(self._store):
            if shard_of(record.stream) == shard:
                self._supervisor.recovering(record)
        if self.leases.holds(shard):
            self._supervisor.resume()

    async def lost(self, shard: str) -> None:
        if shard == PLAN_SHARD:
            await self._planning(False)
            return
        await self._supervisor.stop(s for s in self._supervisor.running if shard_of(s) == shard)

    async def start(self, position: int) -> None:
        """Take a first share and follow the log from ``position`` on."""
        await self.leases.start()
        self._tg.start_soon(self.leases.run, name="glam leases")
        self._tg.start_soon(self._follow, position + 1, name="glam shard follower")

    async def _follow(self, position: int) -> None:
        async for record in self._store.follow(position):
            await self._on_record(record)
            shard = shard_of(record.stream)
            if shard is None:
                continue
            self.leases.know(shard)
            if self.leases.holds(shard):
                self._supervisor.start(record.stream)
            await anyio.lowlevel.checkpoint()


class Planning:
    """What the plan shard's owner runs: the repository loops of ``fleet`` on ``watches()``,
    and ``tasks`` (the operator loop, the views), each in a cancel scope of its own so that
    losing the shard stops them all."""

    def __init__(
        self,
        task_group: TaskGroup,
        fleet: Fleet,
        watches: Callable[[], Iterable[Watch]],
        tasks: Sequence[Callable[[], Awaitable[None]]],
    ) -> None:
        self._tg = task_group
        self._fleet = fleet
        self._watches = watches
        self._tasks = tasks
        self._scopes: list[anyio.CancelScope] = []

    async def switch(self, on: bool) -> None:
        if not on:
            self._fleet.apply(())
            while self._scopes:
                self._scopes.pop().cancel()
            return
        self._fleet.apply(self._watches())
        self._fleet.start_loops()
        for task in self._tasks:
            scope = anyio.CancelScope()
            self._scopes.append(scope)
            self._tg.start_soon(self._run, task, scope, name="glam planning")

    @staticmethod
    async def _run(task: Callable[[], Awaitable[None]], scope: anyio.CancelScope) -> None:
        with scope:
            await task()


async def run_shared(
    engine: Engine, tg: TaskGroup, supervisor: Supervisor, fleet: Fleet, drift: DriftSweep
) -> None:
    """``engine.run`` in shared mode: work only on the shards leased here (see the module
    docstring)."""
    store: SharedLog = engine._log  # type: ignore[assignment]  # PostgreSQL, checked at init
    engine_id = engine.config.engine_id or _engine_id()
    leases = LeaseManager(
        store,
        engine_id,
        ttl=engine.config.lease_ttl,
        on_taken=lambda shard: shared.taken(shard),
        on_lost=lambda shard: shared.lost(shard),
    )

    def store_of(stream: str) -> EventStore | None:
        shard = shard_of(stream)
        return leases.store_for(shard) if shard is not None and leases.holds(shard) else None

    supervisor.store_of = drift.store_of = store_of
    engine._plan_store = leases.store_for(PLAN_SHARD)
    operators = Operators(
        engine._plan_store,
        fleet,
        policy=engine.config.policy,
        ids=engine.ids,
        on_event=engine._saw,
        start_saga=supervisor.start,
    )
    engine._operators = operators  # the API wakes it (it runs only while planning here)
    planner = Planning(
        tg,
        fleet,
        engine._watches,
        [
            lambda: operators.loop(engine.config.ops_poll, engine.clock),
            # One engine folds the views (the planner's), so no two save them at once.
            engine._project,
        ],
    )

    async def planning(on: bool) -> None:
        if on:  # what other engines' APIs added while another engine planned
            await engine._running_added().load()
        await planner.switch(on)

    async def on_record(record: RecordedEvent) -> None:
        drift.saw(record)
        if not leases.holds(PLAN_SHARD):
            return
        if record.stream == OPS_STREAM:
            operators.wake.set()
        elif record.stream == REPOSITORIES_STREAM:
            await engine._running_added().load()
            fleet.apply(engine._watches())

    shared = SharedRun(store, leases, tg, supervisor, planning, on_record)
    engine.shared = shared
    position = 0
    async for record in read_log(engine.store):
        position = record.position
        operators.recovering(record)
        drift.saw(record)
        if (shard := shard_of(record.stream)) is not None:
            leases.know(shard)
    log.info("engine %s: shared mode, leases of %.0f s", engine_id, engine.config.lease_ttl)
    await shared.start(position)


def _engine_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
