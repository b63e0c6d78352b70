"""The pure saga, given/when/then: fold the given events, decide, compare."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.events import Event
from engine.events.desired import TrafficShifting
from engine.events.function import (
    DeploymentFinished,
    RollbackStarted,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerStarted,
    TrafficShifted,
)
from engine.saga import (
    Call,
    Done,
    Failed,
    InvariantViolation,
    Ok,
    Record,
    SagaContext,
    SagaState,
    Wait,
    Waited,
    fold,
    initial_state,
    next_effect,
    on_outcome,
    weights,
)
from engine.saga.effects import DeleteVersion
from engine.saga.results import FunctionRead, Published, VersionsRead
from engine.saga.state import assert_alias_safe, check_deletable
from tests.builders import active
from tests.saga.support import NAME, alias_write, desired, requested

NOW = datetime(2025, 1, 1, tzinfo=UTC)
CTX = SagaContext(now=NOW)


def ok(step: str, **result: object) -> StepSucceeded:
    return StepSucceeded(deployment_id="d2", step=step, result=dict(result))


def started(step: str, attempt: int = 1, **request: object) -> StepStarted:
    return StepStarted(deployment_id="d2", step=step, attempt=attempt, request=dict(request))


DEPLOYED: list[Event] = [
    requested("d1", desired("v1"), action="create"),
    DeploymentFinished(deployment_id="d1", outcome="succeeded", stable_version="1"),
]
ARN = f"arn:aws:lambda:us-east-1:1:function:{NAME}"
# The reads of an update whose code changed: $LATEST and the stable version hold v1's code.
INSPECTED: list[Event] = [
    *DEPLOYED,
    requested("d2", desired("v2", alarms=("errors",))),
    ok("inspect_function", found=True, arn=ARN, code_sha256="v1-sha", differs=[]),
    ok("hash_code", code_sha256="v2-sha"),
    ok("inspect_stable", found=True, version="1", code_sha256="v1-sha", differs=[]),
]
UNTIL_PUBLISH: list[Event] = [
    *INSPECTED,
    started("update_code"),
    ok("update_code"),
    ok("wait_code", last_update_status="Successful", code_sha256="abc", revision_id="r2"),
]
PUBLISHED: list[Event] = [
    *UNTIL_PUBLISH,
    started("publish", known_version=1),
    ok("publish", version="2"),
]
IN_CANARY: list[Event] = [
    *PUBLISHED,
    ok("readiness", state="Active"),
    started("sources"),
    ok("sources", changes=[]),
    TimerStarted(deployment_id="d2", purpose="alarms", until=NOW),
    ok("wait:alarms", alarms={"errors": "OK"}),
    started("shift", version="1", routing={"2": 0.2}),
    ok("shift", found=True, function_version="1", routing={"2": 0.2}),
    TrafficShifted(
        deployment_id="d2", alias="live", stable_version="1", new_version="2", weight=0.2
    ),
    TimerStarted(deployment_id="d2", purpose="bake", until=NOW + timedelta(seconds=60)),
]


def state_of(events: Sequence[Event]) -> SagaState:
    return fold(initial_state(NAME), list(events))


@pytest.mark.parametrize(
    ("traffic", "expected"),
    [
        pytest.param(TrafficShifting(type="CANARY", percent=20), (0.2,), id="canary"),
        pytest.param(TrafficShifting(type="CANARY", percent=100), (), id="canary-100"),
        pytest.param(TrafficShifting(type="LINEAR", percent=30), (0.3, 0.6, 0.9), id="linear"),
        pytest.param(TrafficShifting(type="LINEAR", percent=20), (0.2, 0.4, 0.6, 0.8), id="l20"),
        pytest.param(TrafficShifting(type="LINEAR", percent=50), (0.5,), id="linear-even"),
        pytest.param(TrafficShifting(type="ALL_AT_ONCE"), (), id="all-at-once"),
        pytest.param(None, (), id="no-shifting"),
    ],
)
def test_schedule_weights(traffic: TrafficShifting | None, expected: tuple[float, ...]) -> None:
    """Each strategy has its exact weights before the promote, which is the 100 % step."""
    assert weights(traffic) == expected


def test_dangling_publish_is_resolved_by_listing_versions() -> None:
    """A publish with no recorded outcome is resolved by a read, never published again."""
    effect = next_effect(state_of([*UNTIL_PUBLISH, started("publish")]), NOW)
    assert isinstance(effect, Call)
    assert (effect.method, effect.resolves, effect.mutation) == ("list_versions", "publish", False)


def test_resolved_publish_adopts_the_version_above_the_known_one_with_its_code() -> None:
    """The version above the highest one known before the publish, with the code the
    publish expected, is adopted (one with other code, or the known one, is not)."""
    state = state_of([*UNTIL_PUBLISH, started("publish", known_version=1, code_sha256="abc")])
    effect = next_effect(state, NOW)
    versions = (
        Published(version="1", code_sha256="abc"),
        Published(version="2", code_sha256="other"),
        Published(version="3", code_sha256="abc"),
    )
    events = on_outcome(state, effect, Ok(VersionsRead(versions=versions)), CTX)
    assert events == [
        StepSucceeded(deployment_id="d2", step="publish", result=versions[2].to_json())
    ]
    assert fold(state, events).active.new_version == "3"  # type: ignore[union-attr]


def test_a_publish_intent_of_an_earlier_glam_is_settled_by_its_marker() -> None:
    """An intent recorded with the Description marker (no known version) still resolves."""
    intent = started("publish", description="glam deployment d2", code_sha256="abc")
    state = state_of([*UNTIL_PUBLISH, intent])
    versions = (
        Published(version="1", description="glam deployment d1"),
        Published(version="2", description="glam deployment d2"),
    )
    events = on_outcome(state, next_effect(state, NOW), Ok(VersionsRead(versions=versions)), CTX)
    assert active(fold(state, events)).new_version == "2"


def test_the_publish_records_the_highest_known_version_and_no_description() -> None:
    """The intent names the version above which the read after a crash looks; the call has
    no Description, so the version keeps the user's."""
    effect = next_effect(state_of(UNTIL_PUBLISH), NOW)
    assert isinstance(effect, Call)
    assert effect.intent is not None
    assert effect.intent.request == {
        "name": NAME,
        "code_sha256": "abc",
        "revision_id": "r2",
        "known_version": 1,
    }
    assert "description" not in effect.operation.arguments()


