"""Traffic hooks and custom steps through the engine, on the embedded AWS: the hook functions'
code really runs on Invoke (engine.local._moto_invoke)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.events.function import DeploymentFinished, HookAnswered, StepStarted
from engine.local import LocalAwsThread
from tests.builders import events_of
from tests.runtime.support import NAME, Setup, outcomes, write_function
from tests.support.hooks import FAILS, RAISES, SLEEPS, SUCCEEDS, create_hook

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def _update_with(setup: Setup, depdef: dict[str, Any], **options: Any) -> list[str]:
    """Version 1 deployed with ``depdef``, then version 2 committed and run: the outcomes."""
    write_function(setup.repo, setup.outputs, depdef_extra=depdef, **options)
    setup.repo.commit("add orders")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    write_function(setup.repo, setup.outputs, code="green", depdef_extra=depdef, **options)
    setup.repo.commit("green")
    return outcomes(await setup.run_once())


def _alias_moves(local_aws: LocalAwsThread) -> list[tuple[str | None, dict[str, float]]]:
    return [
        (e.version, dict(e.routing or {}))
        for e in local_aws.journal.calls("UpdateAlias", function=NAME)
        if 200 <= e.status < 300
    ]


async def test_hooks_that_succeed_run_before_traffic_and_after_the_promote(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """Both hooks run on the update (not on the first deployment: nothing shifts there), in
    order, with a payload naming the deployment and versions; each answer is an event."""
    await create_hook(local_aws, setup.outputs, "orders-smoke", SUCCEEDS)
    await create_hook(local_aws, setup.outputs, "orders-verify", SUCCEEDS)
    hooks = {"hooks": {"beforeAllowTraffic": "orders-smoke", "afterAllowTraffic": "orders-verify"}}
    assert await _update_with(setup, hooks) == ["succeeded"]
    records = await setup.events()
    answered = events_of(records, HookAnswered)
    assert [(a.hook, a.function, a.status) for a in answered] == [
        ("beforeAllowTraffic", "orders-smoke", "succeeded"),
        ("afterAllowTraffic", "orders-verify", "succeeded"),
    ]
    deployment = events_of(records, DeploymentFinished)[-1].deployment_id
    seen = json.loads(answered[0].body)["seen"]
    assert seen == {
        "hook": "beforeAllowTraffic",
        "deploymentId": deployment,
        "functionName": NAME,
        "functionArn": seen["functionArn"],
        "alias": "live",
        "stableVersion": "1",
        "newVersion": "2",
    }
    # The before hook ran before the first weight moved, the after hook after the promote.
    order = [
        str(r.event.step)
        for r in records
        if isinstance(r.event, StepStarted) and r.event.deployment_id == deployment
    ]
    assert order.index("hook_before") < order.index("shift") < order.index("promote")
    assert order.index("promote") < order.index("hook_after") < order.index("delete_old")
    invokes = local_aws.journal.calls("Invoke")
    assert [(e.function, e.status) for e in invokes] == [
        ("orders-smoke", 200),
        ("orders-verify", 200),
    ]
    local_aws.journal.check_invariants()


@pytest.mark.parametrize(
    ("source", "deadline", "status", "error"),
    [
        pytest.param(FAILS, 20, "failed", None, id="answers-failed"),
        pytest.param(RAISES, 20, "failed", "Unhandled", id="raises"),
        pytest.param(SLEEPS, 1, "timed_out", None, id="times-out"),
    ],
)
async def test_a_before_hook_that_does_not_succeed_rolls_back_before_any_weight_moves(
    setup: Setup,
    local_aws: LocalAwsThread,
    source: str,
    deadline: int,
    status: str,
    error: str | None,
) -> None:
    """A failed, raising or timed-out beforeAllowTraffic hook rolls back: no weight ever
    moved, the new version is deleted, and the answer is recorded."""
    await create_hook(local_aws, setup.outputs, "orders-smoke", source)
    hook = {"function": "orders-smoke", "timeoutSeconds": deadline}
    assert await _update_with(setup, {"hooks": {"beforeAllowTraffic": hook}}) == ["rolled_back"]
    assert _alias_moves(local_aws) == []
    [answer] = events_of(await setup.events(), HookAnswered)
    assert (answer.status, answer.function_error) == (status, error)
    finished = events_of(await setup.events(), DeploymentFinished)[-1]
    assert finished.stable_version == "1"
    assert "hook beforeAllowTraffic (orders-smoke)" in finished.reason
    deletes = local_aws.journal.calls("DeleteFunction", function=NAME)
    assert [(e.qualifier, e.status) for e in deletes] == [("2", 204)]
    local_aws.journal.check_invariants()


async def test_an_after_hook_that_fails_rolls_the_promote_back(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """afterAllowTraffic runs once the alias is on the new version; its failure puts the
    alias back on the stable version with no routing."""
    await create_hook(local_aws, setup.outputs, "orders-verify", FAILS)
    hooks = {"hooks": {"afterAllowTraffic": "orders-verify"}}
    assert await _update_with(setup, hooks) == ["rolled_back"]
    moves = _alias_moves(local_aws)
    assert moves[-2:] == [("2", {}), ("1", {})]
    [answer] = events_of(await setup.events(), HookAnswered)
    assert "p99 of the smoke test" in answer.body
    local_aws.journal.check_invariants()


async def test_a_missing_hook_function_is_an_error_and_rolls_back(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """A hook naming no function cannot be invoked: "error", rolled back."""
    hooks = {"hooks": {"beforeAllowTraffic": "no-such-hook"}}
    assert await _update_with(setup, hooks) == ["rolled_back"]
    [answer] = events_of(await setup.events(), HookAnswered)
    assert answer.status == "error"
    assert _alias_moves(local_aws) == []


async def test_custom_steps_shift_by_their_weights(setup: Setup, local_aws: LocalAwsThread) -> None:
    """trafficShiftingConfig.steps is the schedule: each weight in turn, 1.0 the promote."""
    steps = [
        {"weight": 0.1, "waitInterval": 1},
        {"weight": 0.25, "waitInterval": 2},
        {"weight": 0.6, "waitInterval": 1},
        {"weight": 1.0, "waitInterval": 1},
    ]
    write_function(setup.repo, setup.outputs, traffic={"steps": steps})
    setup.repo.commit("add orders")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    local_aws.journal.clear()
    write_function(setup.repo, setup.outputs, code="green", traffic={"steps": steps})
    setup.repo.commit("green")
    report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    deployment = report.finished[0][1].deployment_id
    assert await setup.weights(deployment) == [0.1, 0.25, 0.6, 1.0]
    assert _alias_moves(local_aws) == [
        ("1", {"2": 0.1}),
        ("1", {"2": 0.25}),
        ("1", {"2": 0.6}),
        ("2", {}),
    ]
    local_aws.journal.check_invariants()
