"""Holds through the engine, on the embedded AWS: ``glam hold``, ``extend``, ``resume`` and
``promote --step`` given (as the CLI gives them) while a canary bakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import pytest

from engine.events import RecordedEvent
from engine.events.function import (
    BakeExtended,
    DeploymentHeld,
    DeploymentResumed,
    StepSucceeded,
    TimerStarted,
    TrafficShifted,
)
from engine.local import LocalAwsThread
from engine.local.account import set_alarm_state
from engine.runtime.engine import RunReport
from tests.builders import events_of
from tests.ops.test_engine_operator import glam
from tests.runtime.support import ALARM, NAME, Setup, outcomes, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FAST = {"type": "ALL_AT_ONCE", "waitInterval": 0}
CANARY = {"type": "CANARY", "percent": 50, "waitInterval": 60}


@dataclass
class Seen:
    """Event types the engine appended, each with an anyio.Event set on first sight."""

    flags: dict[str, anyio.Event] = field(default_factory=dict)

    def flag(self, type_name: str) -> anyio.Event:
        return self.flags.setdefault(type_name, anyio.Event())

    def __call__(self, record: RecordedEvent) -> None:
        self.flag(record.event.type).set()


@asynccontextmanager
async def canary_running(setup: Setup, seen: Seen) -> AsyncIterator[Callable[[], RunReport]]:
    """Version 2's canary running in an engine, the clock held once the 50 % shift is made
    (the bake does not pass while the operator types); released when the block ends."""
    write_function(setup.repo, setup.outputs, traffic=FAST, alarms=(ALARM,))
    setup.repo.commit("add orders")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    write_function(setup.repo, setup.outputs, code="green", traffic=CANARY, alarms=(ALARM,))
    setup.repo.commit("green")

    def watch(record: RecordedEvent) -> None:
        if isinstance(record.event, TrafficShifted) and record.event.weight == 0.5:
            setup.clock.hold()
        seen(record)

    report = RunReport()
    async with setup.engine(on_event=watch, ops_poll=0.1) as engine:

        async def run() -> None:
            nonlocal report
            report = await engine.run(once=True)

        with anyio.fail_after(150):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await seen.flag("TrafficShifted").wait()
                yield lambda: report
                setup.clock.release()


async def command(setup: Setup, *args: str) -> None:
    """``glam ARGS FN`` in a process of its own, as an operator gives it."""
    code, output = await glam(
        *args[:1],
        NAME,
        *args[1:],
        "--reason",
        f"{args[0]} by hand",
        "--actor",
        "alice",
        "--db",
        str(setup.db),
    )
    assert code == 0, output


# Four ``glam`` processes, each a Python start-up and two log reads: slower than one deploy.
@pytest.mark.timeout(240)
async def test_hold_extend_resume_and_one_step_promote(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """A hold stops the canary's bake timer with what is left of it; an extend while held
    adds to that; resume starts the bake again for the rest; a one-step promote ends it, and
    the deployment promotes and finishes. Each is an event with actor and reason."""
    seen = Seen()
    async with canary_running(setup, seen) as report:
        await command(setup, "hold")
        await seen.flag("DeploymentHeld").wait()
        await command(setup, "extend", "--by", "10m")
        await seen.flag("BakeExtended").wait()
        await command(setup, "resume")
        await seen.flag("DeploymentResumed").wait()
        await command(setup, "promote", "--step")
    assert outcomes(report()) == ["succeeded"]
    records = await setup.events()
    [held] = events_of(records, DeploymentHeld)
    assert (held.actor, held.reason) == ("alice", "hold by hand")
    assert held.bake_left is not None
    assert 0 < held.bake_left <= 60
    [extended] = events_of(records, BakeExtended)
    assert (extended.seconds, extended.until) == (600, None)
    [resumed] = events_of(records, DeploymentResumed)
    assert resumed.actor == "alice"
    # The bake after the resume lasts what the hold left of it, plus the extension. Timers
    # are set on the engine's clock, ahead of the log's (real) recorded_at by what it jumped
    # before the hold; it makes no jump while held, so the first bake's 60 s measure it.
    at = next(i for i, r in enumerate(records) if isinstance(r.event, DeploymentResumed))
    timer = next(r for r in records[at:] if isinstance(r.event, TimerStarted))
    first = next(
        r
        for r in reversed(records[:at])
        if isinstance(r.event, TimerStarted) and r.event.purpose == "bake"
    )
    assert isinstance(timer.event, TimerStarted)
    assert isinstance(first.event, TimerStarted)
    assert timer.event.purpose == "bake"
    ahead = (first.event.until - first.recorded_at).total_seconds() - 60
    lasts = (timer.event.until - timer.recorded_at).total_seconds() - ahead
    assert held.bake_left + 600 - 1 <= lasts <= held.bake_left + 600 + 1
    steps = [str(e.step) for e in events_of(records, StepSucceeded)]
    assert "wait:operator_step" in steps
    updates = [
        (e.version, dict(e.routing or {}))
        for e in local_aws.journal.calls("UpdateAlias", function=NAME)
        if 200 <= e.status < 300
    ]
    assert updates[-2:] == [("1", {"2": 0.5}), ("2", {})]
    local_aws.journal.check_invariants()


async def test_a_held_canary_still_rolls_back_on_an_alarm(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """Held, the alarms are still watched: one in ALARM rolls the canary back."""
    seen = Seen()
    async with canary_running(setup, seen) as report:
        await command(setup, "hold")
        await seen.flag("DeploymentHeld").wait()
        await set_alarm_state(setup.endpoint_url, ALARM, "ALARM", region=setup.region)
        await seen.flag("RollbackStarted").wait()
    assert outcomes(report()) == ["rolled_back"]
    updates = [
        (e.version, dict(e.routing or {}))
        for e in local_aws.journal.calls("UpdateAlias", function=NAME)
        if 200 <= e.status < 300
    ]
    assert updates[-1] == ("1", {})
    local_aws.journal.check_invariants()
