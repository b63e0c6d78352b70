"""Test clocks, each an ``engine.ports.Clock``.

``ManualClock``
    Pure virtual time for the fast tests: it moves only when told (``advance``), or, with
    ``autojump=True``, straight to the deadline of whoever sleeps.

``AutojumpClock``
    For integration tests that run the real engine against real I/O (the embedded AWS over
    HTTP, SQLite, Git). Time is the real monotonic time plus an offset; whenever every task
    of the event loop is asleep on this clock or blocked on the others (an event, a lock, a
    queue, a task group, a plain ``sleep``), the clock jumps to the earliest deadline, and
    ``on_advance`` moves the embedded AWS's clock by the same amount (its Pending and
    InProgress timers, quota windows and latencies), so a 60 s bake, a 1 s Pending state and
    2 s polls cost no real time. Modelled on trio's ``autojump_clock`` and its
    ``wait_all_tasks_blocked``, approximated thus:

    - A task waiting for the outside world (an AWS answer, a database write in aiosqlite's
      thread, a worker thread, a child process) holds time still, so no deadline passes under
      a call in flight; real time goes on meanwhile, as it does for the proxy. What a task
      waits for is read from its coroutine chain: the innermost frame says whether it is an
      asyncio or anyio synchronisation primitive (blocked on the others) or anything else.
    - If the loop stays that way for ``patience`` real seconds (a server waiting for
      connections, a call slow on a loaded machine), the clock jumps anyway and ``stalls``
      counts it. Such a jump is harmless to the engine, whose waits count polls rather than
      measure time.
    - ``hold()`` stops the jumps (real time still flows) until ``release()``: a test that acts
      at a point of a run (an alarm set, an abort given during a bake) holds the clock in the
      ``on_event`` hook that sees the point, acts, then releases it. The other way round,
      a task inside ``detached()`` holds no time still, whatever it waits for (a child
      process that runs on its own clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import types
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel


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

# Innermost frames of a task blocked on the other tasks, not on the outside world:
# (the file's last two path parts, the function's qualified name; "*" for any).
_BLOCKED_ON_TASKS = {
    ("asyncio/locks.py", "*"),
    ("asyncio/queues.py", "*"),
    ("asyncio/tasks.py", "sleep"),
    ("asyncio/tasks.py", "wait"),
    ("asyncio/tasks.py", "_wait"),
    ("_backends/_asyncio.py", "Lock.acquire"),
    ("_backends/_asyncio.py", "Semaphore.acquire"),
    ("_backends/_asyncio.py", "TaskGroup.__aexit__"),
    # anyio's pytest plugin: the runner task waits for the test's own task.
    ("_backends/_asyncio.py", "TestRunner._call_in_runner_task"),
    ("_backends/_asyncio.py", "TestRunner._run_tests_and_fixtures"),
}


class AutojumpClock:
    """Real time plus jumps to the next deadline whenever the loop waits only on itself
    (module doc). ``on_advance(seconds)`` runs before each jump, to move another clock by as
    much (``engine.local.LocalAwsThread.advance_clock``); ``jumped`` is the total jumped."""

    def __init__(
        self,
        *,
        on_advance: Advance | None = None,
        patience: float = 0.5,
        base: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = base
        self._origin = base()
        self._start = datetime.now(UTC)
        self._offset = 0.0
        self.on_advance = on_advance
        self.patience = patience
        self.jumped = 0.0
        self.jumps = 0
        self.stalls = 0
        self._held = 0
        self._sleeping: dict[asyncio.Task[object], float] = {}  # task -> its deadline
        self._watcher: asyncio.Task[object] | None = None
        self._detached: set[asyncio.Task[object]] = set()
        self._moved: anyio.Event | None = None

    # -- reading ---------------------------------------------------------------------------

    def monotonic(self) -> float:
        return self._base() + self._offset

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic() - self._origin)

    # -- steering --------------------------------------------------------------------------

    @contextlib.contextmanager
    def detached(self) -> Iterator[None]:
        """While inside, the current task holds no time still, whatever it waits for: a
        child process that runs on its own clock, say."""
        task = asyncio.current_task()
        assert task is not None, "AutojumpClock runs on asyncio"
        self._detached.add(task)
        try:
            yield
        finally:
            self._detached.discard(task)

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
        self.jumps += 1
        now = self.monotonic()
        for task, deadline in list(self._sleeping.items()):
            if deadline <= now:  # awake from here on, before it even runs again
                del self._sleeping[task]
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
        deadline = self.monotonic() + seconds
        self._sleeping[task] = deadline
        try:
            while task in self._sleeping and (left := deadline - self.monotonic()) > 0:
                if self._watcher is None or self._watcher.done():
                    self._watcher = task
                if self._watcher is task:
                    await self._watch(deadline)
                    continue
                if self._moved is None:
                    self._moved = anyio.Event()
                with anyio.move_on_after(min(left, self.patience)):
                    await self._moved.wait()
        finally:
            self._sleeping.pop(task, None)
            if self._watcher is task:
                self._watcher = None
                self._wake()  # another sleeper takes the watch over

    async def _watch(self, deadline: float) -> None:
        """One sleeper watches the loop: it jumps once every other task is blocked on the
        others or asleep here, looking again ever less often while some are not. It stops
        watching at its own ``deadline``: held, the clock makes no jump, and a watcher that
        kept watching would sleep on past its deadline until the release (an operator
        loop's short nap, say, while a test holds the clock for a command to arrive)."""
        delay, waited = 0.0005, 0.0
        while self._sleeping and self.monotonic() < deadline:
            for _ in range(3):  # whatever is runnable runs first
                await anyio.lowlevel.checkpoint()
            if not self._held and self._sleeping:
                stalled = waited >= self.patience
                if stalled or self._all_blocked():
                    self.stalls += stalled
                    await self.advance(min(self._sleeping.values()) - self.monotonic())
                    return
            if self._moved is None:
                self._moved = anyio.Event()
            with anyio.move_on_after(delay):
                await self._moved.wait()
                return  # moved by someone else: the caller looks at its deadline again
            waited += delay
            delay = min(delay * 2, 0.01)
        return

    def _all_blocked(self) -> bool:
        me = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is me or task in self._sleeping or task in self._detached:
                continue
            if not _blocked_on_tasks(task):
                return False
        return True

    def _wake(self) -> None:
        moved, self._moved = self._moved, None
        if moved is not None:
            moved.set()


def _blocked_on_tasks(task: asyncio.Task[object]) -> bool:
    """Whether ``task`` waits for another task (an asyncio or anyio primitive, a task group,
    a plain sleep) rather than for the outside world or to be run."""
    waiter = getattr(task, "_fut_waiter", None)
    if waiter is None or waiter.done():
        return False  # runnable
    coro: Any = task.get_coro()
    innermost = None
    while coro is not None:
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        code = code or getattr(coro, "ag_code", None)
        if code is not None:
            innermost = code
        coro = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "gi_yieldfrom", None)
            or getattr(coro, "ag_await", None)
        )
        if type(coro).__name__ == "async_generator_asend":
            # ``async for`` awaits the generator through an object that does not name it.
            coro = next(
                (r for r in gc.get_referents(coro) if isinstance(r, types.AsyncGeneratorType)),
                None,
            )
    if innermost is None:
        return False
    where = "/".join(innermost.co_filename.replace("\\", "/").rsplit("/", 2)[-2:])
    return (where, "*") in _BLOCKED_ON_TASKS or (where, innermost.co_qualname) in _BLOCKED_ON_TASKS
