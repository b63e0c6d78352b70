"""What only the in-memory backend can show fast: waits on mapping states, and AWS's refusals."""

from __future__ import annotations

import pytest

from engine.aws.sources import SourceReconciler
from engine.errors import AwsConflict
from engine.events.desired import EventSources, PushSource
from engine.testing.sources import FakeSources, MemorySourcesBackend
from tests.builders import StepClock

pytestmark = pytest.mark.anyio

ALIAS_ARN = "arn:aws:lambda:us-east-1:123456789012:function:orders:PROD"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:orders"


ManualTime = StepClock  # a monotonic clock that moves only when the reconciler sleeps


def reconciler(backend: MemorySourcesBackend, time: ManualTime, timeout: float) -> SourceReconciler:
    return SourceReconciler(
        backend,
        region="us-east-1",
        account="123456789012",
        poll_interval=2.0,
        state_timeout=timeout,
        clock=time,
    )


async def test_creating_and_updating_states_are_waited_out() -> None:
    """A mapping is reported only once it left Creating, and updated only once settled."""
    backend = MemorySourcesBackend(region="us-east-1", account="123456789012", settle_polls=3)
    time = ManualTime()
    sources = reconciler(backend, time, timeout=60)
    desired = EventSources(mappings=({"EventSourceArn": QUEUE, "BatchSize": 5},))
    [created] = await sources.reconcile("orders", ALIAS_ARN, desired)
    assert (created.change, created.details["state"]) == ("attached", "Enabled")
    assert time.slept == [2.0, 2.0, 2.0]
    changed = EventSources(mappings=({"EventSourceArn": QUEUE, "BatchSize": 6},))
    [updated] = await sources.reconcile("orders", ALIAS_ARN, changed, desired)
    assert (updated.change, updated.details["state"]) == ("updated", "Enabled")
    assert backend.mappings_on("orders", "PROD")[0]["BatchSize"] == 6


async def test_a_state_that_never_settles_fails_within_the_bound() -> None:
    """The wait is bounded and says what to do."""
    backend = MemorySourcesBackend(region="us-east-1", account="123456789012", settle_polls=1000)
    time = ManualTime()
    sources = reconciler(backend, time, timeout=10)
    desired = EventSources(mappings=({"EventSourceArn": QUEUE},))
    with pytest.raises(AwsConflict) as caught:
        await sources.reconcile("orders", ALIAS_ARN, desired)
    assert "Creating" in caught.value.message
    assert caught.value.hint
    assert time.time <= 12


async def test_the_mapping_invokes_the_alias() -> None:
    """An unqualified FunctionName never reaches AWS: the mapping is on the alias."""
    fake = FakeSources()
    await fake.reconcile("orders", ALIAS_ARN, EventSources(mappings=({"EventSourceArn": QUEUE},)))
    [mapping] = fake.aws.mappings_on("orders", "PROD")
    assert mapping["FunctionArn"] == ALIAS_ARN
    assert fake.aws.mappings_on("orders", None) == []


async def test_backend_refuses_what_aws_refuses() -> None:
    """A duplicate mapping or statement id is a conflict, as on AWS."""
    aws = MemorySourcesBackend(region="us-east-1", account="123456789012")
    await aws.create_mapping({"EventSourceArn": QUEUE, "FunctionName": "orders:PROD"})
    with pytest.raises(AwsConflict):
        await aws.create_mapping({"EventSourceArn": QUEUE, "FunctionName": ALIAS_ARN})
    await aws.add_permission("orders", "PROD", "s", "x.amazonaws.com", "arn")
    with pytest.raises(AwsConflict):
        await aws.add_permission("orders", "PROD", "s", "x.amazonaws.com", "arn")


async def test_api_permission_stays_while_another_route_of_the_api_is_wired() -> None:
    """Two routes of one API share one permission; removing one route keeps it."""
    fake = FakeSources()
    one = PushSource(service="apigateway.amazonaws.com", api_id="a", route_id="r1")
    two = one.model_copy(update={"route_id": "r2"})
    both = EventSources(push=(one, two))
    await fake.reconcile("orders", ALIAS_ARN, both)
    assert len(fake.aws.statements("orders", "PROD")) == 1
    # Both routes share the one integration to the alias.
    assert len(fake.aws.apis["a"]["integrations"]) == 1
    await fake.reconcile("orders", ALIAS_ARN, EventSources(push=(two,)), both)
    assert len(fake.aws.statements("orders", "PROD")) == 1
    assert "Target" not in fake.aws.apis["a"]["routes"]["r1"]
    assert len(fake.aws.apis["a"]["integrations"]) == 1
    await fake.reconcile("orders", ALIAS_ARN, EventSources(), EventSources(push=(two,)))
    assert fake.aws.statements("orders", "PROD") == []
    assert fake.aws.apis["a"]["integrations"] == {}


async def test_rerun_makes_no_mutating_call() -> None:
    """Re-running the same plan only reads."""
    fake = FakeSources()
    desired = EventSources(
        mappings=({"EventSourceArn": QUEUE},),
        push=(PushSource(service="elasticloadbalancing.amazonaws.com", target_group_arn="tg"),),
    )
    await fake.reconcile("orders", ALIAS_ARN, desired)
    before = list(fake.aws.calls)
    changes = await fake.reconcile("orders", ALIAS_ARN, desired, desired)
    assert {c.change for c in changes} == {"unchanged"}
    assert fake.aws.calls == before


class CountingBackend(MemorySourcesBackend):
    def __init__(self) -> None:
        super().__init__(region="us-east-1", account="123456789012")
        self.lists = 0

    async def list_mappings(self, function_name: str) -> list[dict[str, object]]:
        self.lists += 1
        return await super().list_mappings(function_name)


async def test_no_mappings_wanted_or_wired_lists_nothing() -> None:
    """A function with no mapping desired and none wired before costs no list call; one with
    a mapping still lists, so a mapping made by hand is adopted, never duplicated."""
    backend = CountingBackend()
    time = ManualTime()
    await reconciler(backend, time, 60).reconcile("orders", ALIAS_ARN, EventSources(), None)
    assert backend.lists == 0
    wanted = EventSources(mappings=({"EventSourceArn": QUEUE},))
    await reconciler(backend, time, 60).reconcile("orders", ALIAS_ARN, wanted, None)
    assert backend.lists > 0
