"""A deployment to another alias: the new alias starts where the old one serves, the event
sources move to it (attached there, then detached from the old one), and the old alias is
left in place for an operator to remove."""

from __future__ import annotations

import pytest

from engine.events.desired import DesiredFunction, EventSources
from tests.saga.support import NAME, World, desired

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