def test_unresolved_publish_is_repeated_with_next_attempt() -> None:
    """A publish the read shows never happened is repeated as attempt 2."""
    state = state_of([*UNTIL_PUBLISH, started("publish")])
    events = on_outcome(state, next_effect(state, NOW), Ok(VersionsRead()), CTX)
    assert [type(e).__name__ for e in events] == ["StepFailed"]
    effect = next_effect(fold(state, events), NOW)
    assert isinstance(effect, Call)
    assert effect.intent is not None
    assert (effect.method, effect.intent.attempt) == ("publish_version", 2)


@pytest.mark.parametrize(
    ("step", "method"),
    [
        pytest.param("create_function", "get_function", id="create"),
        pytest.param("shift", "get_alias", id="shift"),
        pytest.param("promote", "get_alias", id="promote"),
        pytest.param("rollback_alias", "get_alias", id="rollback-alias"),
        pytest.param("delete_old", "list_versions", id="delete-old"),
        pytest.param("rollback_delete_new", "list_versions", id="delete-new"),
        pytest.param("delete_function", "get_function", id="delete-function"),
    ],
)
def test_every_dangling_mutation_is_read_first(step: str, method: str) -> None:
    """A dangling write-ahead step is resolved by the matching read before anything else."""
    effect = next_effect(state_of([*PUBLISHED, started(step)]), NOW)
    assert isinstance(effect, Call)
    assert (effect.method, effect.resolves) == (method, step)


def test_bake_waits_with_alarms() -> None:
    """After a shift the saga waits the recorded bake, polling the configured alarms."""
    effect = next_effect(state_of(IN_CANARY), NOW)
    assert isinstance(effect, Wait)
    assert (effect.until, effect.alarms, effect.intent) == (
        NOW + timedelta(seconds=60),
        ("errors",),
        None,
    )


@pytest.mark.parametrize(
    ("alarm", "reason"),
    [
        pytest.param("ALARM", "alarm errors is in ALARM", id="alarm"),
        pytest.param("MISSING", "alarm errors does not exist", id="missing"),
    ],
)
def test_alarm_during_bake_rolls_back(alarm: str, reason: str) -> None:
    """An alarm in ALARM or missing during a bake starts a rollback."""
    state = state_of(IN_CANARY)
    events = on_outcome(state, next_effect(state, NOW), Waited(False, {"errors": alarm}), CTX)
    assert events[-1] == RollbackStarted(deployment_id="d2", reason=reason)
    effect = next_effect(fold(state, events), NOW)
    assert alias_write(effect) == ("rollback_alias", "1", None)


