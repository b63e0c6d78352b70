"""The saga runner against the in-memory AWS, event sources and store, on a manual clock."""

from __future__ import annotations

from datetime import timedelta

import anyio
import anyio.lowlevel
import pytest

from engine.errors import AwsInvalid
from engine.events.desired import TrafficShifting
from engine.saga import fold, initial_state
from tests.saga.support import NAME, STREAM, World, desired

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(20)]


async def _alias(world: World) -> tuple[str, dict[str, float]]:
    alias = await world.aws.get_alias(NAME, "live")
    assert alias is not None
    return alias.function_version, dict(alias.routing)


async def _published(world: World) -> list[str]:
    return [v.version for v in await world.aws.list_versions(NAME) if v.version != "$LATEST"]


async def test_first_deployment_creates_publishes_and_aliases() -> None:
    """A create runs CreateFunction without publishing, waits Active, publishes, aliases."""
    world = World()
    run = await world.deploy("d1", desired("v1"), action="create")
    assert [f.outcome for f in run.finished] == ["succeeded"]
    assert run.finished[0].stable_version == "1"
    assert await _alias(world) == ("1", {})
    assert world.aws.calls("CreateFunction")[0]["Publish"] is False


@pytest.mark.parametrize(
    ("traffic", "expected", "bakes"),
    [
        pytest.param(TrafficShifting(type="CANARY", percent=20), [0.2, 1.0], 2, id="canary"),
        pytest.param(TrafficShifting(type="LINEAR", percent=40), [0.4, 0.8, 1.0], 3, id="linear"),
        pytest.param(TrafficShifting(type="ALL_AT_ONCE"), [1.0], 1, id="all-at-once"),
        pytest.param(None, [1.0], 0, id="one-switch"),
    ],
)
async def test_update_shifts_by_schedule_then_promotes(
    traffic: TrafficShifting | None, expected: list[float], bakes: int
) -> None:
    """An update shifts by its schedule, the promote being the 100 % step, bakes after every
    step (the promote too) when it has a schedule, then deletes the old version."""
    world = World()
    await world.deploy("d1", desired("v1", traffic=traffic), action="create")
    start = world.clock.now()
    run = await world.deploy("d2", desired("v2", traffic=traffic))
    assert [f.outcome for f in run.finished] == ["succeeded"]
    assert await world.weights("d2") == expected
    timers = [e for e in await world.events("TimerStarted") if e.purpose == "bake"]
    assert len(timers) == bakes
    assert world.clock.now() - start >= timedelta(seconds=60 * bakes)
    assert await _alias(world) == ("2", {})
    assert await _published(world) == ["2"]
    # One alias update per step: the 100 % step is the promote itself.
    assert len(world.aws.calls("UpdateAlias")) == len(expected)
    # The publish has no Description: the version keeps the function's (the user's).
    assert world.aws.calls("PublishVersion")[-1]["Description"] is None


async def test_keeps_old_version_when_asked() -> None:
    """deleteOldVersion false keeps the previous version after promote."""
    world = World()
    await world.deploy("d1", desired("v1", delete_old_version=False), action="create")
    await world.deploy("d2", desired("v2", delete_old_version=False))
    assert await _published(world) == ["1", "2"]


@pytest.mark.parametrize(
    "alarm_state", [pytest.param("ALARM", id="alarm"), pytest.param(None, id="missing-alarm")]
)
async def test_alarm_rolls_back(alarm_state: str | None) -> None:
    """An alarm in ALARM, or a configured alarm that does not exist, rolls back."""
    world = World()
    await world.deploy("d1", desired("v1", alarms=("errors",)), action="create")
    if alarm_state:
        world.aws.set_alarm("errors", alarm_state)
    run = await world.deploy("d2", desired("v2", alarms=("errors",)))
    assert [(f.outcome, f.stable_version) for f in run.finished] == [("rolled_back", "1")]
    assert await _alias(world) == ("1", {})
    assert await _published(world) == ["1"]
    # Read once before any weight moved: the alias was never shifted.
    assert await world.weights("d2") == []
    assert world.aws.calls("UpdateAlias") == []


