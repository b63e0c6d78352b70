"""The runner after a crash during PublishVersion, when the read that settles it keeps failing."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import AwsError, AwsThrottled
from engine.events.function import DeploymentFinished
from tests.saga.support import NAME, World, desired

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def _crash_during_publish(world: World) -> None:
    """d1 deployed; d2's PublishVersion takes effect and the process dies before recording."""
    await world.deploy("d1", desired("v1"), action="create")
    await world.request("d2", desired("v2"))
    original = world.aws.publish_version

    async def publish_then_crash(*args: Any, **kwargs: Any) -> Any:
        await original(*args, **kwargs)
        raise KeyboardInterrupt  # the outcome is never recorded

    world.aws.publish_version = publish_then_crash  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        await world.run()
    world.aws.publish_version = original  # type: ignore[method-assign]
    assert (await world.types())[-1] == "StepStarted"


@pytest.mark.parametrize(
    ("error", "reads"),
    [
        pytest.param(AwsThrottled("Rate exceeded", code="ThrottlingException"), 20, id="throttled"),
        pytest.param(
            AwsError("not authorized", code="AccessDeniedException", retryable=False),
            3,
            id="access-denied",
        ),
    ],
)
async def test_a_resolve_read_that_keeps_failing_ends_the_deployment(
    error: AwsError, reads: int
) -> None:
    """After the restart every ListVersionsByFunction fails: the runner reads a bounded number
    of times, records one StepFailed, never publishes again, and finishes d2 failed naming the
    unresolved publish; the alias stays on the stable version."""
    world = World()
    await _crash_during_publish(world)
    before = len(await world.types())
    world.aws.fail_next("ListVersionsByFunction", error, times=10_000)

    run = await world.run()

    assert [(f.deployment_id, f.outcome) for f in run.finished] == [("d2", "failed")]
    assert "outcome of publish is unknown" in run.finished[0].reason
    assert error.code in run.finished[0].reason
    assert len(world.aws.calls("ListVersionsByFunction")) == reads
    assert len(world.aws.calls("PublishVersion")) == 2  # d1's and d2's lost one, no third
    types = (await world.types())[before:]
    assert types.count("StepFailed") == 1
    assert len(types) == reads + 1  # one StepFailed or pause per read, then the end
    alias = await world.aws.get_alias(NAME, "live")
    assert alias is not None
    assert (alias.function_version, dict(alias.routing)) == ("1", {})
    finished = await world.events("DeploymentFinished")
    assert isinstance(finished[-1], DeploymentFinished)
    assert finished[-1].stable_version == "1"


async def test_a_read_that_recovers_adopts_the_version() -> None:
    """A few failed reads, then one that works: the published version is adopted and d2
    succeeds with no second publish."""
    world = World()
    await _crash_during_publish(world)
    world.aws.fail_next("ListVersionsByFunction", AwsThrottled("Rate exceeded"), times=4)

    run = await world.run()

    assert [(f.deployment_id, f.outcome) for f in run.finished] == [("d2", "succeeded")]
    assert len(world.aws.calls("PublishVersion")) == 2
    assert (await world.types()).count("StepFailed") == 1
    alias = await world.aws.get_alias(NAME, "live")
    assert alias is not None
    assert alias.function_version == "2"