def test_the_promote_is_the_last_step_and_is_baked_too() -> None:
    """After the canary's bake the promote moves the alias (the 100 % step), then a bake
    with the alarms watched, and only then the old version is deleted."""
    baked = [*IN_CANARY, ok("wait:bake")]
    assert alias_write(next_effect(state_of(baked), NOW)) == ("promote", "2", None)
    promoted = [
        *baked,
        started("promote", version="2"),
        ok("promote", found=True, function_version="2", routing={}),
    ]
    effect = next_effect(state_of(promoted), NOW)
    assert isinstance(effect, Wait)
    assert (effect.purpose, effect.alarms) == ("bake", ("errors",))
    delete = next_effect(state_of([*promoted, *_timer_done()]), NOW)
    assert isinstance(delete, Call)
    assert (str(delete.step), delete.method) == ("delete_old", "delete_version")


def test_an_alarm_in_the_bake_after_the_promote_rolls_back() -> None:
    """An alarm after the promote puts the alias back on the old version and deletes the
    new one; the old version was not deleted yet."""
    promoted = [
        *IN_CANARY,
        ok("wait:bake"),
        started("promote", version="2"),
        ok("promote", found=True, function_version="2", routing={}),
        TimerStarted(deployment_id="d2", purpose="bake", until=NOW + timedelta(seconds=60)),
    ]
    state = state_of(promoted)
    events = on_outcome(state, next_effect(state, NOW), Waited(False, {"errors": "ALARM"}), CTX)
    assert isinstance(events[-1], RollbackStarted)
    state = fold(state, events)
    assert alias_write(next_effect(state, NOW)) == ("rollback_alias", "1", None)
    state = fold(
        state,
        [started("rollback_alias"), ok("rollback_alias", function_version="1", routing={})],
    )
    effect = next_effect(state, NOW)
    assert isinstance(effect, Call)
    assert (str(effect.step), effect.operation) == ("rollback_delete_new", DeleteVersion(NAME, "2"))


def test_a_newer_request_waits_for_the_bake_after_the_promote() -> None:
    """Once promoted the deployment is not superseded: it finishes its last bake first."""
    promoted = [
        *IN_CANARY,
        ok("wait:bake"),
        started("promote", version="2"),
        ok("promote", found=True, function_version="2", routing={}),
        requested("d3", desired("v3")),
    ]
    effect = next_effect(state_of(promoted), NOW)
    assert isinstance(effect, Wait)
    assert effect.purpose == "bake"


def test_the_alarms_are_read_once_before_the_first_weight_moves() -> None:
    """With alarms configured, a wait that ends at once reads them before the first shift:
    a missing or firing alarm rolls back before any traffic moved."""
    wired = [*PUBLISHED, ok("readiness", state="Active"), started("sources"), ok("sources")]
    state = state_of(wired)
    effect = next_effect(state, NOW)
    assert isinstance(effect, Wait)
    assert (effect.purpose, effect.until, effect.alarms) == ("alarms", NOW, ("errors",))
    events = on_outcome(state, effect, Waited(False, {"errors": "MISSING"}), CTX)
    assert isinstance(events[-1], RollbackStarted)
    rolled = next_effect(fold(state, events), NOW)
    # The alias never moved: nothing to set back, only the new version to delete.
    assert isinstance(rolled, Call)
    assert str(rolled.step) == "rollback_delete_new"


def _timer_done() -> list[Event]:
    return [
        TimerStarted(deployment_id="d2", purpose="bake", until=NOW + timedelta(seconds=120)),
        ok("wait:bake"),
    ]


def test_readiness_exhausted_rolls_back() -> None:
    """A version not Active after maxRetries readiness checks rolls back."""
    polls: list[Event] = [*PUBLISHED]
    for _ in range(3):
        polls += [
            ok("readiness", state="Pending"),
            TimerStarted(deployment_id="d2", purpose="readiness", until=NOW),
            ok("wait:readiness"),
        ]
    state = state_of(polls)
    effect = next_effect(state, NOW)
    assert isinstance(effect, Call)
    events = on_outcome(state, effect, Ok(FunctionRead(state="Pending")), CTX)
    assert isinstance(events[-1], RollbackStarted)


