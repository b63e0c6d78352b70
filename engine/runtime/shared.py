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
planner of another engine appended, an operator's command) starts that stream's saga here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup

from engine.runtime.leases import PLAN_SHARD, LeaseManager, SharedLog, shard_of
from engine.runtime.report import read_log
from engine.runtime.supervisor import Supervisor


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
    ) -> None:
        self._store = store
        self.leases = leases
        self._tg = task_group
        self._supervisor = supervisor
        self._planning = planning

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
            shard = shard_of(record.stream)
            if shard is None:
                continue
            self.leases.know(shard)
            if self.leases.holds(shard):
                self._supervisor.start(record.stream)
            await anyio.lowlevel.checkpoint()
