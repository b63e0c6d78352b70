"""What $LATEST holds decides which updates a deployment may skip, not the last success."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from engine.events.function import DeploymentFinished, RollbackStarted
from engine.saga import Call, fold, initial_state, next_effect
from tests.saga.support import NAME, World, desired, requested
from tests.saga.test_saga import NOW, PUBLISHED, ok, started


def test_after_a_rollback_the_reverted_code_is_written_again() -> None:
    """Given d2 wrote code v2 to $LATEST and was rolled back, when d3 asks for code v1 again
    with another memory size, then d3 updates the code (it does not publish v2's code)."""
    given = [
        requested("d1", desired("v1"), action="create"),
        started("create_function").model_copy(update={"deployment_id": "d1"}),
        ok("create_function", found=True).model_copy(update={"deployment_id": "d1"}),
        DeploymentFinished(deployment_id="d1", outcome="succeeded", stable_version="1"),
        *PUBLISHED[2:],  # d2: code v2 written to $LATEST and published
        RollbackStarted(deployment_id="d2", reason="alarm"),
        started("rollback_verify"),
        ok("rollback_verify", found=True, function_version="1", routing={}),
        ok("rollback_delete_new"),
        DeploymentFinished(deployment_id="d2", outcome="rolled_back", stable_version="1"),
        requested("d3", desired("v1", memory=256)),
        ok("inspect_function", found=True).model_copy(update={"deployment_id": "d3"}),
        ok("inspect_alias", found=True, function_version="1").model_copy(
            update={"deployment_id": "d3"}
        ),
    ]
    state = fold(initial_state(NAME), given)
    assert state.active is not None
    assert (state.active.skip_config, state.active.skip_code) == (False, False)
    effect = next_effect(state, NOW)
    assert isinstance(effect, Call)
    assert effect.method == "update_function_configuration"


def test_unchanged_latest_content_is_skipped() -> None:
    """Given $LATEST holds exactly d1's content, when d2 changes only the memory size, then
    the code update is skipped."""
    given = [
        requested("d1", desired("v1"), action="create"),
        started("create_function").model_copy(update={"deployment_id": "d1"}),
        ok("create_function", found=True).model_copy(update={"deployment_id": "d1"}),
        DeploymentFinished(deployment_id="d1", outcome="succeeded", stable_version="1"),
        requested("d2", desired("v1", memory=256)),
        ok("inspect_function", found=True),
        ok("inspect_alias", found=True, function_version="1"),
    ]
    state = fold(initial_state(NAME), given)
    assert state.active is not None
    assert (state.active.skip_config, state.active.skip_code) == (False, True)


def test_a_dangling_code_update_makes_latest_unknown() -> None:
    """Given an update_code intent with no outcome, then $LATEST's code counts as unknown."""
    state = fold(initial_state(NAME), [*PUBLISHED[:-2], started("update_code")])
    assert state.latest_code is None


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
async def test_revert_mid_canary_ends_on_the_reverted_content_once() -> None:
    """d2 (code v2) is in its canary when d3 reverts to d1's exact desired state: d2 rolls
    back, d3 writes v1 back to $LATEST, and the alias ends on one version holding v1."""
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
    assert alias.routing == {}
    live = await world.aws.get_function(NAME, alias.function_version)
    assert live is not None
    assert live.code_sha256 == first.code_sha256
    versions = [v.version for v in await world.aws.list_versions(NAME) if v.version != "$LATEST"]
    assert versions == [alias.function_version]


def test_failing_resolve_reads_back_off_exponentially() -> None:
    """Given a dangling publish whose resolve read keeps failing, then each pause is longer
    than the one before, up to the cap."""
    from engine.events.function import StepFailed
    from engine.saga import Wait

    state = fold(initial_state(NAME), [*PUBLISHED[:-1]])
    pauses = []
    for _ in range(8):
        state = fold(
            state,
            [
                StepFailed(
                    deployment_id="d2",
                    step="resolve:publish",
                    error_code="ServiceException",
                    message="down",
                    retryable=True,
                )
            ],
        )
        effect = next_effect(state, NOW)
        assert isinstance(effect, Wait)
        pauses.append((effect.until - NOW).total_seconds())
        assert state.active is not None
        state = fold(state, [effect.intent] if effect.intent else [])
        state = fold(state, [ok("wait:backoff")])
    assert pauses == sorted(pauses)
    assert pauses[0] < pauses[-1] == state.policy.retry.max_backoff