async def test_insufficient_data_does_not_roll_back() -> None:
    """INSUFFICIENT_DATA is not a reason to roll back."""
    world = World()
    world.aws.set_alarm("errors", "INSUFFICIENT_DATA")
    await world.deploy("d1", desired("v1", alarms=("errors",)), action="create")
    run = await world.deploy("d2", desired("v2", alarms=("errors",)))
    assert [f.outcome for f in run.finished] == ["succeeded"]


async def test_readiness_never_reached_rolls_back() -> None:
    """A new version that never becomes Active in time is rolled back before any shift."""
    world = World()
    await world.deploy("d1", desired("v1"), action="create")
    real = world.aws.get_function

    async def never_active(name: str, qualifier: str | None = None):
        info = await real(name, qualifier)
        if qualifier is not None and info is not None:
            from dataclasses import replace

            return replace(info, state="Pending")
        return info

    world.aws.get_function = never_active  # type: ignore[method-assign]
    run = await world.deploy("d2", desired("v2"))
    assert [f.outcome for f in run.finished] == ["rolled_back"]
    assert "not Active" in run.finished[0].reason
    assert await world.weights("d2") == []
    assert await _alias(world) == ("1", {})
    assert await _published(world) == ["1"]


async def test_first_deployment_failure_finishes_failed() -> None:
    """A first deployment that fails has nothing to roll back to and says so."""
    world = World()
    world.aws.fail_next("PublishVersion", AwsInvalid("bad", code="InvalidParameterValueException"))
    run = await world.deploy("d1", desired("v1"), action="create")
    assert [f.outcome for f in run.finished] == ["failed"]
    assert "no stable version" in run.finished[0].reason


async def test_delete_detaches_then_deletes_function() -> None:
    """A delete detaches sources, deletes the function and records FunctionDeleted."""
    world = World()
    await world.deploy("d1", desired("v1"), action="create")
    run = await world.deploy("d2", None, action="delete")
    assert [f.outcome for f in run.finished] == ["succeeded"]
    assert world.aws.function_names() == []
    assert "FunctionDeleted" in await world.types()


async def test_sources_only_change_publishes_nothing() -> None:
    """Same code and configuration with other sources reconciles sources, no new version."""
    world = World()
    await world.deploy("d1", desired("v1"), action="create")
    run = await world.deploy("d2", desired("v1"))
    assert [f.outcome for f in run.finished] == ["succeeded"]
    assert len(world.aws.calls("PublishVersion")) == 1
    assert await _alias(world) == ("1", {})


async def test_supersede_mid_canary() -> None:
    """A newer request during a bake rolls the current one back, then deploys the newer."""
    world = World()
    await world.deploy("d1", desired("v1"), action="create")
    world.clock.autojump = False
    await world.request("d2", desired("v2"))

    async def newer_during_bake() -> None:
        while 0.2 not in await world.weights("d2"):
            await anyio.lowlevel.checkpoint()
        await world.request("d3", desired("v3"))
        world.clock.autojump = True
        world.clock.advance(60)

    async with anyio.create_task_group() as tg:
        tg.start_soon(newer_during_bake)
        run = await world.run()
    assert [(f.deployment_id, f.outcome) for f in run.finished] == [
        ("d2", "superseded"),
        ("d3", "succeeded"),
    ]
    assert await world.weights("d2") == [0.2, 0.0]
    assert await world.weights("d3") == [0.2, 1.0]
    assert await _alias(world) == ("3", {})
    assert await _published(world) == ["3"]


