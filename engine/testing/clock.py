"""Test clocks, each an ``engine.ports.Clock``.

``ManualClock``
    Pure virtual time for the fast tests: it moves only when told (``advance``), or, with
    ``autojump=True``, straight to the deadline of whoever sleeps.

``AutojumpClock``
    For integration tests that run the real engine against real I/O (the embedded AWS over
    HTTP, SQLite, Git). Time is the real monotonic time plus an offset; whenever every task
    that sleeps on the clock is asleep, the clock jumps to the earliest deadline, and
    ``on_advance`` moves the embedded AWS's clock by the same amount (its Pending and
    InProgress timers, quota windows and latencies), so a 60 s bake, a 1 s Pending state and
    2 s polls cost no real time. Modelled on trio's ``autojump_clock``, approximated thus:

    - A task takes part from its first sleep on this clock until it ends. Tasks that never
      sleep on it (a store's writer, the test itself) do not hold time back.
    - The clock jumps only while every live participant is asleep on it: one waiting for an
      AWS answer, a database write or a thread holds time still, so no deadline passes
      under a call in flight. Real time goes on meanwhile, as it does for the proxy.
    - A participant blocked on something else than the clock for ``stall`` real seconds
      (waiting for a lock another sleeper holds, say) no longer holds time back: the clock
      jumps anyway, and ``stalls`` counts how often it had to.
    - ``hold()`` stops the jumps (real time still flows) until ``release()``: a test that acts
      at a point of a run (an alarm set, an abort given during a bake) holds the clock in the
      ``on_event`` hook that sees the point, acts, then releases it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel

log = logging.getLogger(__name__)


class ManualClock:
    """Time that moves only when told: ``advance()`` wakes sleepers whose deadline passed.

    With ``autojump=True`` a sleeper moves time straight to its deadline instead of waiting,
    so a saga with a ten-minute bake runs in microseconds. ``sleeps`` records every deadline
    slept until, for assertions.
    """

    def __init__(self, start: datetime | None = None, *, autojump: bool = False) -> None:
        self._now = start or datetime(2025, 1, 1, tzinfo=UTC)
        self._origin = self._now
        self.autojump = autojump
        self.sleeps: list[datetime] = []
        # Created on first sleep: an anyio Event needs a running event loop.
        self._changed: anyio.Event | None = None

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return (self._now - self._origin).total_seconds()

    def set(self, moment: datetime) -> None:
        """Move time to ``moment`` (never backwards) and wake whoever is due."""
        if moment > self._now:
            self._now = moment
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.set(self._now + timedelta(seconds=seconds))

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + timedelta(seconds=max(0.0, seconds)))

    async def sleep_until(self, deadline: datetime) -> None:
        self.sleeps.append(deadline)
        if self.autojump:
            self.set(deadline)
            await anyio.lowlevel.checkpoint()
            return
        await anyio.lowlevel.checkpoint()
        while self._now < deadline:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()


Advance = Callable[[float], Awaitable[object]]


class AutojumpClock:
    """Real time plus jumps to the next deadline whenever every sleeper waits (module doc).

    ``on_advance(seconds)`` runs before each jump, to move another clock by as much (the
    embedded AWS's: ``engine.local.LocalAwsThread.advance_clock``). ``jumped`` is the total
    jumped, ``stalls`` how many jumps a participant blocked elsewhere had to let through.
    """

    def __init__(
        self,
        *,
        on_advance: Advance | None = None,
        stall: float = 1.0,
        base: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = base
        self._origin = base()
        self._start = datetime.now(UTC)
        self._offset = 0.0
        self.on_advance = on_advance
        self.stall = stall
        self.jumped = 0.0
        self.stalls = 0
        self._held = 0
        self._jumping = False
        self._sleeping: dict[asyncio.Task[object], float] = {}  # task -> its deadline
        self._awake_since: dict[asyncio.Task[object], float] = {}  # participants awake
        self._moved: anyio.Event | None = None

    # -- reading ---------------------------------------------------------------------------

    def monotonic(self) -> float:
        return self._base() + self._offset

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic() - self._origin)

    # -- steering --------------------------------------------------------------------------

    def hold(self) -> None:
        """No jumps until as many ``release()`` calls (real time still passes)."""
        self._held += 1

    def release(self) -> None:
        self._held = max(0, self._held - 1)
        self._wake()

    async def advance(self, seconds: float) -> None:
        """Jump ``seconds`` ahead now (moving the other clock too), whoever sleeps."""
        if seconds <= 0:
            return
        if self.on_advance is not None:
            await self.on_advance(seconds)
        self._offset += seconds
        self.jumped += seconds
        now, real = self.monotonic(), self._base()
        for task, deadline in list(self._sleeping.items()):
            if deadline <= now:  # awake from here on, before it even runs again
                del self._sleeping[task]
                self._awake_since[task] = real
        self._wake()

    # -- sleeping --------------------------------------------------------------------------

    async def sleep_until(self, deadline: datetime) -> None:
        await self.sleep((deadline - self.now()).total_seconds())

    async def sleep(self, seconds: float) -> None:
        await anyio.lowlevel.checkpoint()
        if seconds <= 0:
            return
        task = asyncio.current_task()
        assert task is not None, "AutojumpClock runs on asyncio"
        if task not in self._awake_since and task not in self._sleeping:
            # A participant from now on; its end may be what lets the others' time move.
            task.add_done_callback(self._ended)
        deadline = self.monotonic() + seconds
        self._awake_since.pop(task, None)
        self._sleeping[task] = deadline
        try:
            while task in self._sleeping and (left := deadline - self.monotonic()) > 0:
                if self._may_jump():
                    await self._jump()
                    continue
                if self._moved is None:
                    self._moved = anyio.Event()
                # Woken by a jump, a release or a participant's end; the timeout is for the
                # deadline in real time and for the stall rule.
                with anyio.move_on_after(min(left, self.stall)):
                    await self._moved.wait()
        finally:
            self._sleeping.pop(task, None)
            if not task.done():
                self._awake_since[task] = self._base()

    def _may_jump(self) -> bool:
        if self._held or self._jumping or not self._sleeping:
            return False
        awake = [t for t in self._awake_since if not t.done()]
        if not awake:
            return True
        real = self._base()
        if all(real - self._awake_since[t] >= self.stall for t in awake):
            # Blocked elsewhere for a while (on a lock, an event, the whole run): they no
            # longer hold time back, until their next sleep makes them take part again.
            for t in awake:
                del self._awake_since[t]
            self.stalls += 1
            log.debug("test clock: %d task(s) blocked for %.1fs, jumping", len(awake), self.stall)
            return True
        return False

    async def _jump(self) -> None:
        self._jumping = True
        try:
            # Let whatever is runnable run first: it may be about to make a call or sleep.
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            if self._held or not self._sleeping or self._awake_since_live():
                return
            step = min(self._sleeping.values()) - self.monotonic()
            await self.advance(step)
        finally:
            self._jumping = False

    def _awake_since_live(self) -> bool:
        return any(not t.done() for t in self._awake_since)

    def _ended(self, task: asyncio.Task[object]) -> None:
        self._awake_since.pop(task, None)
        self._sleeping.pop(task, None)
        self._wake()

    def _wake(self) -> None:
        moved, self._moved = self._moved, None
        if moved is not None:
            moved.set()
