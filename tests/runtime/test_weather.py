"""Weather the engine rides out: AWS failing or throttling its first call at start-up
(redteam F8/L1), and the system clock jumping during a bake."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from engine.errors import AwsInvalid, AwsThrottled
from engine.events import RecordedEvent
from engine.events.function import StepSucceeded, TimerStarted
from engine.local import LocalAwsThread
from engine.runtime.clock import SystemClock
from engine.runtime.engine import Engine
from engine.runtime.startup import first_account
from tests.runtime.support import Setup, outcomes, write_function

pytestmark = pytest.mark.anyio


# -- start-up --------------------------------------------------------------------------------


class Flaky:
    """A ports provider whose ``account()`` fails with ``errors`` in turn, then answers."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def account(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "123456789012"


async def test_transient_errors_at_start_are_retried_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky = Flaky(AwsThrottled("GetCallerIdentity failed: Throttling"), AwsThrottled("again"))
    with caplog.at_level(logging.WARNING, logger="glam.engine"):
        account = await first_account(flaky, backoff=(0.01, 0.02))  # type: ignore[arg-type]
    assert (account, flaky.calls) == ("123456789012", 3)
    warnings = [r.getMessage() for r in caplog.records if "at start-up" in r.getMessage()]
    assert len(warnings) == 2
    assert "attempt 1: GetCallerIdentity failed: Throttling" in warnings[0]


async def test_an_error_that_cannot_clear_ends_the_start_at_once() -> None:
    flaky = Flaky(AwsInvalid("GetCallerIdentity failed: InvalidClientTokenId"))
    with pytest.raises(AwsInvalid):
        await first_account(flaky, backoff=(10.0, 10.0))  # type: ignore[arg-type]
    assert flaky.calls == 1


async def test_weather_that_lasts_past_the_deadline_ends_the_start() -> None:
    flaky = Flaky(*(AwsThrottled("Throttling") for _ in range(100)))
    with anyio.fail_after(5), pytest.raises(AwsThrottled):
        await first_account(flaky, retry_for=0.3, backoff=(0.05, 0.1))  # type: ignore[arg-type]
    assert 2 <= flaky.calls < 100


@pytest.mark.integration
@pytest.mark.parametrize("fault", ["error=1", "throttle=1"])
async def test_the_engine_starts_and_deploys_once_sts_answers(
    setup: Setup, local_aws: LocalAwsThread, fault: str
) -> None:
    """Redteam F8: ``GetCallerIdentity`` failing (500) or throttled (429) at start made
    ``glam run`` exit 1 within a second. It waits, then starts and reconciles."""
    write_function(setup.repo, setup.outputs)
    setup.repo.commit("add orders")
    local_aws.set_faults(f"GetCallerIdentity:{fault}")

    def refused() -> int:
        return len([e for e in local_aws.journal.calls("GetCallerIdentity") if e.fault])

    async def clear_later() -> None:
        # Once the engine was refused twice (it kept asking), AWS answers again. Looked at on
        # the engine's clock, which jumps: every 0.05 s of it, so between two of the engine's
        # attempts (its first backoff is 0.25 s or more), however fast the jumps are.
        with anyio.fail_after(30):
            while refused() < 2:
                await setup.clock.sleep(0.05)
        local_aws.set_faults("")

    async with anyio.create_task_group() as tg:
        tg.start_soon(clear_later)
        report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    assert refused() >= 2


# -- the clock jumping during a bake -----------------------------------------------------------


class JumpingWall:
    """The system's wall clock, moved by ``jump`` as an operator or NTP would step it."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def jump(self, by: timedelta) -> None:
        self.offset += by


class WallClock(SystemClock):
    """What the engine's clock was: the wall clock read at each call."""

    def now(self) -> datetime:
        return self._wall()


BAKE = 2.0


async def _bake_seconds(setup: Setup, clock: SystemClock, wall: JumpingWall, jump: float) -> float:
    """Deploy a new version (CANARY 50 %, a 2 s bake) with the wall clock stepped by ``jump``
    seconds half a second into the first bake; how long that bake lasted (monotonic)."""
    started: list[float] = []
    ended: list[float] = []
    baking = anyio.Event()

    def seen(record: RecordedEvent) -> None:
        event = record.event
        if isinstance(event, TimerStarted) and event.purpose == "bake" and not started:
            started.append(time.monotonic())
            baking.set()
        elif isinstance(event, StepSucceeded) and str(event.step) == "wait:bake" and not ended:
            ended.append(time.monotonic())

    async def jump_in_the_bake() -> None:
        await baking.wait()
        await anyio.sleep(0.5)
        wall.jump(timedelta(seconds=jump))

    traffic = {"type": "CANARY", "percent": 50, "waitInterval": int(BAKE)}
    write_function(setup.repo, setup.outputs, code="green", traffic=traffic)
    setup.repo.commit("green")
    engine = Engine(setup.config(), clock=clock, on_event=seen)
    async with engine, anyio.create_task_group() as tg:
        tg.start_soon(jump_in_the_bake)
        with anyio.fail_after(60):
            report = await engine.run(once=True)
        tg.cancel_scope.cancel()  # no bake seen: the assertions below say so
    assert outcomes(report) == ["succeeded"], report
    assert started, "no bake started"
    assert ended, "no bake ended"
    return ended[0] - started[0]


@pytest.mark.integration
@pytest.mark.parametrize("hours", [1, -1], ids=["forward", "backward"])
async def test_a_clock_jump_neither_ends_a_bake_early_nor_stalls_it(
    setup: Setup, hours: int
) -> None:
    """An hour forward used to end the bake at once (unwatched promotion), an hour back to
    stall it for an hour. The bake measures elapsed time."""
    write_function(setup.repo, setup.outputs)
    setup.repo.commit("blue")
    await setup.run_once()
    wall = JumpingWall()
    took = await _bake_seconds(setup, SystemClock(wall=wall), wall, hours * 3600.0)
    assert BAKE - 0.1 <= took <= BAKE + 3.0


@pytest.mark.integration
async def test_a_wall_clock_bake_would_end_early(setup: Setup) -> None:
    """The control: read at each call, the wall clock's jump ends the bake at once."""
    write_function(setup.repo, setup.outputs)
    setup.repo.commit("blue")
    await setup.run_once()
    wall = JumpingWall()
    took = await _bake_seconds(setup, WallClock(wall=wall), wall, 3600.0)
    assert took < BAKE - 0.5
