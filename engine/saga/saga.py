"""The deployment saga of one function, as two pure functions.

``next_effect(state, now)`` names what to do next (an AWS call, a durable wait, events to
record, or nothing); the runner performs it and hands the result to
``on_outcome(state, effect, outcome, ctx)``, which returns the events to append. ``evolve``
(engine.saga.state) folds those events back into the state. Nothing here awaits, reads a
clock, makes an id or talks to AWS, so a recorded history replays to the same decisions.
Two parts of the decisions live beside this module: engine.saga.resolve (settling a dangling
intent by a read) and engine.saga.rollback (what a failure that will not clear leads to).

Rules worth knowing:

- Write-ahead: every mutation carries a ``StepStarted`` intent that the runner makes durable
  before the call. A log ending in an intent with no outcome is resolved by a READ (publish ->
  list versions and adopt the one whose Description carries this deployment id; alias changes
  -> GetAlias and compare; deletes -> list or GetFunction) before anything is repeated.
  Idempotent steps (configuration and code updates, event sources) are simply repeated.
  A resolve read that keeps failing is retried with capped backoff, recording each new error
  once, and a bounded number of times (SagaPolicy.resolve_attempts, fewer when refused); then
  the deployment finishes "failed", naming the unknown step and what to check.
- Alarms are polled during every wait once a new version exists. ALARM, or a configured alarm
  that does not exist, rolls back. INSUFFICIENT_DATA does not: a new version that gets little
  traffic during a short bake often has no datapoints yet, and treating that as failure would
  roll back every quiet deployment.
- Any failure that will not clear rolls back: alias to the stable version with routing
  cleared, then the new version deleted (never a version the alias still references). A first
  deployment has no stable version: it finishes "failed" and leaves the function as it is.
- A newer request is held; at the next safe point (between steps, before promote) the current
  deployment rolls back and finishes "superseded", then the newer one starts.
- An operator's command (``OperatorRequested``) also acts at a safe point: abort rolls back
  like a failure, with the operator's name and reason; promote, once the saga is shifting or
  baking, reads the alarms once and then promotes, skipping the rest of the schedule.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from engine.events import Event
from engine.events.desired import EventSources
from engine.events.function import (
    AlarmObserved,
    DeploymentFinished,
    EventSourceChanged,
    FunctionDeleted,
    RollbackStarted,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerStarted,
    TrafficShifted,
)
from engine.saga.effects import (
    Call,
    Done,
    Effect,
    Failed,
    Ok,
    Outcome,
    Record,
    SagaContext,
    Wait,
    Waited,
)
from engine.saga.resolve import RESOLVERS, resolved
from engine.saga.rollback import fail
from engine.saga.state import (
    RESOLVE_WAIT,
    Deployment,
    Phase,
    SagaState,
    check_alias_target,
    check_deletable,
    poll_ready,
    split_definition,
    version_marker,
)
from engine.sources_plan import union_sources

# Phases at which a newer request may interrupt: between steps, before the promote. Later
# phases finish first (the new version is already live), and so do deletes and rollbacks.
SUPERSEDABLE: frozenset[Phase] = frozenset(
    {
        "inspect_function",
        "inspect_alias",
        "create_function",
        "wait_active",
        "update_config",
        "wait_config",
        "update_code",
        "wait_code",
        "publish",
        "readiness",
        "create_alias",
        "sources",
        "shift",
        "bake",
    }
)

_BULKY_ARGS = frozenset({"request", "configuration", "code", "desired", "previous"})


def next_effect(state: SagaState, now: Any) -> Effect:
    """What the saga of this function needs done next. ``now`` is a timezone-aware datetime."""
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
    if dep.phase == "finish":
        return Record(_finish_events(state, dep))
    if (
        state.held is not None
        and dep.rollback is None
        and dep.dangling is None
        and dep.phase in SUPERSEDABLE
    ):
        newer = state.held.deployment_id
        reason = f"superseded by deployment {newer}"
        if dep.path == "update" and dep.stable is not None:
            return Record(
                (
                    RollbackStarted(
                        deployment_id=dep.deployment_id, reason=reason, superseded_by=newer
                    ),
                )
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
    if dep.operator is not None and dep.rollback is None and dep.dangling is None:
        acted = _operator_effect(state, dep, now)
        if acted is not None:
            return acted
    # A pause between resolve reads that is over needs no event to end it: the next read
    # (or the deployment's end) follows, so a read that keeps failing adds one event per try.
    resolve_due = (
        dep.timer is not None and dep.timer.purpose == RESOLVE_WAIT and now >= dep.timer.until
    )
    if dep.timer is not None and not resolve_due:
        return Wait(
            purpose=dep.timer.purpose,
            until=dep.timer.until,
            alarms=_alarms(dep),
            poll_seconds=state.policy.alarm_poll_seconds,
        )
    if dep.due_wait is not None:
        purpose, seconds = dep.due_wait
        return _timer(state, dep, purpose, now + timedelta(seconds=seconds))
    if dep.dangling is not None and dep.dangling.step in RESOLVERS:
        return _resolve_call(state, dep, dep.dangling)
    if dep.settling:
        return _read(dep, "settle", "get_function", name=state.function_name)
    if dep.phase == "bake":
        settings = dep.desired.settings if dep.desired else None
        seconds = settings.traffic.wait_interval if settings and settings.traffic else 0
        return _timer(state, dep, "bake", now + timedelta(seconds=seconds))
    return _phase_call(state, dep)


def on_outcome(state: SagaState, effect: Effect, outcome: Outcome, ctx: SagaContext) -> list[Event]:
    """The events that record ``outcome`` of ``effect``. ``state`` includes the intent."""
    dep = state.active
    if dep is None:
        return []
    did = dep.deployment_id
    match effect:
        case Wait():
            if not isinstance(outcome, Waited):
                raise TypeError(f"a wait ends in Waited, not {outcome!r}")
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
            if not outcome.completed or effect.purpose == RESOLVE_WAIT:
                return []  # a pause between resolve reads ends by the clock alone
            result = {"alarms": dict(outcome.alarms)} if outcome.alarms else {}
            return [StepSucceeded(deployment_id=did, step=f"wait:{effect.purpose}", result=result)]
        case Call():
            if effect.resolves is not None:
                return resolved(state, dep, effect, outcome, ctx)
            if isinstance(outcome, Ok):
                return _call_ok(state, dep, effect, dict(outcome.result))
            if isinstance(outcome, Failed):
                return _call_failed(state, dep, effect, outcome)
            raise TypeError(f"a call ends in Ok or Failed, not {outcome!r}")
        case Record() | Done():
            return []


# -- building effects ------------------------------------------------------------------------


# Where an operator's promote may act: the schedule has started (the new version is published,
# ready and wired), so what is left to skip is shifting and baking.
PROMOTABLE: frozenset[Phase] = frozenset({"shift", "bake"})
OPERATOR_PROMOTE = "operator_promote"  # the purpose of the one alarm read before promoting


def _operator_effect(state: SagaState, dep: Deployment, now: Any) -> Effect | None:
    """What an operator's pending abort or promote asks for at this point, or None when this
    is not a point where it may act (it waits for one, or the deployment ends first)."""
    command = dep.operator
    assert command is not None
    did = dep.deployment_id
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
    if command.command == "promote" and dep.phase in PROMOTABLE:
        if dep.timer is not None and dep.timer.purpose == OPERATOR_PROMOTE:
            return None  # the alarm read is under way
        # A wait that ends now: the runner reads the alarms once before it completes, and an
        # alarm in ALARM (or missing) rolls back instead of promoting.
        return _timer(state, dep, OPERATOR_PROMOTE, now)
    return None


def _alarms(dep: Deployment) -> tuple[str, ...]:
    # Alarms guard traffic to a new version: watched from its publish until promote, and not
    # while rolling back (a firing alarm is why we roll back; it must not stop the rollback).
    if dep.path != "update" or dep.new_version is None or dep.rollback is not None:
        return ()
    if dep.stable is None or dep.desired is None:
        return ()
    return dep.desired.settings.alarms


def _timer(state: SagaState, dep: Deployment, purpose: str, until: Any) -> Wait:
    intent = TimerStarted(deployment_id=dep.deployment_id, purpose=purpose, until=until)
    return Wait(
        purpose=purpose,
        until=until,
        alarms=_alarms(dep),
        poll_seconds=state.policy.alarm_poll_seconds,
        intent=intent,
    )


def _read(dep: Deployment, step: str, method: str, **args: Any) -> Call:
    return Call(step=step, api="lambda", method=method, args=args, mutation=False)


def _summary(args: dict[str, Any]) -> dict[str, Any]:
    """What the intent records of a call's arguments: never the definition (it can hold
    environment values) or other bulky payloads, which the DeploymentRequested already has."""
    return {k: v for k, v in args.items() if k not in _BULKY_ARGS}


def _mutation(dep: Deployment, step: str, api: Any, method: str, **args: Any) -> Call:
    attempt = dep.dangling.attempt + 1 if dep.dangling is not None else dep.attempt
    intent = StepStarted(
        deployment_id=dep.deployment_id, step=step, attempt=attempt, request=_summary(args)
    )
    return Call(step=step, api=api, method=method, args=args, mutation=True, intent=intent)


def _alias_arn(state: SagaState, dep: Deployment) -> str:
    arn = dep.function_arn or state.function_name
    alias = _alias_name(state, dep)
    return f"{arn}:{alias}" if alias else arn


def _alias_name(state: SagaState, dep: Deployment) -> str | None:
    if dep.desired is not None:
        return dep.desired.settings.alias
    if state.deployed is not None:
        return state.deployed.settings.alias
    return None


def _phase_call(state: SagaState, dep: Deployment) -> Effect:
    name = state.function_name
    desired = dep.desired
    alias = _alias_name(state, dep) or ""
    match dep.phase:
        case "inspect_function" | "wait_active" | "wait_config" | "wait_code":
            return _read(dep, dep.phase, "get_function", name=name)
        case "inspect_alias" | "verify_old" | "rollback_verify":
            return _read(dep, dep.phase, "get_alias", name=name, alias=alias)
        case "readiness":
            return _read(dep, "readiness", "get_function", name=name, qualifier=dep.new_version)
        case "create_function":
            assert desired is not None
            # glam publishes itself, after the function is Active, with its marker.
            request = {**desired.definition, "FunctionName": name, "Publish": False}
            return _mutation(dep, "create_function", "lambda", "create_function", request=request)
        case "update_config":
            assert desired is not None
            _, configuration = split_definition(desired.definition)
            return _mutation(
                dep,
                "update_config",
                "lambda",
                "update_function_configuration",
                name=name,
                configuration=configuration,
            )
        case "update_code":
            assert desired is not None
            code, _ = split_definition(desired.definition)
            return _mutation(
                dep, "update_code", "lambda", "update_function_code", name=name, code=code
            )
        case "publish":
            return _mutation(
                dep,
                "publish",
                "lambda",
                "publish_version",
                name=name,
                description=version_marker(dep.deployment_id),
                code_sha256=dep.code_sha256,
                revision_id=dep.revision_id,
            )
        case "create_alias":
            assert dep.new_version is not None
            check_alias_target(dep.new_version, {})
            return _mutation(
                dep,
                "create_alias",
                "lambda",
                "create_alias",
                name=name,
                alias=alias,
                version=dep.new_version,
            )
        case "sources":
            assert desired is not None
            # What glam may have wired: the deployed sources and any an unsuccessful attempt
            # left behind, so nothing it attached is orphaned.
            deployed = state.deployed.event_sources if state.deployed else None
            previous = union_sources(deployed, state.stray_sources)
            return _mutation(
                dep,
                "sources",
                "sources",
                "reconcile",
                function_name=name,
                alias_arn=_alias_arn(state, dep),
                desired=desired.event_sources,
                previous=previous,
            )
        case "shift":
            assert dep.stable is not None
            assert dep.new_version is not None
            routing = {dep.new_version: dep.schedule[dep.shift_index]}
            check_alias_target(dep.stable, routing)
            return _mutation(
                dep,
                "shift",
                "lambda",
                "update_alias",
                name=name,
                alias=alias,
                version=dep.stable,
                routing=routing,
            )
        case "promote" | "rollback_alias":
            target = dep.new_version if dep.phase == "promote" else dep.stable
            assert target is not None
            check_alias_target(target, {})
            return _mutation(
                dep,
                dep.phase,
                "lambda",
                "update_alias",
                name=name,
                alias=alias,
                version=target,
                routing=None,
            )
        case "delete_old" | "rollback_delete_new":
            victim = dep.stable if dep.phase == "delete_old" else dep.new_version
            assert victim is not None
            check_deletable(victim, dep.alias_version, dep.routing)
            return _mutation(dep, dep.phase, "lambda", "delete_version", name=name, version=victim)
        case "rollback_sources":
            assert desired is not None
            assert state.deployed is not None
            return _mutation(
                dep,
                "rollback_sources",
                "sources",
                "reconcile",
                function_name=name,
                alias_arn=_alias_arn(state, dep),
                desired=state.deployed.event_sources,
                previous=union_sources(desired.event_sources, state.stray_sources),
            )
        case "detach_sources":
            deployed = state.deployed.event_sources if state.deployed else None
            previous = union_sources(deployed, state.stray_sources) or EventSources()
            return _mutation(
                dep,
                "detach_sources",
                "sources",
                "detach_all",
                function_name=name,
                alias_arn=_alias_arn(state, dep),
                previous=previous,
            )
        case "delete_function":
            return _mutation(dep, "delete_function", "lambda", "delete_function", name=name)
        case "bake" | "finish":
            raise AssertionError(f"phase {dep.phase} has no call")  # handled by next_effect


def _resolve_call(state: SagaState, dep: Deployment, dangling: StepStarted) -> Call:
    method = RESOLVERS[dangling.step]
    name = state.function_name
    args: dict[str, Any] = {"name": name}
    if method == "get_alias":
        args["alias"] = _alias_name(state, dep) or ""
    return Call(
        step=f"resolve:{dangling.step}",
        api="lambda",
        method=method,
        args=args,
        mutation=False,
        resolves=dangling.step,
    )


# -- interpreting outcomes -------------------------------------------------------------------


def _call_ok(
    state: SagaState, dep: Deployment, effect: Call, result: dict[str, Any]
) -> list[Event]:
    did = dep.deployment_id
    step = effect.step
    events: list[Event] = [StepSucceeded(deployment_id=did, step=step, result=result)]
    if step == "shift" and dep.stable is not None and dep.new_version is not None:
        events.append(
            TrafficShifted(
                deployment_id=did,
                alias=str(effect.args["alias"]),
                stable_version=dep.stable,
                new_version=dep.new_version,
                weight=dep.schedule[dep.shift_index],
            )
        )
    elif step == "rollback_alias" and dep.stable is not None and dep.new_version is not None:
        events.append(
            TrafficShifted(
                deployment_id=did,
                alias=str(effect.args["alias"]),
                stable_version=dep.stable,
                new_version=dep.new_version,
                weight=0.0,
            )
        )
    elif step in ("sources", "detach_sources", "rollback_sources"):
        for change in result.get("changes", []):
            if change.get("change") == "unchanged":
                continue
            events.append(
                EventSourceChanged(
                    deployment_id=did,
                    kind=change["kind"],
                    change=change["change"],
                    source_id=change["source_id"],
                    details=dict(change.get("details") or {}),
                )
            )
    elif step in ("wait_active", "wait_config", "wait_code", "settle"):
        if result.get("state") == "Failed" or result.get("last_update_status") == "Failed":
            why = result.get("state_reason") or "no reason given"
            return [*events, *fail(dep, f"function update failed at {step}: {why}")]
        # A rollback polls on: giving up would leave the alias shifted.
        exhausted = dep.polls + 1 >= state.policy.max_polls and dep.rollback is None
        if not poll_ready(step, result) and exhausted:
            return [*events, *fail(dep, f"{step}: not ready after {dep.polls + 1} polls")]
    elif step == "readiness" and result.get("state") != "Active":
        settings = dep.desired.settings if dep.desired else None
        retries = settings.readiness.max_retries if settings else 5
        if dep.polls >= retries:
            seen = result.get("state") or "absent"
            return [
                *events,
                *fail(
                    dep,
                    f"version {dep.new_version} not Active after {dep.polls + 1} "
                    f"readiness checks (last state {seen})",
                ),
            ]
    return events


def _call_failed(state: SagaState, dep: Deployment, effect: Call, failed: Failed) -> list[Event]:
    did = dep.deployment_id
    step = effect.step
    gone = effect.method in ("delete_version", "delete_function")
    if failed.kind == "not_found" and gone:
        # Already absent is what a delete wants; a retry after an ambiguous delete sees this.
        return [StepSucceeded(deployment_id=did, step=step, result={"already_absent": True})]
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
    if step in ("delete_old", "rollback_delete_new", "rollback_sources"):
        # Keeping an unreferenced version is harmless; it must not undo a finished shift. Event
        # sources left as attempted stay stray: the next reconcile removes them.
        return [event, StepSucceeded(deployment_id=did, step=step, result={"kept": why})]
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
