"""The deployment saga of one function, as two pure functions.

``next_effect(state, now)`` names what to do next (an AWS call, a durable wait, events to
record, or nothing); the runner performs it and hands the result to
``on_outcome(state, effect, outcome, ctx)``, which returns the events to append. ``evolve``
(engine.saga.replay) folds those events back into the state. Nothing here awaits, reads a
clock, makes an id or talks to AWS, so a recorded history replays to the same decisions.
Two parts of the decisions live beside this module: engine.saga.resolve (settling a dangling
intent by a read) and engine.saga.rollback (what a failure that will not clear leads to).

Rules worth knowing:

- Write-ahead: every mutation carries a ``StepStarted`` intent that the runner makes durable
  before the call. A log ending in an intent with no outcome is resolved by a READ (publish ->
  list versions and adopt the one above the highest version known before it, with the code
  it expects; alias changes -> GetAlias and compare; deletes -> list or GetFunction) before
  anything is repeated. Idempotent steps (configuration and code updates, tags, code
  signing, event sources) are simply repeated.
- What is deployed is what the alias's stable version serves, read from AWS: a version is
  published iff the definition (every member, AWS's default where the file has none) or its
  code differs from it (engine.saga.transitions, "decide").
  A resolve read that keeps failing is retried with capped backoff, recording each new error
  once, and a bounded number of times (SagaPolicy.resolve_attempts, fewer when refused); then
  the deployment finishes "failed", naming the unknown step and what to check.
- Alarms are polled during every wait once a new version exists, and read once before the
  first weight moves. Every step (the promote too) is followed by a bake when the deployment
  has a trafficShiftingConfig or alarms. ALARM, or a configured alarm that does not exist,
  rolls back, also in the bake after the promote. INSUFFICIENT_DATA does not: a new version
  that gets little traffic during a short bake often has no datapoints yet, and treating
  that as failure would roll back every quiet deployment.
- Any failure that will not clear rolls back: alias to the stable version with routing
  cleared, then the new version deleted (never a version the alias still references). A first
  deployment has no stable version: it finishes "failed" and leaves the function as it is.
- A newer request is held; at the next safe point (between steps, before promote) the current
  deployment rolls back and finishes "superseded", then the newer one starts. Once promoted,
  the deployment finishes its last bake first.
- An operator's command (``OperatorRequested``) also acts at a safe point: abort rolls back
  like a failure, with the operator's name and reason; promote, once the saga is shifting or
  baking, reads the alarms once and then promotes, skipping the rest of the schedule; hold,
  resume, extend and a one-step promote act on the bake (engine.saga.holds).
- Traffic hooks (engine.saga.hooks) are invoked before the first weight moves and after the
  promote; any answer but success rolls back, like a firing alarm.
- A traffic gate (engine.saga.gate) keeps a step's bake going until the new version has
  served ``minInvocations``, up to ``maxWait`` past it, then rolls back or goes on.
- The members of a release (engine.saga.release) wait for each other before each step, the
  promote and the finish, and roll back when any of them fails.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.events import Event
from engine.events.function import (
    AlarmObserved,
    DeploymentFinished,
    EventSourceChanged,
    FunctionDeleted,
    RollbackStarted,
    StepFailed,
    StepSucceeded,
    TimerStarted,
    TrafficShifted,
)
from engine.saga.bake import bake_until
from engine.saga.calls import phase_call, read_call
from engine.saga.effects import (
    Call,
    CallOutcome,
    DeleteFunction,
    DeleteVersion,
    Done,
    Effect,
    Failed,
    GetFunction,
    InvokeHook,
    Ok,
    Record,
    SagaContext,
    UpdateAlias,
    Wait,
    Waited,
)
from engine.saga.gate import checked, gate_call, probe_of
from engine.saga.holds import held_wait, hold_effect, watched
from engine.saga.hooks import answered, gave_up
from engine.saga.release import (
    failed_with,
    failure_reason,
    pending,
    release_effect,
    with_release,
)
from engine.saga.resolve import resolve_call, resolved
from engine.saga.results import (
    AlarmsRead,
    AlreadyAbsent,
    CallResult,
    FunctionRead,
    HookAnswer,
    InvocationsCounted,
    Kept,
    SourcesChanged,
)
from engine.saga.rollback import fail
from engine.saga.state import (
    ALARM_CHECK,
    OPERATOR_PROMOTE,
    RESOLVE_WAIT,
    Deployment,
    SagaState,
)
from engine.saga.steps import Phase, Step, StepName, WaitPurpose, is_hook_step
from engine.saga.transitions import Poll, poll_ready

# Phases at which a newer request may interrupt: between steps, up to the promote (the 100 %
# step) before its call. Once promoted the deployment finishes first (the new version is
# live), and so do deletes and rollbacks.
SUPERSEDABLE: frozenset[Phase] = frozenset(
    {
        "inspect_function",
        "hash_code",
        "inspect_alias",
        "inspect_stable",
        "inspect_signing",
        "put_signing",
        "delete_signing",
        "tag",
        "untag",
        "create_function",
        "wait_active",
        "update_config",
        "wait_config",
        "update_code",
        "wait_code",
        "publish",
        "readiness",
        "create_alias",
        "reset_alias",
        "sources",
        "detach_old_alias",
        "hook_before",
        "alarm_check",
        "shift",
        "bake",
        "gate",
        "promote",
    }
)
# Where an operator's promote may act: the schedule has started (the new version is published,
# ready and wired), so what is left to skip is shifting and baking.
PROMOTABLE: frozenset[Phase] = frozenset({"alarm_check", "shift", "bake", "gate"})
# Clean-up steps that may give up without harm: an unreferenced version is kept, event
# sources are left as attempted.
_KEPT_ON_FAILURE: frozenset[Step] = frozenset(
    {"delete_old", "rollback_delete_new", "rollback_sources", "detach_old_alias"}
)


def next_effect(state: SagaState, now: datetime) -> Effect:
    """What the saga of this function needs done next; ``now`` is timezone-aware."""
    effect = _next(state, now)
    return effect if state.active is None else with_release(state.active, effect)


def _next(state: SagaState, now: datetime) -> Effect:
    if state.dropped:
        return Record(
            tuple(
                DeploymentFinished(
                    deployment_id=dropped,
                    outcome="superseded",
                    reason="superseded by a newer request before it started",
                    stable_version=state.stable_version,
                )
                for dropped in state.dropped
            )
        )
    dep = state.active
    if dep is None:
        return Done()
    if dep.phase == "finish" and pending(dep) is None:
        return Record(_finish_events(state, dep))
    interrupted = _interruption(state, dep, now)
    if interrupted is not None:
        return interrupted
    held = held_wait(state, dep, now)
    if held is not None:
        return held
    wait = _wait(state, dep, now)
    if wait is not None:
        return wait
    resolve = resolve_call(state, dep.dangling) if dep.dangling is not None else None
    if resolve is not None:
        return resolve
    if dep.settling:
        return read_call("settle", GetFunction(state.function_name))
    barrier = release_effect(state, dep, now)
    if barrier is not None:
        return barrier
    if dep.phase == "bake":
        return _timer(state, dep, "bake", bake_until(dep, now))
    if dep.phase == "alarm_check":
        return _timer(state, dep, ALARM_CHECK, now)  # a wait that ends once the alarms are read
    if dep.phase == "gate":
        return gate_call(state, dep, now)
    return phase_call(state, dep)


def on_outcome(
    state: SagaState, effect: Effect, outcome: CallOutcome, ctx: SagaContext
) -> list[Event]:
    """The events that record ``outcome`` of ``effect``. ``state`` includes the intent."""
    dep = state.active
    if dep is None:
        return []
    match effect, outcome:
        case Wait(), Waited():
            return _waited(dep, effect, outcome)
        case Call(), _ if effect.resolves is not None:
            return resolved(state, dep, effect, outcome, ctx)
        case Call(), Ok(result=result):
            return _call_ok(state, dep, effect, result)
        case Call(), Failed():
            return _call_failed(state, dep, effect, outcome)
        case Record() | Done(), _:
            return []
    raise TypeError(f"{effect!r} cannot end in {outcome!r}")


# -- building effects ------------------------------------------------------------------------


def _interruption(state: SagaState, dep: Deployment, now: datetime) -> Effect | None:
    """What a newer request or an operator's command asks for, if this is a point where it
    may act: between steps (no intent dangling), and not while rolling back."""
    if dep.rollback is not None or dep.dangling is not None:
        return None
    if state.held is not None and dep.phase in SUPERSEDABLE and not dep.promoted:
        return _supersede(dep, state.held.deployment_id)
    if dep.operator is not None:
        return _operator_effect(state, dep, now)
    return None


def _supersede(dep: Deployment, newer: str) -> Record:
    """A newer request waits at this safe point: roll back to stable, or just stop."""
    reason = f"superseded by deployment {newer}"
    if dep.path == "update" and dep.stable is not None:
        return Record(
            (RollbackStarted(deployment_id=dep.deployment_id, reason=reason, superseded_by=newer),)
        )
    return Record(
        (
            DeploymentFinished(
                deployment_id=dep.deployment_id,
                outcome="superseded",
                reason=reason + "; nothing to roll back",
                stable_version=dep.stable,
            ),
        )
    )


def _wait(state: SagaState, dep: Deployment, now: datetime) -> Wait | None:
    """The recorded timer still running, or the wait the deployment is due (its intent)."""
    # A pause between resolve reads that is over needs no event to end it: the next read
    # (or the deployment's end) follows, so a read that keeps failing adds one event per try.
    timer = dep.timer
    if timer is not None and not (timer.purpose == RESOLVE_WAIT and now >= timer.until):
        return Wait(
            purpose=timer.purpose,
            until=timer.until,
            alarms=_alarms(dep),
            poll_seconds=state.policy.alarm_poll_seconds,
            probe=probe_of(state, dep),
        )
    if dep.due_wait is not None:
        purpose, seconds = dep.due_wait
        return _timer(state, dep, purpose, now + timedelta(seconds=seconds))
    return None


def _operator_effect(state: SagaState, dep: Deployment, now: datetime) -> Effect | None:
    """What an operator's pending abort or promote asks for at this point, or None when this
    is not a point where it may act (it waits for one, or the deployment ends first)."""
    command = dep.operator
    assert command is not None
    did = dep.deployment_id
    if command.command in ("hold", "resume", "extend", "promote_step"):
        return hold_effect(state, dep, command, now)
    if command.command == "abort":
        if dep.phase not in SUPERSEDABLE:
            return None  # promoting, cleaning up or deleting: finishing is the safe way out
        reason = f"aborted by {command.actor}: {command.reason}"
        if dep.path is None:
            # Still inspecting: nothing has been changed in AWS.
            return Record(
                (
                    DeploymentFinished(
                        deployment_id=did,
                        outcome="rolled_back",
                        reason=reason + "; nothing had been changed",
                        stable_version=state.stable_version,
                    ),
                )
            )
        return Record(tuple(fail(dep, reason)))
    if command.command == "promote" and dep.phase in PROMOTABLE and not dep.promoted:
        if dep.timer is not None and dep.timer.purpose == OPERATOR_PROMOTE:
            return None  # the alarm read is under way
        # A wait that ends now: the runner reads the alarms once before it completes, and an
        # alarm in ALARM (or missing) rolls back instead of promoting.
        return _timer(state, dep, OPERATOR_PROMOTE, now)
    return None


def _alarms(dep: Deployment) -> tuple[str, ...]:
    # Alarms guard traffic to a new version: watched from its publish to the end, and not
    # while rolling back (a firing alarm is why we roll back; it must not stop the rollback).
    return watched(dep)


def _timer(state: SagaState, dep: Deployment, purpose: WaitPurpose, until: datetime) -> Wait:
    intent = TimerStarted(deployment_id=dep.deployment_id, purpose=purpose, until=until)
    return Wait(
        purpose=purpose,
        until=until,
        alarms=_alarms(dep),
        poll_seconds=state.policy.alarm_poll_seconds,
        intent=intent,
        probe=probe_of(state, dep),
    )


# -- interpreting outcomes -------------------------------------------------------------------


def _waited(dep: Deployment, effect: Wait, outcome: Waited) -> list[Event]:
    did = dep.deployment_id
    if not outcome.completed and outcome.release_failed is not None:
        failure = outcome.release_failed
        return [failed_with(dep, failure), *fail(dep, failure_reason(dep, failure))]
    if not outcome.completed and outcome.unreadable:
        return fail(dep, outcome.unreadable)
    fired = {a: s for a, s in outcome.alarms.items() if s in ("ALARM", "MISSING")}
    if not outcome.completed and fired:
        observed: list[Event] = [
            AlarmObserved(deployment_id=did, alarm=a, state=s) for a, s in fired.items()
        ]
        what = ", ".join(
            f"alarm {a} is in ALARM" if s == "ALARM" else f"alarm {a} does not exist"
            for a, s in sorted(fired.items())
        )
        return observed + fail(dep, what)
    if not outcome.completed or effect.purpose in (RESOLVE_WAIT, "hold"):
        return []  # a pause between resolve reads, or a held wait, ends by the clock alone
    read = AlarmsRead(alarms=dict(outcome.alarms))
    return [
        StepSucceeded(deployment_id=did, step=StepName.wait(effect.purpose), result=read.to_json())
    ]


def _call_ok(state: SagaState, dep: Deployment, effect: Call, result: CallResult) -> list[Event]:
    did = dep.deployment_id
    events: list[Event] = [
        StepSucceeded(deployment_id=did, step=effect.step, result=result.to_json())
    ]
    match effect.step.step, effect.operation, result:
        case "shift" | "promote" | "rollback_alias" as step, UpdateAlias(alias=alias), _:
            events += _traffic_shifted(dep, alias, step)
        case _, _, SourcesChanged():
            events += [
                EventSourceChanged(
                    deployment_id=did,
                    kind=c.kind,
                    change=c.change,
                    source_id=c.source_id,
                    details=dict(c.details),
                )
                for c in result.changes
                if c.change != "unchanged"
            ]
        case "wait_active" | "wait_config" | "wait_code" | "settle" as poll, _, FunctionRead():
            events += _poll_verdict(state, dep, poll, result)
        case "readiness", _, FunctionRead():
            events += _readiness_verdict(dep, result)
        case _, InvokeHook(), HookAnswer():
            events += answered(dep, result)
        case "gate", _, InvocationsCounted():
            events += checked(dep, result)
    return events


def _traffic_shifted(dep: Deployment, alias: str, step: Step) -> list[Event]:
    if dep.stable is None or dep.new_version is None:
        return []
    match step:
        case "rollback_alias":
            weight = 0.0
        case "promote":
            weight = 1.0  # the 100 % step is the promote itself
        case _:
            weight = dep.schedule[dep.shift_index]
    return [
        TrafficShifted(
            deployment_id=dep.deployment_id,
            alias=alias,
            stable_version=dep.stable,
            new_version=dep.new_version,
            weight=weight,
        )
    ]


def _poll_verdict(state: SagaState, dep: Deployment, step: Poll, read: FunctionRead) -> list[Event]:
    """A poll that shows the update failed, or that ran out of polls, fails the step."""
    if read.state == "Failed" or read.last_update_status == "Failed":
        why = read.state_reason or "no reason given"
        return fail(dep, f"function update failed at {step}: {why}")
    # A rollback polls on: giving up would leave the alias shifted.
    exhausted = dep.polls + 1 >= state.policy.max_polls and dep.rollback is None
    if not poll_ready(step, read) and exhausted:
        return fail(dep, f"{step}: not ready after {dep.polls + 1} polls")
    return []


def _readiness_verdict(dep: Deployment, read: FunctionRead) -> list[Event]:
    if read.state == "Active":
        return []
    settings = dep.desired.settings if dep.desired else None
    retries = settings.readiness.max_retries if settings else 5
    if dep.polls < retries:
        return []
    seen = read.state or "absent"
    return fail(
        dep,
        f"version {dep.new_version} not Active after {dep.polls + 1} readiness checks "
        f"(last state {seen})",
    )


def _call_failed(state: SagaState, dep: Deployment, effect: Call, failed: Failed) -> list[Event]:
    did = dep.deployment_id
    step = effect.step
    if failed.kind == "not_found" and isinstance(effect.operation, DeleteVersion | DeleteFunction):
        # Already absent is what a delete wants; a retry after an ambiguous delete sees this.
        return [StepSucceeded(deployment_id=did, step=step, result=AlreadyAbsent().to_json())]
    event = StepFailed(
        deployment_id=did,
        step=step,
        error_code=failed.code,
        message=failed.message,
        retryable=failed.retryable,
        kind=failed.kind,
    )
    attempt = effect.intent.attempt if effect.intent is not None else dep.attempt
    # A rollback retries a retryable error for as long as it takes (the backoff is capped):
    # giving up would finish the deployment with the alias still shifted to the new version.
    if failed.retryable and (attempt < state.policy.retry.max_attempts or dep.rollback):
        return [event]
    why = f"{step} failed after {attempt} attempt(s): {failed.code or failed.kind}: "
    why += failed.message
    if is_hook_step(step.step):
        return [event, *gave_up(dep, step.step, why)]
    if step.step in _KEPT_ON_FAILURE:
        # Keeping an unreferenced version is harmless; it must not undo a finished shift. Event
        # sources left as attempted stay stray: the next reconcile removes them.
        return [
            event,
            StepSucceeded(deployment_id=did, step=step, result=Kept(reason=why).to_json()),
        ]
    return [event, *fail(dep, why)]


def _finish_events(state: SagaState, dep: Deployment) -> tuple[Event, ...]:
    assert dep.outcome is not None
    did = dep.deployment_id
    if dep.path == "delete" or dep.request.action == "delete":
        stable = None if dep.outcome == "succeeded" else state.stable_version
    elif dep.outcome == "succeeded":
        stable = dep.new_version or dep.stable
    else:
        stable = dep.stable
    finished = DeploymentFinished(
        deployment_id=did, outcome=dep.outcome, reason=dep.reason, stable_version=stable
    )
    if dep.request.action == "delete" and dep.outcome == "succeeded":
        return (FunctionDeleted(deployment_id=did), finished)
    return (finished,)
