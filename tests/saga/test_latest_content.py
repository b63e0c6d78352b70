"""What the alias's stable version serves decides whether a version is published; what
$LATEST holds (read from AWS, compared member by member) decides which updates are made."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from engine.events import Event
from engine.events.function import DeploymentFinished
from engine.saga import Call, fold, initial_state, next_effect
from engine.saga.effects import UpdateConfig
from tests.saga.support import NAME, World, desired, requested
from tests.saga.test_saga import ARN, DEPLOYED, NOW, ok


def _d2(*reads: Event) -> list[Event]:
    return [*DEPLOYED, requested("d2", desired("v2", memory=256)), *reads]


def test_only_what_latest_differs_in_is_updated() -> None:
    """Given $LATEST already holds the desired code and differs only in MemorySize, when the
    stable version differs, then only the configuration is updated, with only MemorySize."""
    state = fold(
        initial_state(NAME),
        _d2(
            ok("inspect_function", found=True, arn=ARN, code_sha256="v2", differs=["MemorySize"]),
            ok("hash_code", code_sha256="v2"),
            ok("inspect_stable", found=True, version="1", code_sha256="v1", differs=[]),
        ),
    )
    assert state.active is not None
    assert (state.active.skip_config, state.active.skip_code) == (False, True)
    effect = next_effect(state, NOW)
    assert isinstance(effect, Call)
    assert effect.operation == UpdateConfig(NAME, {"MemorySize": 256})


def test_latest_already_desired_publishes_without_an_update() -> None:
    """Given $LATEST holds the definition already (left by a rolled-back deployment), when the
    stable version does not serve it, then it is published with no update first."""
    state = fold(
        initial_state(NAME),
        _d2(
            ok("inspect_function", found=True, arn=ARN, code_sha256="v2", differs=[]),
            ok("hash_code", code_sha256="v2"),
            ok("inspect_stable", found=True, version="1", code_sha256="v1", differs=[]),
        ),
    )
    effect = next_effect(state, NOW)
    assert isinstance(effect, Call)
    assert effect.method == "publish_version"


def test_a_stable_version_that_serves_the_definition_publishes_nothing() -> None:
    """Given the stable version has the desired code and no member differs, then nothing is
    updated or published: the sources are reconciled and the deployment succeeds."""
    state = fold(
        initial_state(NAME),
        _d2(
            ok("inspect_function", found=True, arn=ARN, code_sha256="v2", differs=["Timeout"]),
            ok("hash_code", code_sha256="v2"),
            ok("inspect_stable", found=True, version="1", code_sha256="v2", differs=[]),
        ),
    )
    effect = next_effect(state, NOW)
    assert isinstance(effect, Call)
    assert str(effect.step) == "sources"
    assert state.active is not None
    assert state.active.path == "sources_only"


def test_publish_answering_the_stable_version_updates_latest_once_more() -> None:
    """Given AWS answers the publish with the stable version (it counts $LATEST as unchanged
    since then: the version published after it was deleted by a rollback), then $LATEST is
    updated once more and published again: the deployment never ends on the old version."""
    given = _d2(
        ok("inspect_function", found=True, arn=ARN, code_sha256="v2", differs=[]),
        ok("hash_code", code_sha256="v2"),
        ok("inspect_stable", found=True, version="1", code_sha256="v1", differs=[]),
    )
    state = fold(initial_state(NAME), given)
    publish = next_effect(state, NOW)
    assert isinstance(publish, Call)
    assert publish.intent is not None
    state = fold(state, [publish.intent, ok("publish", version="1")])
    effect = next_effect(state, NOW)
    assert isinstance(effect, Call)
    assert effect.operation == UpdateConfig(NAME, {"Description": ""})


def test_publish_answering_an_existing_version_of_the_definition_uses_it() -> None:
    """Given AWS answers the publish with an older version that is not the stable one (made
    of exactly what $LATEST holds: a version a rollback could not delete), then that version
    is the one shifted to: it serves the definition."""
    given: list[Event] = [
        requested("d1", desired("v1"), action="create"),
        DeploymentFinished(deployment_id="d1", outcome="succeeded", stable_version="3"),
        requested("d2", desired("v2")),
        ok("inspect_function", found=True, arn=ARN, code_sha256="v2", differs=[]),
        ok("hash_code", code_sha256="v2"),
        ok("inspect_stable", found=True, version="3", code_sha256="v1", differs=[]),
    ]
    state = fold(initial_state(NAME), given)
    publish = next_effect(state, NOW)
    assert isinstance(publish, Call)
    assert publish.intent is not None
    state = fold(state, [publish.intent, ok("publish", version="2", code_sha256="v2")])
    assert state.active is not None
    assert state.active.new_version == "2"
    effect = next_effect(state, NOW)
    assert isinstance(effect, Call)
    assert str(effect.step) == "readiness"


def test_a_read_that_was_not_compared_updates_everything() -> None:
    """A function read an earlier glam recorded (no ``differs``) counts as differing in all
    the definition sets: both updates are made, as before."""
    state = fold(
        initial_state(NAME),
        [
            *DEPLOYED,
            requested("d2", desired("v2")),
            ok("inspect_function", found=True, arn=ARN),
            ok("hash_code", code_sha256="v2"),
            ok("inspect_stable", found=True, version="1", code_sha256="v1"),
        ],
    )
    assert state.active is not None
    assert (state.active.skip_config, state.active.skip_code) == (False, False)


def test_a_finished_publish_records_which_code_the_object_has() -> None:
    """The CodeSha256 a publish reports is remembered for the definition's code object: the
    next deployment of the same object needs no S3 read."""
    published = [
        *_d2(
            ok("inspect_function", found=True, arn=ARN, code_sha256="v1", differs=[]),
            ok("hash_code", code_sha256=None),
            ok("inspect_stable", found=True, version="1", code_sha256="v1", differs=[]),
        ),
        ok("publish", version="2", code_sha256="sha-of-v2"),
        DeploymentFinished(deployment_id="d2", outcome="succeeded", stable_version="2"),
        requested("d3", desired("v2", memory=512)),
        ok("inspect_function", found=True, arn=ARN, code_sha256="sha-of-v2", differs=[]).model_copy(
            update={"deployment_id": "d3"}
        ),
    ]
    state = fold(initial_state(NAME), published)
    assert state.active is not None
    assert state.active.expected_code == "sha-of-v2"
    effect = next_effect(state, NOW)
    assert isinstance(effect, Call)
    assert str(effect.step) == "inspect_stable"


@pytest.mark.anyio
async def test_rolled_back_code_is_never_published_by_a_later_deployment() -> None:
    """d2 ships code v2 and is rolled back by an alarm; d3 reverts the code to v1 and changes
    only the memory: the alias ends on a version with code v1 and memory 256."""
    world = World()
    await world.deploy("d1", desired("v1", alarms=("errors",)), action="create")
    world.aws.set_alarm("errors", "ALARM")
    run = await world.deploy("d2", desired("v2", alarms=("errors",)))
    assert [f.outcome for f in run.finished] == ["rolled_back"]
    world.aws.set_alarm("errors", "OK")
    run = await world.deploy("d3", desired("v1", alarms=("errors",), memory=256))
    assert [f.outcome for f in run.finished] == ["succeeded"]
    alias = await world.aws.get_alias(NAME, "live")
    assert alias is not None
    live = await world.aws.get_function(NAME, alias.function_version)
    first = world.aws.calls("UpdateFunctionCode")
    assert live is not None
    assert [c.get("S3Key") for c in first] == ["orders-v2.zip", "orders-v1.zip"]
    assert live.configuration["MemorySize"] == 256


@pytest.mark.anyio
async def test_the_rolled_back_state_deployed_again_reaches_the_alias() -> None:
    """d2 is rolled back by an alarm; the same desired state requested again (a retry) finds
    $LATEST already holding it, publishes it without an update and shifts the alias to it."""
    world = World()
    await world.deploy("d1", desired("v1", alarms=("errors",)), action="create")
    world.aws.set_alarm("errors", "ALARM")
    assert [
        f.outcome for f in (await world.deploy("d2", desired("v2", alarms=("errors",)))).finished
    ] == ["rolled_back"]
    world.aws.set_alarm("errors", "OK")
    updates = len(world.aws.calls("UpdateFunctionCode"))
    run = await world.deploy("d3", desired("v2", alarms=("errors",)))
    assert [(f.outcome, f.stable_version) for f in run.finished] == [("succeeded", "3")]
    assert len(world.aws.calls("UpdateFunctionCode")) == updates  # $LATEST held it already
    alias = await world.aws.get_alias(NAME, "live")
    assert alias is not None
    assert (alias.function_version, dict(alias.routing)) == ("3", {})


@pytest.mark.anyio
async def test_revert_mid_canary_ends_on_the_reverted_content_once() -> None:
    """d2 (code v2) is in its canary when d3 reverts to d1's exact desired state: d2 rolls
    back, and d3 finds the stable version serving it: nothing is published for it."""
    world = World()
    await world.deploy("d1", desired("v1"), action="create")
    first = await world.aws.get_function(NAME, "1")
    assert first is not None
    world.clock.autojump = False
    await world.request("d2", desired("v2"))

    async def revert_during_bake() -> None:
        while 0.2 not in await world.weights("d2"):
            await anyio.lowlevel.checkpoint()
        await world.request("d3", desired("v1"))
        world.clock.autojump = True
        world.clock.advance(60)

    async with anyio.create_task_group() as tg:
        tg.start_soon(revert_during_bake)
        run = await world.run()
    assert [(f.deployment_id, f.outcome) for f in run.finished] == [
        ("d2", "superseded"),
        ("d3", "succeeded"),
    ]
    alias = await world.aws.get_alias(NAME, "live")
    assert alias is not None
    assert (alias.function_version, alias.routing) == ("1", {})
    versions = [v.version for v in await world.aws.list_versions(NAME) if v.version != "$LATEST"]
    assert versions == ["1"]
