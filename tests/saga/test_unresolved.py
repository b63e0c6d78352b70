"""A read that settles a step with no recorded outcome and keeps failing, given/when/then.

Driven like the runner does it, without I/O: fold, decide, answer every resolve read with
the given failure, let every pause run out, and collect what would be appended.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engine.events import Event
from engine.events.function import (
    DeploymentFinished,
    RollbackStarted,
    StepFailed,
    TimerStarted,
)
from engine.saga import (
    Call,
    CallOutcome,
    Failed,
    Ok,
    Record,
    SagaContext,
    SagaPolicy,
    SagaState,
    Wait,
    Waited,
    fold,
    initial_state,
    next_effect,
    on_outcome,
)
from engine.saga.results import Published, VersionsRead
from tests.saga.support import NAME, alias_write
from tests.saga.test_saga import IN_CANARY, NOW, UNTIL_PUBLISH, started

THROTTLED = Failed(
    kind="throttled", code="ThrottlingException", message="Rate exceeded", retryable=True
)
DOWN = Failed(kind="error", code="ServiceException", message="internal error", retryable=True)
DENIED = Failed(
    kind="error", code="AccessDeniedException", message="not authorized", retryable=False
)


@dataclass
class Drive:
    """What a run recorded, the calls it made and the pauses between resolve reads."""

    state: SagaState
    recorded: list[Event] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    pauses: list[float] = field(default_factory=list)

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.recorded if isinstance(e, kind)]


def drive(
    given: Sequence[Event],
    answer: Callable[[int], CallOutcome],
    policy: SagaPolicy | None = None,
    limit: int = 500,
    until: type[Event] = DeploymentFinished,
) -> Drive:
    """Run the saga from ``given`` until a deployment finishes (or an ``until`` event is
    recorded); ``answer(n)`` is the outcome of the n-th resolve read (1-based)."""
    state = fold(initial_state(NAME, policy) if policy else initial_state(NAME), list(given))
    run = Drive(state)
    now: datetime = NOW
    reads = 0
    for _ in range(limit):
        effect = next_effect(run.state, now)
        events: list[Event]
        if isinstance(effect, Record):
            events = list(effect.events)
        elif isinstance(effect, Wait):
            if effect.intent is not None:
                run.state = fold(run.state, [effect.intent])
                run.recorded.append(effect.intent)
            run.pauses.append((effect.until - now).total_seconds())
            now = max(now, effect.until)
            events = on_outcome(run.state, effect, Waited(completed=True), SagaContext(now=now))
        else:
            assert isinstance(effect, Call)
            run.calls.append(effect)
            assert effect.resolves is not None, f"only resolve reads expected, got {effect}"
            reads += 1
            events = on_outcome(run.state, effect, answer(reads), SagaContext(now=now))
        run.state = fold(run.state, events)
        run.recorded.extend(events)
        if any(isinstance(e, until) for e in events):
            return run
    raise AssertionError("the saga never finished")


DANGLING_PUBLISH: list[Event] = [*UNTIL_PUBLISH, started("publish")]


def test_a_failing_resolve_read_records_one_failure_and_gives_up() -> None:
    """Given a publish with no outcome, when every read of the versions fails the same way,
    then one StepFailed is recorded, the reads stop after the policy's bound, the deployment
    finishes failed naming the step and what to check, and nothing is published again."""
    run = drive(DANGLING_PUBLISH, lambda n: THROTTLED)
    bound = run.state.policy.resolve_attempts
    assert len(run.calls) == bound == 20
    assert {c.method for c in run.calls} == {"list_versions"}
    assert not any(c.mutation for c in run.calls)
    assert len(run.of(StepFailed)) == 1
    # One event per further read (its pause), then the end: bounded, not one per second.
    assert len(run.of(TimerStarted)) == bound - 1
    assert len(run.recorded) == bound + 1
    (finished,) = run.of(DeploymentFinished)
    assert isinstance(finished, DeploymentFinished)
    assert finished.outcome == "failed"
    assert finished.stable_version == "1"
    assert "outcome of publish is unknown" in finished.reason
    assert "20 read(s) with list_versions" in finished.reason
    assert "ThrottlingException" in finished.reason
    assert "'glam deployment d2'" in finished.reason
    assert "glam retry" in finished.reason
    assert run.state.active is None
    assert run.state.stable_version == "1"


def test_pauses_between_reads_grow_to_the_cap() -> None:
    """Given reads that keep failing, then the pauses double up to the backoff cap."""
    run = drive(DANGLING_PUBLISH, lambda n: DOWN)
    cap = run.state.policy.retry.max_backoff
    assert run.pauses[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, cap]
    assert run.pauses == sorted(run.pauses)
    assert max(run.pauses) == cap


def test_each_new_error_is_recorded_once() -> None:
    """Given reads failing A, A, B, B, B, A, then success, then StepFailed is recorded when
    the error changes only, and the publish is adopted (not repeated)."""
    answers = [DOWN, DOWN, THROTTLED, THROTTLED, THROTTLED, DOWN]
    versions = Ok(
        VersionsRead(versions=(Published(version="2", description="glam deployment d2"),))
    )
    given = DANGLING_PUBLISH
    state = fold(initial_state(NAME), given)
    recorded: list[Event] = []
    now = NOW
    reads = 0
    while reads <= len(answers):
        effect = next_effect(state, now)
        if isinstance(effect, Wait):
            if effect.intent is not None:
                state = fold(state, [effect.intent])
                recorded.append(effect.intent)
            now = effect.until
            events = on_outcome(state, effect, Waited(completed=True), SagaContext(now=now))
        else:
            assert isinstance(effect, Call)
            assert effect.resolves == "publish"
            outcome = answers[reads] if reads < len(answers) else versions
            reads += 1
            events = on_outcome(state, effect, outcome, SagaContext(now=now))
        state = fold(state, events)
        recorded.extend(events)
    codes = [e.error_code for e in recorded if isinstance(e, StepFailed)]
    assert codes == ["ServiceException", "ThrottlingException", "ServiceException"]
    assert state.active is not None
    assert state.active.new_version == "2"
    assert state.active.phase == "readiness"
    assert state.active.unresolved == 0


def test_a_refused_read_is_not_retried_for_long() -> None:
    """Given AccessDenied on every read, then the deployment finishes failed after the
    policy's few refused reads, saying the read was refused."""
    run = drive(DANGLING_PUBLISH, lambda n: DENIED)
    assert len(run.calls) == run.state.policy.resolve_refused_attempts == 3
    assert len(run.of(StepFailed)) == 1
    (finished,) = run.of(DeploymentFinished)
    assert isinstance(finished, DeploymentFinished)
    assert finished.outcome == "failed"
    assert "AccessDeniedException (refused: not retried further)" in finished.reason


