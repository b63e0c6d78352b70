"""A deployment to another alias: the new alias starts where the old one serves, the event
sources move to it (attached there, then detached from the old one), and the old alias is
left in place for an operator to remove."""

from __future__ import annotations

import pytest

from engine.events import Metadata, NewEvent
from engine.events.desired import DesiredFunction, EventSources
from engine.events.function import DeploymentRequested
from tests.saga.support import NAME, STREAM, World, desired

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(20)]

QUEUE = "arn:aws:sqs:us-east-1:123456789012:orders"


def on_alias(want: DesiredFunction, alias: str) -> DesiredFunction:
    """``want`` on ``alias``, with an SQS mapping qualified with it."""
    settings = want.settings.model_copy(update={"alias": alias})
    mapping = {"EventSourceArn": QUEUE, "FunctionName": f"{NAME}:{alias}", "BatchSize": 10}
    return want.model_copy(
        update={
            "settings": settings,
            "event_sources": EventSources(mappings=(mapping,)),
            "content_hash": f"{want.content_hash}-{alias}",
        }
    )


async def _aliases(world: World) -> dict[str, tuple[str, dict[str, float]]]:
    found = {}
    for name in ("live", "prod"):
        alias = await world.aws.get_alias(NAME, name)
        if alias is not None:
            found[name] = (alias.function_version, dict(alias.routing))
    return found


async def test_an_alias_change_alone_moves_the_sources_and_keeps_the_old_alias() -> None:
    """Same code and configuration on another alias: nothing is published; the new alias is
    made on the version the old one serves, the mapping moves to it, the old alias stays."""
    world = World()
    await world.deploy("d1", on_alias(desired("v1"), "live"), action="create")
    assert len(world.sources.aws.mappings_on(NAME, "live")) == 1
    run = await world.deploy("d2", on_alias(desired("v1"), "prod"))
    assert [(f.outcome, f.stable_version) for f in run.finished] == [("succeeded", "1")]
    assert await _aliases(world) == {"live": ("1", {}), "prod": ("1", {})}
    assert world.sources.aws.mappings_on(NAME, "live") == []
    assert len(world.sources.aws.mappings_on(NAME, "prod")) == 1
    assert len(world.aws.calls("PublishVersion")) == 1
    assert world.aws.calls("DeleteAlias") == []


async def test_an_alias_change_with_new_code_shifts_the_new_alias() -> None:
    """New code on another alias: the new alias starts on the version the old one serves,
    takes the sources, then shifts to the new version by the schedule; the old version stays
    because the old alias still serves it."""
    world = World()
    await world.deploy("d1", on_alias(desired("v1"), "live"), action="create")
    run = await world.deploy("d2", on_alias(desired("v2"), "prod"))
    [finished] = run.finished
    assert (finished.outcome, finished.stable_version) == ("succeeded", "2")
    assert "alias live serves it" in finished.reason
    assert await _aliases(world) == {"live": ("1", {}), "prod": ("2", {})}
    assert [c["Name"] for c in world.aws.calls("CreateAlias")] == ["live", "prod"]
    assert world.aws.calls("CreateAlias")[-1]["FunctionVersion"] == "1"
    assert [c["Name"] for c in world.aws.calls("UpdateAlias")] == ["prod", "prod"]
    assert world.sources.aws.mappings_on(NAME, "live") == []
    assert len(world.sources.aws.mappings_on(NAME, "prod")) == 1
    versions = [v.version for v in await world.aws.list_versions(NAME)]
    assert versions == ["1", "2"]


async def _remove(world: World, deployment_id: str, alias: str) -> list[tuple[str, str]]:
    event = DeploymentRequested(
        deployment_id=deployment_id,
        commit=f"c-{deployment_id}",
        action="remove_alias",
        desired=None,
        alias=alias,
    )
    await world.store.append(STREAM, [NewEvent(event, Metadata(event_id=world.next_id()))])
    run = await world.run()
    return [(f.outcome, f.reason) for f in run.finished]


async def test_a_released_removal_deletes_the_old_alias_and_keeps_what_is_deployed() -> None:
    """The held removal, once released: only the old alias is deleted; the function, the alias
    the definition names, its sources and what the saga counts as deployed are unchanged, so
    the next deployment goes on from the same stable version."""
    world = World()
    await world.deploy("d1", on_alias(desired("v1"), "live"), action="create")
    await world.deploy("d2", on_alias(desired("v2"), "prod"))
    assert await _remove(world, "d3", "live") == [("succeeded", "alias live removed")]
    assert await _aliases(world) == {"prod": ("2", {})}
    assert len(world.sources.aws.mappings_on(NAME, "prod")) == 1
    [finished] = [e for e in await world.events("DeploymentFinished") if e.deployment_id == "d3"]
    assert finished.stable_version == "2"
    run = await world.deploy("d4", on_alias(desired("v3"), "prod"))
    assert [(f.outcome, f.stable_version) for f in run.finished] == [("succeeded", "3")]
    assert await _aliases(world) == {"prod": ("3", {})}


async def test_a_removal_never_deletes_the_alias_the_definition_names() -> None:
    """A removal naming the deployed alias (a stale request after the definition moved back)
    fails with why and deletes nothing; an alias already gone is success."""
    world = World()
    await world.deploy("d1", on_alias(desired("v1"), "live"), action="create")
    [(outcome, reason)] = await _remove(world, "d2", "live")
    assert (outcome, "the one the definition names" in reason) == ("failed", True)
    assert await _aliases(world) == {"live": ("1", {})}
    assert world.aws.calls("DeleteAlias") == []
    assert await _remove(world, "d3", "prod") == [("succeeded", "alias prod removed")]
