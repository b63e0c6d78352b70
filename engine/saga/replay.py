"""``evolve``: how each event of a function stream changes the saga's state. Replay is a fold.

Total and pure: every event type is handled, nothing is awaited, read from a clock or made
up. A step's recorded result is parsed here, once, into its model (engine.saga.results);
where a step's success or failure leads is engine.saga.transitions.
"""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

from engine.definitions.normalize import code_key
from engine.events import Event
from engine.events.base import RepoEvent
from engine.events.function import (
    AlarmObserved,
    BakeExtended,
    DeploymentFinished,
    DeploymentHeld,
    DeploymentRequested,
    DeploymentResumed,
    DriftDetected,
    DriftResolved,
    EventSourceChanged,
    FunctionDeleted,
    HookAnswered,
    OperatorRequested,
    ReleaseMemberFailed,
    ReleaseStepReached,
    RollbackStarted,
    SettingsRecorded,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerStarted,
    TrafficGateChecked,
    TrafficShifted,
)
from engine.events.operator import OperatorCommandIssued
from engine.saga.holds import extended_left
from engine.saga.results import (
    AliasRead,
    CodeHashed,
    FunctionRead,
    Kept,
    Published,
    StepResult,
    parse_result,
)
from engine.saga.state import (
    CODE_RECORDS,
    DRIFT_ALIAS,
    DRIFT_LATEST,
    RESOLVE_WAIT,
    Deployment,
    SagaState,
)
from engine.saga.steps import Step, StepName
from engine.saga.transitions import after_failure, after_success, rolling_back
from engine.sources_plan import union_sources

# Steps whose intent means the alias may have been changed (moved off the stable version, or
# its routing removed): a rollback, or a failure, must not trust what the log knew of it.
_ALIAS_MOVES: frozenset[Step] = frozenset({"shift", "promote", "reset_alias"})


def fold(state: SagaState, events: list[Event] | tuple[Event, ...]) -> SagaState:
    """Apply ``events`` in order: replay is a fold."""
    for event in events:
        state = evolve(state, event)
    return state


def evolve(state: SagaState, event: Event) -> SagaState:
    """The state after ``event``. Total and pure: every event type is handled."""
    match event:
        case DeploymentRequested():
            return _requested(state, event)
        case SettingsRecorded():
            return replace(state, settings=event.settings)
        case (
            StepStarted()
            | StepSucceeded()
            | StepFailed()
            | TimerStarted()
            | TrafficShifted()
            | RollbackStarted()
        ):
            dep = state.active
            return state if dep is None else _progressed(state, dep, event)
        case DeploymentFinished():
            return _finished(state, event)
        case FunctionDeleted():
            # A function made again under the name numbers its versions from 1 again.
            return replace(
                state,
                function_exists=False,
                stable_version=None,
                deployed=None,
                alias_known=None,
                highest_version=0,
            )
        case OperatorRequested():
            return _operator(state, event)
        case DriftDetected():
            return _drifted(state, event)
        case (
            AlarmObserved()
            | EventSourceChanged()
            | DriftResolved()
            | HookAnswered()
            | TrafficGateChecked()
        ):
            return state
        case ReleaseStepReached():
            dep = state.active
            if dep is None or dep.deployment_id != event.deployment_id:
                return state
            return _with_dep(state, replace(dep, release_at=(event.stage, event.index)))
        case ReleaseMemberFailed():
            return state  # the RollbackStarted recorded with it rolls back
        case DeploymentHeld() | DeploymentResumed() | BakeExtended():
            dep = state.active
            if dep is None or dep.deployment_id != event.deployment_id:
                return state
            return _with_dep(state, _held(dep, event))
        case RepoEvent() | OperatorCommandIssued():
            # Not function-stream events; a function stream never holds them.
            return state
        case _:
            assert_never(event)


# Events that move the deployment in flight along.
Progress = (
    StepStarted | StepSucceeded | StepFailed | TimerStarted | TrafficShifted | RollbackStarted
)