@pytest.mark.parametrize(
    "operation",
    [
        "CreateFunction",
        "PublishVersion",
        "CreateAlias",
    ],
)
async def test_lost_response_on_create_is_resolved_by_read(operation: str) -> None:
    """A mutation whose response is lost is resolved by a read and never repeated blindly."""
    world = World()
    world.aws.apply_then_fail(operation)
    run = await world.deploy("d1", desired("v1"), action="create")
    assert [f.outcome for f in run.finished] == ["succeeded"]
    assert len(world.aws.calls(operation)) == 1
    assert await _published(world) == ["1"]


@pytest.mark.parametrize(
    "operation",
    ["UpdateFunctionCode", "PublishVersion", "UpdateAlias", "DeleteFunction"],
)
async def test_lost_response_on_update_converges(operation: str) -> None:
    """Apply-then-fail on an update's mutations converges with no duplicate version."""
    world = World()
    await world.deploy("d1", desired("v1"), action="create")
    world.aws.apply_then_fail(operation)
    run = await world.deploy("d2", desired("v2"))
    assert [f.outcome for f in run.finished] == ["succeeded"]
    assert await _alias(world) == ("2", {})
    assert await _published(world) == ["2"]
    assert len(world.aws.calls("PublishVersion")) == 2


async def test_crash_after_publish_adopts_the_version() -> None:
    """A restart after an unrecorded publish adopts the version instead of publishing again."""
    world = World()
    await world.deploy("d1", desired("v1"), action="create")
    await world.request("d2", desired("v2"))
    original = world.aws.publish_version

    async def publish_then_crash(*args, **kwargs):
        await original(*args, **kwargs)
        raise KeyboardInterrupt  # the process dies before the outcome is recorded

    world.aws.publish_version = publish_then_crash  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        await world.run()
    assert (await world.types())[-1] == "StepStarted"
    world.aws.publish_version = original  # type: ignore[method-assign]
    run = await world.run()
    assert [f.outcome for f in run.finished] == ["succeeded"]
    assert len(world.aws.calls("PublishVersion")) == 2  # d1's and d2's, never a third
    assert await _published(world) == ["2"]


async def test_durable_timer_waits_only_what_is_left() -> None:
    """After a restart mid-bake the runner waits until the recorded deadline, not a new one."""
    world = World()
    await world.deploy("d1", desired("v1"), action="create")
    world.clock.autojump = False
    await world.request("d2", desired("v2"))
    with anyio.move_on_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(world.run)
            while not await world.events("TimerStarted"):
                await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
    timer = (await world.events("TimerStarted"))[0]
    world.clock.advance(40)
    world.clock.autojump = True
    world.clock.sleeps.clear()
    await world.run()
    assert world.clock.sleeps[0] <= timer.until
    assert len([e for e in await world.events("TimerStarted") if e.purpose == "bake"]) == 2
    state = fold(initial_state(NAME), [r.event for r in await world.store.read_stream(STREAM)])
    assert state.idle


async def test_an_alarm_in_the_bake_after_the_promote_rolls_back() -> None:
    """The bake after the promote is watched too: an alarm there puts the alias back on the
    old version with routing cleared and deletes the new one; the old version was kept."""
    world = World()
    await world.deploy("d1", desired("v1", alarms=("errors",)), action="create")
    world.aws.set_alarm("errors", "OK")
    original = world.aws.update_alias
    calls = 0

    async def update_alias(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        result = await original(*args, **kwargs)  # type: ignore[arg-type]
        if calls == 2:  # the promote: the new version's errors show only now
            world.aws.set_alarm("errors", "ALARM")
        return result

    world.aws.update_alias = update_alias  # type: ignore[method-assign,assignment]
    run = await world.deploy("d2", desired("v2", alarms=("errors",)))
    assert [(f.outcome, f.stable_version) for f in run.finished] == [("rolled_back", "1")]
    assert await world.weights("d2") == [0.2, 1.0, 0.0]
    assert await _alias(world) == ("1", {})
    assert await _published(world) == ["1"]
