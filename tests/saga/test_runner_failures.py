"""The runner when AWS misbehaves: unreadable alarms, throttled rollbacks, racing appends."""

from __future__ import annotations

import itertools

import pytest

from engine.errors import AwsError, AwsThrottled
from engine.events.desired import EventSources
from tests.saga.support import NAME, STREAM, World, desired

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


async def test_alarms_unreadable_before_the_first_shift_roll_back() -> None:
    """Alarm reads throttled from the start: the one read before any weight moves never
    succeeds, so nothing is shifted onto unwatched alarms."""
    world = World()
    await world.deploy("d1", desired("v1", alarms=("errors",)), action="create")
    world.aws.fail_next("DescribeAlarms", AwsThrottled("Rate exceeded"), times=10_000)
    run = await world.deploy("d2", desired("v2", alarms=("errors",)))
    assert [f.outcome for f in run.finished] == ["rolled_back"]
    assert "not read successfully" in run.finished[0].reason
    assert await _alias(world) == ("1", {})
    assert world.aws.calls("UpdateAlias") == []


async def test_alarm_reads_that_recover_before_the_end_promote() -> None:
    """A few throttled reads are retried, also in the one read before any weight moves;
    the deployment promotes."""
    world = World()
    await world.deploy("d1", desired("v1", alarms=("errors",)), action="create")
    world.aws.set_alarm("errors", "OK")
    world.aws.fail_next("DescribeAlarms", AwsThrottled("Rate exceeded"), times=2)
    run = await world.deploy("d2", desired("v2", alarms=("errors",)))
    assert [f.outcome for f in run.finished] == ["succeeded"]
    assert await _alias(world) == ("2", {})


def _alarm_after_first_shift(world: World, then_fail: AwsError, times: int) -> None:
    """The first UpdateAlias (the canary shift) succeeds and sets the alarm off; the next
    ``times`` UpdateAlias calls (the rollback) raise ``then_fail``."""
    original = world.aws.update_alias
    calls = 0

    async def update_alias(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            result = await original(*args, **kwargs)  # type: ignore[arg-type]
            world.aws.set_alarm("errors", "ALARM")
            return result
        if calls <= 1 + times:
            raise then_fail
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    world.aws.update_alias = update_alias  # type: ignore[method-assign,assignment]


async def test_throttled_rollback_retries_until_the_alias_is_back() -> None:
    """Many throttled UpdateAlias calls during a rollback are retried with capped backoff;
    the deployment finishes only with the alias back on the stable version."""
    world = World()
    await world.deploy("d1", desired("v1", alarms=("errors",)), action="create")
    world.aws.set_alarm("errors", "OK")
    _alarm_after_first_shift(world, AwsThrottled("Rate exceeded"), times=20)
    run = await world.deploy("d2", desired("v2", alarms=("errors",)))
    assert [f.outcome for f in run.finished] == ["rolled_back"]
    assert await _alias(world) == ("1", {})
    backoffs = [e for e in await world.events("TimerStarted") if e.purpose == "backoff"]
    gaps = [(b.until - a.until).total_seconds() for a, b in itertools.pairwise(backoffs)]
    assert max(gaps) <= world.policy.retry.max_backoff + 1


async def test_rollback_refused_finishes_failed_naming_the_alias_state() -> None:
    """A non-retryable error while rolling the alias back finishes "failed" with a reason that
    says where the alias is and what the operator must do."""
    world = World()
    await world.deploy("d1", desired("v1", alarms=("errors",)), action="create")
    world.aws.set_alarm("errors", "OK")
    _alarm_after_first_shift(world, AwsError("UpdateAlias failed: AccessDenied"), times=1)
    run = await world.deploy("d2", desired("v2", alarms=("errors",)))
    assert [f.outcome for f in run.finished] == ["failed"]
    reason = run.finished[0].reason
    assert "may still send traffic to version 2" in reason
    assert "set it to version 1 with no additional version weights" in reason


async def test_unexpected_port_error_fails_the_deployment_not_the_runner() -> None:
    """A port raising something that is not an AwsError (two mappings of one source reach the
    reconciler) is recorded as a failed step; the runner returns normally."""
    world = World()
    queue = {"EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:q"}
    twice = EventSources(mappings=({**queue, "BatchSize": 10}, {**queue, "BatchSize": 5}))
    want = desired("v1").model_copy(update={"event_sources": twice})
    run = await world.deploy("d1", want, action="create")
    assert [f.outcome for f in run.finished] == ["failed"]
    failed = await world.events("StepFailed")
    assert [(str(f.step), f.error_code, f.retryable) for f in failed] == [
        ("sources", "ValueError", False)
    ]


async def test_alias_on_latest_is_switched_to_the_new_version() -> None:
    """An alias made outside glam that points at $LATEST has no stable version: the update
    switches it to the new version without routing."""
    world = World()
    await world.deploy("d1", desired("v1"), action="create")
    from engine.testing.aws_records import Alias

    # Lambda allows it; the fake's UpdateAlias (like glam) refuses, so set it directly.
    world.aws._functions[NAME].aliases["live"] = Alias("live", "$LATEST", {}, "r9")
    run = await world.deploy("d2", desired("v2"))
    assert [f.outcome for f in run.finished] == ["succeeded"]
    assert await _alias(world) == ("2", {})
    assert await world.weights("d2") == []


async def test_environment_values_never_reach_a_failed_step() -> None:
    """An AWS message that quotes an environment value is recorded with the value masked."""
    world = World()
    await world.deploy("d1", desired("v1"), action="create")
    want = desired("v2")
    definition = {**want.definition, "Environment": {"Variables": {"DB_PASSWORD": "s3cr3t-pw"}}}
    want = want.model_copy(update={"definition": definition})
    echo = AwsError(
        "UpdateFunctionConfiguration failed: bad value s3cr3t-pw. String measured: {...}",
        retryable=False,
    )
    world.aws.fail_next("UpdateFunctionConfiguration", echo)
    run = await world.deploy("d2", want)
    assert [f.outcome for f in run.finished] == ["rolled_back"]
    failed = await world.events("StepFailed")
    assert failed
    records = await world.store.read_stream(STREAM)
    # The request carries the desired state by design; nothing recorded after it repeats it.
    recorded = [r.event for r in records if r.event.type != "DeploymentRequested"]
    assert all("s3cr3t-pw" not in e.model_dump_json() for e in recorded)
    assert "bad value ***" in failed[0].message
    assert "String measured" not in failed[0].message


async def test_outcome_survives_a_request_appended_during_the_call() -> None:
    """The planner appends a newer request while UpdateAlias is in flight: the shift's outcome
    is still recorded (no resolve read needed), then the newer request supersedes."""
    world = World()
    await world.deploy("d1", desired("v1"), action="create")
    original = world.aws.update_alias
    calls = 0

    async def update_alias(*args: object, **kwargs: object) -> object:
        nonlocal calls
        result = await original(*args, **kwargs)  # type: ignore[arg-type]
        calls += 1
        if calls == 1:
            await world.request("d3", desired("v3"))
        return result

    world.aws.update_alias = update_alias  # type: ignore[method-assign,assignment]
    run = await world.deploy("d2", desired("v2"))
    assert [(f.deployment_id, f.outcome) for f in run.finished] == [
        ("d2", "superseded"),
        ("d3", "succeeded"),
    ]
    # Recorded at once: the call after the shift is not a read to find out what it did.
    ops = [op for op, _ in world.aws.journal]
    first_shift = ops.index(
        "UpdateAlias", ops.index("PublishVersion", ops.index("UpdateFunctionCode"))
    )
    assert ops[first_shift + 1] != "GetAlias"