def _progressed(state: SagaState, dep: Deployment, event: Progress) -> SagaState:
    """The state after an event of the deployment in flight."""
    did = dep.deployment_id
    match event:
        case StepStarted():
            return _started(state, dep, event)
        case StepSucceeded() if event.deployment_id == did:
            return _step_succeeded(state, dep, event)
        case StepFailed() if event.deployment_id == did:
            return _with_dep(state, after_failure(state, dep, event))
        case TimerStarted():
            return _with_dep(state, _timer_started(dep, event))
        case TrafficShifted():
            return _with_dep(state, replace(dep, weight=event.weight))
        case RollbackStarted():
            return _with_dep(state, rolling_back(state, dep, event))
    return state  # the outcome of a step of an earlier deployment


def _step_succeeded(state: SagaState, dep: Deployment, event: StepSucceeded) -> SagaState:
    # The one place a recorded result is read: parsed into its step's model, once.
    result = parse_result(event.step, event.result)
    state = _learnt(state, dep, event.step, result)
    if event.step == StepName("rollback_sources") and not isinstance(result, Kept):
        state = replace(state, stray_sources=None)
    return _with_dep(state, after_success(state, dep, event.step, result))


def _timer_started(dep: Deployment, event: TimerStarted) -> Deployment:
    dep = replace(dep, timer=event, due_wait=None)
    if event.purpose == "bake":
        dep = replace(dep, bake_left=None)  # the bake's end is the timer's now
    if event.purpose == RESOLVE_WAIT:
        # Each pause before reading again follows one failed resolve read: the count that
        # bounds the reads (repeats of a recorded error record only this).
        return replace(dep, unresolved=dep.unresolved + 1)
    return dep


def _with_dep(state: SagaState, dep: Deployment) -> SagaState:
    return replace(state, active=dep)


def _started(state: SagaState, dep: Deployment, event: StepStarted) -> SagaState:
    """A write-ahead intent: the step is dangling until its outcome is recorded."""
    step = event.step.step
    # A created alias routes to the new version: with a stable version to go back to, a
    # rollback must set it there like after a shift.
    creates = step == "create_alias" and dep.stable is not None
    touched = dep.alias_touched or creates or step in _ALIAS_MOVES
    wired = dep.sources_touched or step == "sources"
    if step == "sources" and dep.desired is not None:
        strays = union_sources(state.stray_sources, dep.desired.event_sources)
        state = replace(state, stray_sources=strays)
    dep = replace(
        dep,
        dangling=event,
        attempt=event.attempt,
        alias_touched=touched,
        sources_touched=wired,
        unresolved=0,  # a new intent: no read has failed to settle it yet
        unresolved_code=None,
    )
    return _with_dep(state, dep)


def _learnt(
    state: SagaState, dep: Deployment, name: StepName, result: StepResult | None
) -> SagaState:
    """What a step's result teaches the stream beyond its deployment: the highest version
    number seen, and which CodeSha256 the desired code object has."""
    state = replace(state, highest_version=max([state.highest_version, *_versions(result)]))
    step = name.step
    sha: str | None = None
    match result:
        case Published() if step == "publish":
            sha = result.code_sha256
        case FunctionRead(found=True) if step in ("create_function", "wait_code"):
            sha = result.code_sha256 if result.last_update_status != "InProgress" else None
        case CodeHashed() if step == "hash_code":
            sha = result.code_sha256
        case _:
            pass
    if not sha or dep.desired is None:
        return state
    key = code_key(dep.desired.definition)
    if state.code_record(key) == sha:
        return state
    records = (*[r for r in state.code_records if r[0] != key], (key, sha))
    return replace(state, code_records=records[-CODE_RECORDS:])


def _versions(result: StepResult | None) -> list[int]:
    """The version numbers a result names."""
    match result:
        case Published():
            names = [result.version]
        case AliasRead():
            names = [result.function_version or "", *result.routing]
        case FunctionRead():
            names = [result.version or ""]
        case _:
            names = []
    return [int(n) for n in names if n.isdigit()]


