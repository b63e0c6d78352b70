"""``evolve``: how each event of a function stream changes the saga's state. Replay is a fold.

Total and pure: every event type is handled, nothing is awaited, read from a clock or made
up. A step's recorded result is parsed here, once, into its model (engine.saga.results);
where a step's success or failure leads is engine.saga.transitions.
"""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

from engine.events import Event
from engine.events.base import RepoEvent
from engine.events.function import (
    AlarmObserved,
    DeploymentFinished,
    DeploymentRequested,
    EventSourceChanged,
    FunctionDeleted,
    OperatorRequested,
    RollbackStarted,
    SettingsRecorded,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerStarted,
    TrafficShifted,
)
from engine.events.operator import OperatorCommandIssued
from engine.saga.results import FunctionRead, Kept, StepResult, parse_result
from engine.saga.state import RESOLVE_WAIT, Deployment, SagaState, split_definition
from engine.saga.steps import Step, StepName
from engine.saga.transitions import after_failure, after_success, rolling_back
from engine.sources_plan import union_sources

# Steps whose intent means the alias may have been moved off the stable version.
_ALIAS_MOVES: frozenset[Step] = frozenset({"shift", "promote"})
# Steps that write $LATEST's configuration, and its code.
_WRITES_CONFIG: frozenset[Step] = frozenset({"update_config", "create_function"})
_WRITES_CODE: frozenset[Step] = frozenset({"update_code", "create_function"})


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
            return replace(
                state,
                function_exists=False,
                stable_version=None,
                deployed=None,
                latest_code=None,
                latest_config=None,
            )
        case OperatorRequested():
            return _operator(state, event)
        case AlarmObserved() | EventSourceChanged():
            return state
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
    state = _latest_written(state, dep, event.step, result)
    if event.step == StepName("rollback_sources") and not isinstance(result, Kept):
        state = replace(state, stray_sources=None)
    return _with_dep(state, after_success(state, dep, event.step, result))


def _timer_started(dep: Deployment, event: TimerStarted) -> Deployment:
    dep = replace(dep, timer=event, due_wait=None)
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
    # A write to $LATEST whose outcome is not recorded yet may or may not have happened.
    if step in _WRITES_CONFIG:
        state = replace(state, latest_config=None)
    if step in _WRITES_CODE:
        state = replace(state, latest_code=None)
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


def _latest_written(
    state: SagaState, dep: Deployment, name: StepName, result: StepResult | None
) -> SagaState:
    """What $LATEST holds once a write to it succeeded."""
    step = name.step
    if dep.desired is None or step not in _WRITES_CONFIG | _WRITES_CODE:
        return state
    code, config = split_definition(dep.desired.definition)
    if step == "update_config":
        return replace(state, latest_config=config)
    if step == "update_code":
        return replace(state, latest_code=code)
    if isinstance(result, FunctionRead) and not result.found:
        return state  # a resolve read that found no function: nothing was written
    return replace(state, latest_code=code, latest_config=config)


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
    if event.outcome == "succeeded":
        # Its reconcile (or detach) had the strays as ``previous``: they are gone now.
        new = replace(new, stray_sources=None)
        if request.action == "delete":
            new = replace(new, function_exists=False, stable_version=None, deployed=None)
        else:
            new = replace(
                new,
                function_exists=True,
                stable_version=event.stable_version,
                deployed=request.desired,
                rolled_back_hash=None,
            )
    elif event.outcome in ("rolled_back", "failed"):
        rejected = request.desired.content_hash if request.desired else None
        new = replace(new, rolled_back_hash=rejected, stable_version=event.stable_version)
    if new.held is not None:
        new = replace(new, active=Deployment(request=new.held), held=None)
    return new


def _operator(state: SagaState, event: OperatorRequested) -> SagaState:
    """An abort or promote sticks to the deployment it was handed to (a later one never
    inherits it); a retry lifts the hold on the rolled-back desired state. A command the engine
    recorded as ignored changes nothing."""
    if event.outcome == "ignored":
        return state
    if event.command == "retry":
        return replace(state, rolled_back_hash=None)
    dep = state.active
    if event.command not in ("abort", "promote") or dep is None or dep.rollback is not None:
        return state
    if event.deployment_id is not None and event.deployment_id != dep.deployment_id:
        return state
    return _with_dep(state, replace(dep, operator=event))