def test_supersede_at_safe_point() -> None:
    """A newer request held during a canary rolls the current one back as superseded."""
    state = state_of([*IN_CANARY, requested("d3", desired("v3"))])
    effect = next_effect(state, NOW)
    assert effect == Record(
        (
            RollbackStarted(
                deployment_id="d2", reason="superseded by deployment d3", superseded_by="d3"
            ),
        )
    )


def test_first_deployment_failure_is_failed() -> None:
    """A create that fails for good finishes failed: there is no stable version."""
    state = state_of(
        [requested("d2", desired("v1"), action="create"), ok("inspect_function", found=False)]
    )
    effect = next_effect(state, NOW)
    assert isinstance(effect, Call)
    assert effect.method == "create_function"
    events = on_outcome(
        state, effect, Failed("invalid", "InvalidParameterValueException", "no", False), CTX
    )
    assert isinstance(events[-1], DeploymentFinished)
    assert events[-1].outcome == "failed"
    assert "no stable version" in events[-1].reason


def test_delete_path() -> None:
    """A delete detaches sources before deleting the function."""
    state = state_of(
        [
            *DEPLOYED,
            requested("d2", None, action="delete"),
            ok("inspect_function", found=True, arn="arn"),
        ]
    )
    effect = next_effect(state, NOW)
    assert isinstance(effect, Call)
    assert (str(effect.step), effect.method) == ("detach_sources", "detach_all")
    state = fold(state, [started("detach_sources"), ok("detach_sources", changes=[])])
    effect = next_effect(state, NOW)
    assert isinstance(effect, Call)
    assert effect.method == "delete_function"
    state = fold(state, [started("delete_function"), ok("delete_function")])
    record = next_effect(state, NOW)
    assert isinstance(record, Record)
    assert [e.type for e in record.events] == ["FunctionDeleted", "DeploymentFinished"]
    assert next_effect(fold(state, list(record.events)), NOW) == Done()


def test_retryable_failure_backs_off_then_repeats() -> None:
    """A throttled step waits its backoff, then repeats as the next attempt."""
    state = state_of(
        [
            *UNTIL_PUBLISH,
            started("publish"),
            StepFailed(
                deployment_id="d2",
                step="publish",
                error_code="Throttling",
                message="slow down",
                retryable=True,
                kind="throttled",
            ),
        ]
    )
    wait = next_effect(state, NOW)
    assert isinstance(wait, Wait)
    assert wait.until == NOW + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("version", "routing"),
    [
        pytest.param("$LATEST", {}, id="latest-target"),
        pytest.param("1", {"$LATEST": 0.1}, id="latest-routing"),
        pytest.param("1", {"2": 0.1, "3": 0.1}, id="two-extra"),
        pytest.param("1", {"2": 1.5}, id="weight-above-one"),
        pytest.param("1", {"2": -0.1}, id="weight-negative"),
    ],
)
def test_alias_invariants(version: str, routing: dict[str, float]) -> None:
    """$LATEST never routed, at most one extra version, weights in [0, 1]."""
    with pytest.raises(InvariantViolation):
        assert_alias_safe(version, routing)


@pytest.mark.parametrize(
    ("victim", "alias", "routing"),
    [
        pytest.param("1", "1", {}, id="alias-target"),
        pytest.param("2", "1", {"2": 0.2}, id="in-routing"),
        pytest.param("$LATEST", "1", {}, id="latest"),
    ],
)
def test_never_delete_a_referenced_version(
    victim: str, alias: str, routing: dict[str, float]
) -> None:
    """A version the alias or its routing references is never deleted."""
    with pytest.raises(InvariantViolation):
        check_deletable(victim, alias, routing)


HISTORY: list[Event] = [
    *IN_CANARY,
    ok("wait:bake"),
    started("promote", version="2"),
    ok("promote", found=True, function_version="2", routing={}),
    *_timer_done(),
    started("delete_old", version="1"),
    ok("delete_old"),
    DeploymentFinished(deployment_id="d2", outcome="succeeded", stable_version="2"),
]


@given(st.integers(min_value=0, max_value=len(HISTORY)))
def test_fold_prefix_then_rest_equals_fold_all(split: int) -> None:
    """Folding a prefix and then the rest gives the state folding everything gives."""
    whole = state_of(HISTORY)
    assert fold(state_of(HISTORY[:split]), HISTORY[split:]) == whole
    assert whole.idle
    assert whole.stable_version == "2"
