"""The clocks behind ``engine.ports.Clock``: the system clock, and the jumping test clock that
lets the integration tests wait for nothing."""

from __future__ import annotations

import time

import anyio
import pytest

from engine.runtime.clock import SystemClock
from engine.testing import AutojumpClock, ManualClock

pytestmark = pytest.mark.anyio


async def test_system_clock_sleeps_for_real_and_yields_for_no_time() -> None:
    clock = SystemClock()
    start = clock.monotonic()
    await clock.sleep(0.02)
    assert clock.monotonic() - start >= 0.02
    await clock.sleep(-1)  # a checkpoint, at once
    assert clock.now().tzinfo is not None


async def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock()
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(5)
        woke.append(clock.monotonic())

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.wait_all_tasks_blocked()
        clock.advance(4)
        await anyio.wait_all_tasks_blocked()
        assert woke == []
        clock.advance(1)
    assert woke == [5.0]


async def test_a_lone_sleeper_jumps_to_its_deadline_and_moves_the_other_clock() -> None:
    """A 60 s sleep costs no real time; the other clock is moved by exactly as much."""
    moved: list[float] = []

    async def advance(seconds: float) -> None:
        moved.append(seconds)

    clock = AutojumpClock(on_advance=advance)
    real, start = time.monotonic(), clock.monotonic()
    await clock.sleep(60)
    assert clock.monotonic() - start >= 60
    assert time.monotonic() - real < 5
    assert sum(moved) == pytest.approx(clock.jumped)
    assert clock.jumped == pytest.approx(60, abs=0.5)


async def test_sleepers_wake_in_deadline_order() -> None:
    clock = AutojumpClock()
    order: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        order.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, "bake", 60)
        tg.start_soon(sleeper, "poll", 2)
        tg.start_soon(sleeper, "pending", 1)
    assert order == ["pending", "poll", "bake"]


async def test_a_call_in_flight_holds_time_still() -> None:
    """While a task waits for the outside world (here a worker thread), no deadline passes:
    the 60 s sleeper wakes only after the thread's work is done."""
    clock = AutojumpClock(patience=30)
    events: list[str] = []

    async def call() -> None:
        await anyio.to_thread.run_sync(time.sleep, 0.2)
        events.append("call done")

    async def bake() -> None:
        await clock.sleep(60)
        events.append("bake done")

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        tg.start_soon(bake)
    assert events == ["call done", "bake done"]
    assert clock.stalls == 0


async def test_a_detached_wait_holds_no_time() -> None:
    """Waiting inside ``detached()`` (a child process on its own clock) does not hold the
    others' time still."""
    clock = AutojumpClock(patience=30)
    events: list[str] = []
    release = anyio.Event()

    async def child() -> None:
        with clock.detached():
            await anyio.to_thread.run_sync(release_later, release)
        events.append("child done")

    async def bake() -> None:
        await clock.sleep(60)
        events.append("bake done")
        release.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(child)
        tg.start_soon(bake)
    assert events == ["bake done", "child done"]


def release_later(event: anyio.Event) -> None:
    """A worker thread that ends once ``event`` is set (checked every few milliseconds)."""
    while not event.is_set():
        time.sleep(0.005)


async def test_hold_stops_the_jumps_until_released() -> None:
    clock = AutojumpClock()
    woke = anyio.Event()

    async def bake() -> None:
        await clock.sleep(60)
        woke.set()

    clock.hold()
    async with anyio.create_task_group() as tg:
        tg.start_soon(bake)
        await anyio.sleep(0.1)
        assert not woke.is_set()
        assert clock.jumped == 0
        clock.release()
        with anyio.fail_after(5):
            await woke.wait()
    assert clock.jumped == pytest.approx(60, abs=0.5)


async def test_a_task_blocked_elsewhere_does_not_freeze_time() -> None:
    """A task waiting on an event (as ``run(once=True)`` waits for its sagas) is blocked on
    the others, not on the outside world: the sleeper still jumps."""
    clock = AutojumpClock(patience=30)
    done = anyio.Event()

    async def waiter() -> None:
        await done.wait()

    async def bake() -> None:
        await clock.sleep(60)
        done.set()

    real = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        tg.start_soon(bake)
    assert time.monotonic() - real < 5
    assert clock.stalls == 0
