"""The runner when AWS misbehaves: unreadable alarms, throttled rollbacks, racing appends."""

from __future__ import annotations

import pytest

from engine.errors import AwsError, AwsThrottled
from tests.saga.support import NAME, World, desired

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def _alias(world: World) -> tuple[str, dict[str, float]]:
    alias = await world.aws.get_alias(NAME, "live")
    assert alias is not None
    return alias.function_version, dict(alias.routing)


async def test_alarms_that_cannot_be_read_roll_back() -> None:
    """A non-retryable DescribeAlarms error (AccessDenied) rolls back instead of promoting."""
    world = World()
    await world.deploy("d1", desired("v1", alarms=("errors",)), action="create")
    world.aws.set_alarm("errors", "ALARM")
    denied = AwsError("DescribeAlarms failed: AccessDeniedException", retryable=False)
    world.aws.fail_next("DescribeAlarms", denied, times=10_000)
    run = await world.deploy("d2", desired("v2", alarms=("errors",)))
    assert [f.outcome for f in run.finished] == ["rolled_back"]
    assert "cannot be read" in run.finished[0].reason
    assert await _alias(world) == ("1", {})


async def test_alarms_unreadable_through_the_bake_roll_back() -> None:
    """Throttled alarm reads through the whole bake: no promote on unwatched alarms."""
    world = World()
    await world.deploy("d1", desired("v1", alarms=("errors",)), action="create")
    world.aws.fail_next("DescribeAlarms", AwsThrottled("Rate exceeded"), times=10_000)
    run = await world.deploy("d2", desired("v2", alarms=("errors",)))
    assert [f.outcome for f in run.finished] == ["rolled_back"]
    assert "not read successfully" in run.finished[0].reason
    assert await _alias(world) == ("1", {})


async def test_alarm_reads_that_recover_before_the_end_promote() -> None:
    """A few throttled reads early in the bake are retried; the deployment promotes."""
    world = World()
    await world.deploy("d1", desired("v1", alarms=("errors",)), action="create")
    world.aws.set_alarm("errors", "OK")
    world.aws.fail_next("DescribeAlarms", AwsThrottled("Rate exceeded"), times=4)
    run = await world.deploy("d2", desired("v2", alarms=("errors",)))
    assert [f.outcome for f in run.finished] == ["succeeded"]
    assert await _alias(world) == ("2", {})
