"""Operator commands in the pure saga, given/when/then: an abort or promote handed to the
function stream (``OperatorRequested``) acts at the deployment's next safe point."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.events import Event
from engine.events.function import (
    DeploymentFinished,
    OperatorRequested,
    RollbackStarted,
    TimerStarted,
)
from engine.saga import Call, Ok, Record, StepName, Wait, Waited, fold, next_effect, on_outcome
from engine.saga.results import AliasRead, Deleted, SourcesChanged
from engine.saga.state import OPERATOR_PROMOTE
from tests.saga.support import STREAM, alias_write, desired, requested
from tests.saga.test_saga import (
    CTX,
    DEPLOYED,
    IN_CANARY,
    NOW,
    PUBLISHED,
    UNTIL_PUBLISH,
    ok,
    started,
    state_of,
)

ABORTED = "aborted by alice: p99 doubled"


def op(command: str, deployment_id: str | None = "d2") -> OperatorRequested:
    return OperatorRequested(
        command=command,
        target=STREAM,
        actor="alice",
        reason="p99 doubled",
        deployment_id=deployment_id,
    )


INSPECTING: list[Event] = [*DEPLOYED, requested("d2", desired("v2"))]
CREATING: list[Event] = [
    requested("d2", desired("v1"), action="create"),
    ok("inspect_function", found=False),
    started("create_function"),
    ok("create_function", arn="arn", code_sha256="s", revision_id="r"),
]
READINESS = PUBLISHED
# The bake after the promote (the 100 % step): an abort still rolls back; nothing to promote.
BAKING_LAST: list[Event] = [
    *IN_CANARY,
    ok("wait:bake"),
    started("promote", version="2"),
    ok("promote", found=True, function_version="2", routing={}),
    TimerStarted(deployment_id="d2", purpose="bake", until=NOW + timedelta(seconds=120)),
]
# Past the last safe point: the last bake is over, the old version is being deleted.
PROMOTING: list[Event] = [*BAKING_LAST, ok("wait:bake")]


@pytest.mark.parametrize(
    ("given", "then"),
    [
        pytest.param(
            INSPECTING,
            DeploymentFinished(
                deployment_id="d2",
                outcome="rolled_back",
                reason=ABORTED + "; nothing had been changed",
                stable_version="1",
            ),
            id="inspecting",
        ),
        pytest.param(UNTIL_PUBLISH, RollbackStarted(deployment_id="d2", reason=ABORTED), id="code"),
        pytest.param(READINESS, RollbackStarted(deployment_id="d2", reason=ABORTED), id="ready"),
        pytest.param(IN_CANARY, RollbackStarted(deployment_id="d2", reason=ABORTED), id="bake"),
        pytest.param(BAKING_LAST, RollbackStarted(deployment_id="d2", reason=ABORTED), id="last"),
    ],
)
def test_abort_rolls_back_at_the_next_safe_point(given: list[Event], then: Event) -> None:
    """An abort is decided at once between steps: roll back (or finish when nothing changed)."""
    assert next_effect(state_of([*given, op("abort")]), NOW) == Record((then,))


def test_aborted_canary_finishes_rolled_back_with_the_operators_reason() -> None:
    """The aborted canary puts the alias back, deletes the new version, finishes rolled_back."""
    events: list[Event] = [*IN_CANARY, op("abort")]
    state = state_of(events)
    for outcome in (
        AliasRead(function_version="1"),  # rollback_alias: its answer is the alias as it is
        Deleted(),  # rollback_delete_new
        SourcesChanged(),  # rollback_sources: the deployed sources put back
    ):
        effect = next_effect(state, NOW)
        if isinstance(effect, Record):
            state = fold(state, effect.events)
            effect = next_effect(state, NOW)
        assert isinstance(effect, Call)
        if effect.intent is not None:
            state = fold(state, [effect.intent])
        state = fold(state, on_outcome(state, effect, Ok(outcome), CTX))
    finish = next_effect(state, NOW)
    assert isinstance(finish, Record)
    [finished] = finish.events
    assert finished == DeploymentFinished(
        deployment_id="d2", outcome="rolled_back", reason=ABORTED, stable_version="1"
    )


def test_abort_of_a_first_deployment_finishes_failed() -> None:
    """A create has no stable version to go back to: the abort finishes it failed."""
    effect = next_effect(state_of([*CREATING, op("abort")]), NOW)
    assert isinstance(effect, Record)
    [finished] = effect.events
    assert isinstance(finished, DeploymentFinished)
    assert finished.outcome == "failed"
    assert finished.reason.startswith(ABORTED)


def test_abort_waits_for_a_dangling_step_to_be_resolved() -> None:
    """A mutation whose outcome is unknown is read first; the abort acts after."""
    effect = next_effect(state_of([*UNTIL_PUBLISH, started("publish"), op("abort")]), NOW)
    assert isinstance(effect, Call)
    assert effect.resolves == "publish"


@pytest.mark.parametrize(
    "given",
    [pytest.param(PROMOTING, id="promoting"), pytest.param(INSPECTING[:2], id="finished")],
)
def test_abort_too_late_changes_nothing(given: list[Event]) -> None:
    """Once promoting (or with nothing in flight) an abort is ignored: the saga finishes."""
    assert next_effect(state_of([*given, op("abort")]), NOW) == next_effect(state_of(given), NOW)


def test_abort_for_another_deployment_is_ignored() -> None:
    """A command sticks to the deployment it was handed to; a later one never inherits it."""
    given: list[Event] = [*IN_CANARY, op("abort", deployment_id="d1")]
    assert next_effect(state_of(given), NOW) == next_effect(state_of(IN_CANARY), NOW)


@pytest.mark.parametrize("given", [pytest.param(IN_CANARY, id="canary-bake")])
def test_promote_reads_alarms_once_then_promotes(given: list[Event]) -> None:
    """A promote during the schedule waits for nothing: one alarm read, then the promote."""
    state = state_of([*given, op("promote")])
    effect = next_effect(state, NOW)
    assert isinstance(effect, Wait)
    assert (effect.purpose, effect.until, effect.alarms) == (OPERATOR_PROMOTE, NOW, ("errors",))
    assert effect.intent is not None
    state = fold(state, [effect.intent])
    assert next_effect(state, NOW) == Wait(
        purpose=OPERATOR_PROMOTE, until=NOW, alarms=("errors",), poll_seconds=5.0
    )
    state = fold(state, on_outcome(state, effect, Waited(True, {"errors": "OK"}), CTX))
    promote = next_effect(state, NOW)
    assert alias_write(promote) == ("promote", "2", None)


def test_promote_with_an_alarm_firing_rolls_back() -> None:
    """The one read before promoting still guards traffic: ALARM rolls back."""
    state = state_of([*IN_CANARY, op("promote")])
    effect = next_effect(state, NOW)
    assert isinstance(effect, Wait)
    assert effect.intent is not None
    state = fold(state, [effect.intent])
    events = on_outcome(state, effect, Waited(False, {"errors": "ALARM"}), CTX)
    assert events[-1] == RollbackStarted(deployment_id="d2", reason="alarm errors is in ALARM")


def test_promote_before_the_schedule_waits_for_it_then_skips_it() -> None:
    """A promote given while publishing acts once the new version is ready and wired: the
    first shift is skipped too."""
    state = state_of([*READINESS, op("promote")])
    effect = next_effect(state, NOW)
    assert isinstance(effect, Call)
    assert effect.step == StepName("readiness")
    state = fold(
        state, [ok("readiness", state="Active"), started("sources"), ok("sources", changes=[])]
    )
    effect = next_effect(state, NOW)
    assert isinstance(effect, Wait)
    assert effect.purpose == OPERATOR_PROMOTE


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(CREATING, id="create"),
        pytest.param(BAKING_LAST, id="promoted"),
        pytest.param(PROMOTING, id="promoting"),
    ],
)
def test_promote_without_a_schedule_changes_nothing(given: list[Event]) -> None:
    """A first deployment has no schedule to skip; a promote done needs no help."""
    assert next_effect(state_of([*given, op("promote")]), NOW) == next_effect(state_of(given), NOW)


def test_retry_lifts_the_saga_hold_on_the_rolled_back_state() -> None:
    """After a rollback the saga remembers the failed desired state until an operator's retry."""
    rolled: list[Event] = [
        *DEPLOYED,
        requested("d2", desired("v2")),
        DeploymentFinished(deployment_id="d2", outcome="rolled_back", stable_version="1"),
    ]
    assert state_of(rolled).rolled_back_hash == desired("v2").content_hash
    assert state_of([*rolled, op("retry", deployment_id=None)]).rolled_back_hash is None
