"""The SourcesApi contract, run against the in-memory fake and against a real moto server.

For each source kind: add, change, remove, and re-run with no change; the resulting state is
read back by listing it. Where moto cannot show something real AWS would, the assertion says so.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.events.desired import EventSources, PushSource
from engine.ports import SourceChange
from engine.sources_plan import ELB_SERVICE, integration_uri
from tests.sources.conftest import ALIAS, World

pytestmark = pytest.mark.anyio

APIGW = "apigateway.amazonaws.com"


def sqs(world: World, queue: int, **params: Any) -> dict[str, Any]:
    return {
        "EventSourceArn": world.queues[queue],
        "FunctionName": f"{world.function}:{ALIAS}",
        **params,
    }


def elb(world: World, group: int) -> PushSource:
    return PushSource(service=ELB_SERVICE, target_group_arn=world.target_groups[group])


def api(world: World, stage_variable: str | None = None) -> PushSource:
    return PushSource(
        service=APIGW,
        api_id=world.api_id,
        route_id=world.route_id,
        stage_variable=stage_variable,
    )


def verdicts(changes: list[SourceChange]) -> list[tuple[str, str]]:
    return [(c.kind, c.change) for c in changes]


def grants_to(statements: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [s for s in statements if service in str(s.get("Principal"))]


async def test_mapping_add_rerun_change_remove(world: World) -> None:
    """A pull mapping is created once, updated in place, and deleted when removed."""
    first = EventSources(mappings=(sqs(world, 0, BatchSize=5),))
    changes = await world.sources.reconcile(world.function, world.alias_arn, first)
    assert verdicts(changes) == [("mapping", "attached")]
    listed = await world.mappings()
    assert len(listed) == 1
    assert listed[0]["BatchSize"] == 5
    assert listed[0]["UUID"] == changes[0].source_id

    again = await world.sources.reconcile(world.function, world.alias_arn, first, first)
    assert verdicts(again) == [("mapping", "unchanged")]
    assert len(await world.mappings()) == 1

    changed = EventSources(mappings=(sqs(world, 0, BatchSize=7),))
    update = await world.sources.reconcile(world.function, world.alias_arn, changed, first)
    assert verdicts(update) == [("mapping", "updated")]
    assert update[0].details["changed"] == ["BatchSize"]
    listed = await world.mappings()
    assert [m["BatchSize"] for m in listed] == [7]
    assert listed[0]["UUID"] == changes[0].source_id

    moved = EventSources(mappings=(sqs(world, 1, BatchSize=7),))
    swap = await world.sources.reconcile(world.function, world.alias_arn, moved, changed)
    assert verdicts(swap) == [("mapping", "attached"), ("mapping", "detached")]
    listed = await world.mappings()
    assert [m["EventSourceArn"] for m in listed] == [world.queues[1]]

    gone = await world.sources.reconcile(world.function, world.alias_arn, EventSources(), moved)
    assert verdicts(gone) == [("mapping", "detached")]
    assert await world.mappings() == []


async def test_existing_identical_mapping_is_adopted_not_duplicated(world: World) -> None:
    """A mapping of the same source on the alias, made outside glam, is adopted."""
    await world.create_mapping_directly(sqs(world, 0, BatchSize=10))
    desired = EventSources(mappings=(sqs(world, 0, BatchSize=10),))
    changes = await world.sources.reconcile(world.function, world.alias_arn, desired)
    assert verdicts(changes) == [("mapping", "adopted")]
    assert len(await world.mappings()) == 1
    # The alias ARN is just as much "the alias" as name:alias.
    by_arn = EventSources(mappings=(sqs(world, 0, BatchSize=10, FunctionName=world.alias_arn),))
    changes = await world.sources.reconcile(world.function, world.alias_arn, by_arn, desired)
    assert verdicts(changes) == [("mapping", "unchanged")]
    assert len(await world.mappings()) == 1


async def test_rerun_without_previous_adopts_everything(world: World) -> None:
    """After a crash the saga may not know what it attached: nothing is made twice."""
    desired = EventSources(
        mappings=(sqs(world, 0),), push=(elb(world, 0), api(world, "lambdaAlias"))
    )
    await world.sources.reconcile(world.function, world.alias_arn, desired)
    again = await world.sources.reconcile(world.function, world.alias_arn, desired)
    assert {c.change for c in again} == {"adopted"}
    assert len(await world.mappings()) == 1
    assert len(await world.integrations()) == 1
    statements = await world.statements()
    assert len(grants_to(statements, ELB_SERVICE)) == 1
    assert len(grants_to(statements, APIGW)) == 1
    assert await world.targets(world.target_groups[0]) == [world.alias_arn]


async def test_elb_add_rerun_change_remove(world: World) -> None:
    """The alias may be invoked by the target group and is its one target; both go on removal."""
    first = EventSources(push=(elb(world, 0),))
    changes = await world.sources.reconcile(world.function, world.alias_arn, first)
    assert verdicts(changes) == [("elb", "attached")]
    assert changes[0].source_id == world.target_groups[0]
    assert await world.targets(world.target_groups[0]) == [world.alias_arn]
    statements = grants_to(await world.statements(), ELB_SERVICE)
    assert len(statements) == 1
    assert world.target_groups[0] in str(statements[0]["Condition"])
    assert statements[0]["Sid"] == changes[0].details["statement_id"]

    again = await world.sources.reconcile(world.function, world.alias_arn, first, first)
    assert verdicts(again) == [("elb", "unchanged")]
    assert await world.targets(world.target_groups[0]) == [world.alias_arn]
    assert len(grants_to(await world.statements(), ELB_SERVICE)) == 1

    second = EventSources(push=(elb(world, 1),))
    swap = await world.sources.reconcile(world.function, world.alias_arn, second, first)
    assert verdicts(swap) == [("elb", "attached"), ("elb", "detached")]
    assert await world.targets(world.target_groups[0]) == []
    assert await world.targets(world.target_groups[1]) == [world.alias_arn]
    statements = grants_to(await world.statements(), ELB_SERVICE)
    assert len(statements) == 1
    assert world.target_groups[1] in str(statements[0]["Condition"])

    gone = await world.sources.reconcile(world.function, world.alias_arn, EventSources(), second)
    assert verdicts(gone) == [("elb", "detached")]
    assert await world.targets(world.target_groups[1]) == []
    assert grants_to(await world.statements(), ELB_SERVICE) == []


async def test_apigateway_add_rerun_change_remove(world: World) -> None:
    """An AWS_PROXY integration to the alias, the route on it, the API allowed to invoke."""
    first = EventSources(push=(api(world),))
    changes = await world.sources.reconcile(world.function, world.alias_arn, first)
    assert verdicts(changes) == [("apigateway", "attached")]
    assert changes[0].source_id == f"{world.api_id}/{world.route_id}"
    integrations = await world.integrations()
    assert [(i["IntegrationType"], i["IntegrationUri"]) for i in integrations] == [
        ("AWS_PROXY", world.alias_arn)
    ]
    assert integrations[0]["PayloadFormatVersion"] == "2.0"
    assert await world.route_target() == f"integrations/{integrations[0]['IntegrationId']}"
    statements = grants_to(await world.statements(), APIGW)
    assert len(statements) == 1
    assert f":{world.api_id}/*" in str(statements[0]["Condition"])

    again = await world.sources.reconcile(world.function, world.alias_arn, first, first)
    assert verdicts(again) == [("apigateway", "unchanged")]
    assert len(await world.integrations()) == 1
    assert len(grants_to(await world.statements(), APIGW)) == 1

    staged = EventSources(push=(api(world, "lambdaAlias"),))
    update = await world.sources.reconcile(world.function, world.alias_arn, staged, first)
    assert verdicts(update) == [("apigateway", "updated")]
    uri = integration_uri(world.alias_arn, "lambdaAlias")
    assert uri.endswith(f":function:{world.function}:${{stageVariables.lambdaAlias}}")
    integrations = await world.integrations()
    assert [i["IntegrationUri"] for i in integrations] == [uri]
    assert await world.route_target() == f"integrations/{integrations[0]['IntegrationId']}"
    assert len(grants_to(await world.statements(), APIGW)) == 1

    gone = await world.sources.reconcile(world.function, world.alias_arn, EventSources(), staged)
    assert verdicts(gone) == [("apigateway", "detached")]
    assert await world.integrations() == []
    assert grants_to(await world.statements(), APIGW) == []
    target = await world.route_target()
    if world.kind == "fake":
        assert target is None
    else:
        # moto's UpdateRoute ignores an empty Target, so the route still names the deleted
        # integration there; what moto can show is that the integration itself is gone.
        assert target == f"integrations/{integrations[0]['IntegrationId']}"


async def test_detach_all_leaves_nothing_behind(world: World) -> None:
    """Before a function is deleted, every source wired to it goes."""
    desired = EventSources(
        mappings=(sqs(world, 0), sqs(world, 1, BatchSize=3)),
        push=(elb(world, 0), elb(world, 1), api(world, "lambdaAlias")),
    )
    attached = await world.sources.reconcile(world.function, world.alias_arn, desired)
    assert [c.change for c in attached] == ["attached"] * 5
    removed = await world.sources.detach_all(world.function, world.alias_arn, desired)
    assert sorted(verdicts(removed)) == sorted(
        [("mapping", "detached")] * 2 + [("elb", "detached")] * 2 + [("apigateway", "detached")]
    )
    assert await world.mappings() == []
    assert await world.targets(world.target_groups[0]) == []
    assert await world.targets(world.target_groups[1]) == []
    assert await world.integrations() == []
    assert await world.statements() == []
    # And again: detaching what is gone is no error.
    await world.sources.detach_all(world.function, world.alias_arn, desired)