def test_bounds_are_policy() -> None:
    """Given a policy of 5 reads, then the fifth failed read ends the deployment."""
    policy = SagaPolicy(resolve_attempts=5)
    run = drive(DANGLING_PUBLISH, lambda n: DOWN, policy=policy)
    assert len(run.calls) == 5
    assert len(run.recorded) == 5 + 1


def test_replay_keeps_the_count() -> None:
    """Given half the reads recorded before a restart, when the log is folded again, then
    only the rest of the reads are made."""
    first = drive(DANGLING_PUBLISH, lambda n: DOWN, policy=SagaPolicy(resolve_attempts=10))
    # The log up to the fifth pause, as a restarted engine would fold it.
    cut = [i for i, e in enumerate(first.recorded) if isinstance(e, TimerStarted)][4]
    given: list[Event] = [*DANGLING_PUBLISH, *first.recorded[: cut + 1]]
    again = drive(given, lambda n: DOWN, policy=SagaPolicy(resolve_attempts=10))
    assert len(again.calls) == 5
    assert len(again.of(StepFailed)) == 0  # the same error is already on record


def test_an_unresolved_shift_rolls_the_alias_back() -> None:
    """Given a shift with no outcome whose GetAlias keeps failing, then the deployment rolls
    back (not "failed": the alias may be shifted), saying what stayed unknown, and the next
    call sets the alias to the stable version with no routing, right whatever the shift did."""
    given: list[Event] = [
        *IN_CANARY[:-4],
        started("shift", version="1", routing={"2": 0.2}),
    ]
    run = drive(given, lambda n: DOWN, until=RollbackStarted)
    assert {c.method for c in run.calls} == {"get_alias"}
    assert run.of(DeploymentFinished) == []
    (rollback,) = run.of(RollbackStarted)
    assert isinstance(rollback, RollbackStarted)
    assert "outcome of shift is unknown" in rollback.reason
    assert "alias live of function orders" in rollback.reason
    assert "version 1 routing 20% to version 2" in rollback.reason
    effect = next_effect(run.state, NOW + timedelta(hours=1))
    assert isinstance(effect, Call)
    assert effect.method == "update_alias"
    assert alias_write(effect) == ("rollback_alias", "1", None)


def test_a_new_intent_starts_a_new_count() -> None:
    """Given failed reads that ended when the read showed the publish never happened, then the
    repeated publish's own dangling intent starts counting from zero."""
    given: list[Event] = [
        *DANGLING_PUBLISH,
        StepFailed(
            deployment_id="d2",
            step="resolve:publish",
            error_code="ServiceException",
            message="x",
            retryable=True,
        ),
        TimerStarted(deployment_id="d2", purpose="resolve", until=NOW + timedelta(seconds=1)),
    ]
    state = fold(initial_state(NAME), given)
    assert state.active is not None
    assert state.active.unresolved == 1
    state = fold(state, [started("publish", attempt=2)])
    assert state.active is not None
    assert (state.active.unresolved, state.active.unresolved_code) == (0, None)
