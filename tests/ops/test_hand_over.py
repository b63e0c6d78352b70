"""The operator hand-over decided, given/when/then: ``decide_hand_over(command, target)`` is
what the CLI checks a command with and what the engine records when it hands it over."""

from __future__ import annotations

import pytest

from engine.events import Event
from engine.events.function import (
    DeploymentFinished,
    DeploymentRequested,
    OperatorRequested,
    RollbackStarted,
)
from engine.events.operator import OPS_STREAM, OperatorCommandIssued
from engine.operator import HandOver, Refusal, Target, decide_hand_over
from engine.planner import DeployedState, evolve_deployed
from engine.saga import fold, initial_state
from engine.saga.saga import SUPERSEDABLE
from tests.builders import active
from tests.ops.test_saga_operator import INSPECTING, PROMOTING
from tests.saga.support import NAME, STREAM, desired, requested
from tests.saga.test_saga import DEPLOYED, IN_CANARY

SHA = "4f2a91c0" * 5
REPO = "repo:/r#main"


def command(
    kind: str, target: str = STREAM, deployment_id: str | None = None
) -> OperatorCommandIssued:
    return OperatorCommandIssued(
        command=kind,
        target=target,
        reason="p99 doubled",
        deployment_id=deployment_id,
    )


def saga(events: list[Event]) -> Target:
    return Target(saga=fold(initial_state(NAME), events))


def decide(given: OperatorCommandIssued, target: Target) -> HandOver | Refusal:
    return decide_hand_over(given, target, actor="alice", new_id=lambda: "dep-new")


def copy(kind: str, deployment_id: str | None = None, **ignored: str) -> OperatorRequested:
    return OperatorRequested(
        command=kind,
        target=STREAM,
        actor="alice",
        reason="p99 doubled",
        deployment_id=deployment_id,
        **ignored,
    )


ROLLING_BACK: list[Event] = [*IN_CANARY, RollbackStarted(deployment_id="d2", reason="alarm")]


@pytest.mark.parametrize("kind", ["abort", "promote"])
def test_the_deployment_in_flight_takes_the_command(kind: str) -> None:
    """An abort or promote of a canary is handed to the deployment in flight, by id."""
    decision = decide(command(kind), saga(IN_CANARY))
    assert decision == HandOver(
        STREAM, (copy(kind, deployment_id="d2"),), deployment_id="d2", commit="c-d2"
    )


@pytest.mark.parametrize(
    ("given", "kind", "reason"),
    [
        pytest.param(DEPLOYED, "abort", f"nothing in flight for {STREAM} to abort", id="idle"),
        pytest.param(
            ROLLING_BACK,
            "abort",
            f"deployment d2 of {STREAM} is already rolling back",
            id="abort-rolling-back",
        ),
        pytest.param(
            ROLLING_BACK,
            "promote",
            f"deployment d2 of {STREAM} is already rolling back",
            id="promote-rolling-back",
        ),
        pytest.param(
            PROMOTING,
            "abort",
            f"deployment d2 of {STREAM} is past its last safe point (delete_old)",
            id="promoting",
        ),
        pytest.param(
            [*DEPLOYED, requested("d2", None, action="delete")],
            "promote",
            f"deployment d2 of {STREAM} deletes the function",
            id="promote-a-delete",
        ),
    ],
)
def test_a_command_the_saga_would_drop_is_refused(
    given: list[Event], kind: str, reason: str
) -> None:
    """What the saga would not act on is refused, and recorded as ignored with why: never
    "applied" for a command that changes nothing (an abort while rolling back, too late)."""
    decision = decide(command(kind), saga(given))
    assert isinstance(decision, Refusal)
    assert decision.reason == reason
    assert decision.stream == STREAM
    assert decision.events == (copy(kind, outcome="ignored", note=reason),)


def test_a_command_checked_against_another_deployment_is_refused() -> None:
    """Handed over late, a command never reaches a deployment other than the one checked."""
    decision = decide(command("abort", deployment_id="d1"), saga(IN_CANARY))
    assert isinstance(decision, Refusal)
    assert decision.reason == "deployment d1 is no longer in flight (d2 is)"


def test_the_safe_points_are_those_before_the_promote() -> None:
    """Inspecting is a safe point (an abort finishes at once); deleting the old version after
    the last bake is not."""
    assert active(fold(initial_state(NAME), INSPECTING)).phase in SUPERSEDABLE
    assert active(fold(initial_state(NAME), PROMOTING)).phase not in SUPERSEDABLE


ROLLED_BACK: list[Event] = [
    *DEPLOYED,
    requested("d2", desired("v2")),
    DeploymentFinished(deployment_id="d2", outcome="rolled_back", stable_version="1"),
]


def retry_target(events: list[Event]) -> Target:
    deployed = DeployedState(stream=STREAM)
    for event in events:
        deployed = evolve_deployed(deployed, event)
    return Target(deployed=deployed)


def test_a_retry_requests_the_rolled_back_state_again() -> None:
    """A retry hands the copy over with the request it makes, from the rolled-back commit."""
    decision = decide(command("retry", deployment_id="d2"), retry_target(ROLLED_BACK))
    request = DeploymentRequested(
        deployment_id="dep-new", commit="c-d2", action="update", desired=desired("v2")
    )
    assert decision == HandOver(STREAM, (copy("retry"), request), deployment_id="d2", commit="c-d2")


@pytest.mark.parametrize(
    ("given", "wanted", "reason"),
    [
        pytest.param(
            DEPLOYED, None, f"{STREAM} has no rolled-back desired state to retry", id="nothing"
        ),
        pytest.param(
            [*ROLLED_BACK, requested("d3", desired("v3"))],
            None,
            f"{STREAM} has a deployment in progress; abort it first",
            id="in-flight",
        ),
        pytest.param(
            ROLLED_BACK, "d0", "deployment d0 is no longer the rolled-back one", id="other"
        ),
    ],
)
def test_a_retry_that_cannot_act_is_refused(
    given: list[Event], wanted: str | None, reason: str
) -> None:
    """A retry needs a rolled-back desired state, nothing in flight, and the one checked."""
    decision = decide(command("retry", deployment_id=wanted), retry_target(given))
    assert isinstance(decision, Refusal)
    assert decision.reason == reason


def test_allow_deletes_of_a_held_commit() -> None:
    """Held deletes are released on the branch's stream, stamped with the commit."""
    decision = decide(command("allow_deletes", SHA), Target(repo_stream=REPO, held={SHA}))
    assert isinstance(decision, HandOver)
    assert (decision.stream, decision.commit) == (REPO, SHA)


def test_allow_deletes_of_a_commit_with_nothing_held_is_refused() -> None:
    decision = decide(command("allow_deletes", SHA), Target(repo_stream=REPO, held=set()))
    assert isinstance(decision, Refusal)
    assert (decision.stream, decision.reason) == (REPO, f"no deletes are held for commit {SHA}")


@pytest.mark.parametrize("target", ["orders", "fn:1:us-east-1", "repo:x#main"])
def test_a_command_naming_no_function_is_recorded_on_ops(target: str) -> None:
    """A target that is no function stream is ignored on the ``ops`` stream itself."""
    decision = decide(command("abort", target), Target())
    assert isinstance(decision, Refusal)
    assert decision.stream == OPS_STREAM
    assert decision.reason == f"{target} is not a function stream"