def _requested(state: SagaState, event: DeploymentRequested) -> SagaState:
    ids = {state.held.deployment_id} if state.held else set()
    if state.active is not None:
        ids.add(state.active.deployment_id)
    if event.deployment_id in ids:
        return state  # a repeated request: the planner retried its append
    if state.active is None:
        return replace(state, active=Deployment(request=event))
    dropped = state.dropped + ((state.held.deployment_id,) if state.held else ())
    return replace(state, held=event, dropped=dropped)


def _finished(state: SagaState, event: DeploymentFinished) -> SagaState:
    dep = state.active
    if event.deployment_id in state.dropped:
        return replace(state, dropped=tuple(d for d in state.dropped if d != event.deployment_id))
    if dep is None or dep.deployment_id != event.deployment_id:
        return state
    request = dep.request
    new = replace(state, last_finished=event, active=None)
    if event.stable_version and event.stable_version.isdigit():
        new = replace(new, highest_version=max(new.highest_version, int(event.stable_version)))
    if event.outcome == "succeeded":
        # Its reconcile (or detach) had the strays as ``previous``: they are gone now; so is
        # a drifted $LATEST (it was set back where it differed).
        new = replace(new, stray_sources=None, latest_drift=False)
        if request.action == "remove_alias":
            pass  # another alias went: what is deployed, and on which alias, is unchanged
        elif request.action == "delete":
            new = replace(
                new, function_exists=False, stable_version=None, deployed=None, alias_known=None
            )
        else:
            new = replace(
                new,
                function_exists=True,
                stable_version=event.stable_version,
                deployed=request.desired,
                rolled_back_hash=None,
                # The deployment left its alias on that version with no routing.
                alias_known=request.desired.settings.alias if request.desired else None,
            )
    elif event.outcome in ("rolled_back", "failed") and request.action != "remove_alias":
        rejected = request.desired.content_hash if request.desired else None
        new = replace(new, rolled_back_hash=rejected, stable_version=event.stable_version)
        if event.outcome == "failed" and dep.alias_touched:
            new = replace(new, alias_known=None)  # a failed rollback: read the alias next time
    if new.held is not None:
        new = replace(new, active=Deployment(request=new.held), held=None)
    return new


def _drifted(state: SagaState, event: DriftDetected) -> SagaState:
    """What a difference found in AWS teaches the saga: an alias that is not where the log
    says (read it again before deciding), a $LATEST that differs from what was deployed (the
    next deployment sets it back even when nothing is published)."""
    if event.path.startswith(DRIFT_ALIAS):
        state = replace(state, alias_known=None)
    if event.path.startswith(DRIFT_LATEST):
        state = replace(state, latest_drift=True)
    return state


def _held(dep: Deployment, event: DeploymentHeld | DeploymentResumed | BakeExtended) -> Deployment:
    """An operator's hold, resume or extend acted (engine.saga.holds): the command is done."""
    dep = replace(dep, operator=None)
    match event:
        case DeploymentHeld():
            timer = None if dep.timer is not None and dep.timer.purpose == "bake" else dep.timer
            return replace(dep, paused=event, timer=timer, bake_left=event.bake_left)
        case DeploymentResumed():
            return replace(dep, paused=None)
        case BakeExtended(until=None):
            return replace(dep, bake_left=extended_left(dep, event.seconds))
        case BakeExtended():
            return dep  # the TimerStarted recorded with it sets the new end
        case _:
            assert_never(event)


def _operator(state: SagaState, event: OperatorRequested) -> SagaState:
    """An abort or promote sticks to the deployment it was handed to (a later one never
    inherits it); a retry lifts the hold on the rolled-back desired state. A command the engine
    recorded as ignored changes nothing."""
    if event.outcome == "ignored":
        return state
    if event.command == "retry":
        return replace(state, rolled_back_hash=None)
    dep = state.active
    if event.command in ("retry", "allow_deletes") or dep is None or dep.rollback is not None:
        return state
    if event.deployment_id is not None and event.deployment_id != dep.deployment_id:
        return state
    return _with_dep(state, replace(dep, operator=event))
