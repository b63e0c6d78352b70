"""Event sources follow a rollback: the attempt's sources are undone, none left orphaned."""

from __future__ import annotations

import pytest

from engine.errors import AwsInvalid
from engine.events.desired import DesiredFunction, EventSources
from engine.sources_plan import union_sources
from tests.saga.support import NAME, World, desired

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

QUEUE = "arn:aws:sqs:us-east-1:123456789012:new-queue"


def _with_queue(want: DesiredFunction) -> DesiredFunction:
    mapping = {"EventSourceArn": QUEUE, "FunctionName": f"{NAME}:live"}
    return want.model_copy(update={"event_sources": EventSources(mappings=(mapping,))})


def _queues(world: World) -> list[str]:
    return [m["EventSourceArn"] for m in world.sources.aws.mappings_on(NAME, "live")]


async def test_rollback_detaches_the_sources_the_attempt_attached() -> None:
    """d2 adds a queue mapping and rolls back on an alarm: the mapping is removed again."""
    world = World()
    await world.deploy("d1", desired("v1", alarms=("errors",)), action="create")
    world.aws.set_alarm("errors", "ALARM")
    run = await world.deploy("d2", _with_queue(desired("v2", alarms=("errors",))))
    assert [f.outcome for f in run.finished] == ["rolled_back"]
    assert _queues(world) == []
    changes = [(e.change, e.deployment_id) for e in await world.events("EventSourceChanged")]
    assert changes == [("attached", "d2"), ("detached", "d2")]


async def test_sources_a_failed_rollback_left_are_removed_by_the_next_deployment() -> None:
    """When undoing the sources is refused, the rollback still finishes (alias is back) and
    the next deployment, which wants no queue, removes the stray mapping."""
    world = World()
    await world.deploy("d1", desired("v1", alarms=("errors",)), action="create")
    world.aws.set_alarm("errors", "ALARM")
    original = world.sources.reconcile
    calls = 0

    async def reconcile(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:  # the rollback's reconcile
            raise AwsInvalid("refused")
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    world.sources.reconcile = reconcile  # type: ignore[method-assign,assignment]
    run = await world.deploy("d2", _with_queue(desired("v2", alarms=("errors",))))
    assert [f.outcome for f in run.finished] == ["rolled_back"]
    assert "event sources left as attempted" in run.finished[0].reason
    assert _queues(world) == [QUEUE]
    world.aws.set_alarm("errors", "OK")
    run = await world.deploy("d3", desired("v3", alarms=("errors",)))
    assert [f.outcome for f in run.finished] == ["succeeded"]
    assert _queues(world) == []


def test_union_keeps_every_source_once() -> None:
    """The union names each mapping source once, later parts winning."""
    a = EventSources(mappings=({"EventSourceArn": QUEUE, "BatchSize": 1},))
    b = EventSources(mappings=({"EventSourceArn": QUEUE, "BatchSize": 5},))
    both = union_sources(a, None, b)
    assert both is not None
    assert both.mappings == ({"EventSourceArn": QUEUE, "BatchSize": 5},)
    assert union_sources(None, None) is None
