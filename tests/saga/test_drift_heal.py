"""The saga makes AWS match again what it deployed when something outside glam changed it:
the alias split onto another version, $LATEST's configuration (drift, engine.drift)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.definitions.lambdadef import lambda_model
from engine.events import Metadata, NewEvent
from engine.events.function import DriftDetected
from tests.saga.support import NAME, STREAM, World, desired

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(20)]

# Lambda's service model, read from disk once per process: before the blocking-call guard.
lambda_model()


def _found(world: World, path: str, desired: object, live: object) -> NewEvent:
    """What a drift sweep records when it finds ``path`` changed (engine.drift)."""
    seen = DriftDetected(
        function=NAME,
        path=path,
        desired=desired,
        live=live,
        detected_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return NewEvent(seen, Metadata(event_id=world.next_id()))


async def test_a_split_made_outside_glam_is_put_back_on_the_stable_version() -> None:
    """The alias's own version serves the definition, and someone routed 10 % onto another
    version (a sweep recorded it): a deployment of the same definition puts the alias back on
    its version alone, publishes nothing and keeps the other version (glam did not deploy it)."""
    world = World()
    await world.deploy("d1", desired("v1"), action="create")
    await world.aws.update_function_configuration(NAME, {"MemorySize": 256})
    await world.aws.get_function(NAME)  # the update settles
    other = await world.aws.publish_version(NAME, code_sha256=None, revision_id=None)
    await world.aws.update_function_configuration(NAME, {"MemorySize": 128})
    await world.aws.get_function(NAME)
    await world.aws.update_alias(NAME, "live", "1", {other.version: 0.1})
    found = _found(world, "alias.RoutingConfig", {}, {other.version: 0.1})
    await world.store.append(STREAM, [found])
    publishes = len(world.aws.calls("PublishVersion"))
    run = await world.deploy("d2", desired("v1"))
    assert [f.outcome for f in run.finished] == ["succeeded"]
    alias = await world.aws.get_alias(NAME, "live")
    assert alias is not None
    assert (alias.function_version, dict(alias.routing)) == ("1", {})
    assert len(world.aws.calls("PublishVersion")) == publishes
    versions = [v.version for v in await world.aws.list_versions(NAME)]
    assert other.version in versions
    assert not world.aws.calls("DeleteVersion")


async def test_a_drifted_latest_is_set_back_without_publishing() -> None:
    """$LATEST's memory changed by hand (a DriftDetected on it): the next deployment of the
    same definition sets $LATEST back, and the stable version serving it, publishes none."""
    world = World()
    await world.deploy("d1", desired("v1"), action="create")
    await world.aws.update_function_configuration(NAME, {"MemorySize": 512})
    await world.store.append(STREAM, [_found(world, "$LATEST.MemorySize", 128, 512)])
    publishes = len(world.aws.calls("PublishVersion"))
    run = await world.deploy("d2", desired("v1"))
    assert [f.outcome for f in run.finished] == ["succeeded"]
    latest = await world.aws.get_function(NAME)
    assert latest is not None
    assert latest.configuration["MemorySize"] == 128
    assert len(world.aws.calls("PublishVersion")) == publishes
