"""The deployment saga's state, folded from a function stream by ``evolve``.

One ``SagaState`` per function stream ``fn:<account>:<region>:<name>``: what is deployed (the
stable version and the desired state that made it), the deployment in flight (``active``) and
at most one newer request held until the active one reaches a safe point (``held``).

The phase machine of one deployment (every arrow is a recorded event):

    inspect_function ─┬─ absent ─ create_function → wait_active → publish → create_alias → sources
                      └─ present → inspect_alias → update_config → wait_config → update_code
                           → wait_code → publish → readiness → sources → (shift → bake)* →
                           promote → verify_old → delete_old → finish
    unchanged code and configuration: inspect_alias → sources → finish
    delete: inspect_function → detach_sources → delete_function → finish
    rollback: rollback_alias → rollback_verify → rollback_delete_new → rollback_sources → finish
      (rollback_sources only when this deployment reconciled event sources)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, assert_never

from engine.events import Event
from engine.events.desired import DeploymentSettings, DesiredFunction, EventSources
from engine.events.function import (
    AlarmObserved,
    DeploymentFinished,
    DeploymentRequested,
    EventSourceChanged,
    FunctionDeleted,
    OperatorRequested,
    Outcome,
    RollbackStarted,
    SettingsRecorded,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerStarted,
    TrafficShifted,
)
from engine.events.operator import OperatorCommandIssued
from engine.events.repo import (
    CommitObserved,
    CommitPlanned,
    DefinitionRejected,
    DeletesHeld,
    HistoryRewritten,
    SourceUnavailable,
)
from engine.saga.schedule import DEFAULT_POLICY, SagaPolicy, weights
from engine.sources_plan import union_sources

Phase = Literal[
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
    "promote",
    "verify_old",
    "delete_old",
    "rollback_alias",
    "rollback_verify",
    "rollback_delete_new",
    "rollback_sources",
    "detach_sources",
    "delete_function",
    "finish",
]
Path = Literal["create", "update", "sources_only", "delete"]

# Keys of a CreateFunction request that UpdateFunctionConfiguration does not take: the code
# (and Architectures, which UpdateFunctionCode takes) and what only exists at creation.
CREATE_ONLY_KEYS = frozenset(
    {
        "FunctionName",
        "Code",
        "Publish",
        "PublishTo",
        "Tags",
        "PackageType",
        "CodeSigningConfigArn",
        "Architectures",
        "TenancyConfig",
        "DryRun",
    }
)


# The purpose of the pause between two reads that settle a dangling intent.
RESOLVE_WAIT = "resolve"


class InvariantViolation(AssertionError):
    """The saga was about to break a rule that protects live traffic. Always a bug in glam."""


def version_marker(deployment_id: str) -> str:
    """The Description of the version a deployment publishes: how recovery recognises it."""
    return f"glam deployment {deployment_id}"


def split_definition(definition: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(code, configuration)`` of a CreateFunction request: ``code`` for UpdateFunctionCode
    (the Code members, plus Architectures), ``configuration`` for UpdateFunctionConfiguration
    (everything that is not code and not create-only)."""
    code = dict(definition.get("Code") or {})
    if "Architectures" in definition:
        code["Architectures"] = definition["Architectures"]
    configuration = {k: v for k, v in definition.items() if k not in CREATE_ONLY_KEYS}
    return code, configuration


def check_alias_target(version: str, routing: dict[str, float]) -> None:
    """Raise InvariantViolation unless (version, routing) is an alias glam may set."""
    if version == "$LATEST" or "$LATEST" in routing:
        raise InvariantViolation("$LATEST must never be an alias target or in routing")
    if len(routing) > 1:
        raise InvariantViolation(f"at most one additional version, got {sorted(routing)}")
    for extra, weight in routing.items():
        if not 0.0 <= weight <= 1.0:
            raise InvariantViolation(f"weight {weight} of version {extra} is outside [0, 1]")
        if extra == version:
            raise InvariantViolation(f"version {version} both alias target and in routing")


def check_deletable(version: str, alias_version: str | None, routing: dict[str, float]) -> None:
    """Raise InvariantViolation if ``version`` is $LATEST or referenced by the alias."""
    if version == "$LATEST":
        raise InvariantViolation("$LATEST is never deleted as a version")
    if version == alias_version or version in routing:
        raise InvariantViolation(f"version {version} is still referenced by the alias")


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployment in flight, as far as the log knows."""

    request: DeploymentRequested
    phase: Phase = "inspect_function"
    path: Path | None = None
    function_arn: str | None = None
    alias_exists: bool = False
    stable: str | None = None  # the alias's version when this deployment started
    new_version: str | None = None
    code_sha256: str | None = None
    revision_id: str | None = None
    skip_config: bool = False
    skip_code: bool = False
    schedule: tuple[float, ...] = ()
    shift_index: int = 0
    weight: float = 0.0  # share of the new version on the alias, as last set
    alias_version: str | None = None  # the alias as last set or read
    alias_routing: tuple[tuple[str, float], ...] = ()
    alias_touched: bool = False  # a shift or promote may have changed the alias
    sources_touched: bool = False  # the sources step may have changed event sources
    attempt: int = 1  # attempt number of this phase's next call
    polls: int = 0  # polls made in this phase (wait_*, readiness, settle)
    dangling: StepStarted | None = None  # write-ahead intent with no outcome yet
    unresolved: int = 0  # failed reads in a row settling the dangling intent
    unresolved_code: str | None = None  # error code of the last such failure recorded
    settling: bool = False  # a conflict: wait for LastUpdateStatus before repeating
    due_wait: tuple[str, float] | None = None  # (purpose, seconds) to wait before going on
    timer: TimerStarted | None = None
    rollback: RollbackStarted | None = None
    # An operator's abort or promote, waiting for the next safe point (engine.saga.saga).
    operator: OperatorRequested | None = None
    outcome: Outcome | None = None  # set when phase is "finish"
    reason: str = ""

    @property
    def deployment_id(self) -> str:
        return self.request.deployment_id

    @property
    def desired(self) -> DesiredFunction | None:
        return self.request.desired

    @property
    def routing(self) -> dict[str, float]:
        return dict(self.alias_routing)


@dataclass(frozen=True, slots=True)
class SagaState:
    """Everything the saga of one function knows, rebuilt from its stream alone."""

    function_name: str
    policy: SagaPolicy = DEFAULT_POLICY
    active: Deployment | None = None
    held: DeploymentRequested | None = None  # the newest request waiting for a safe point
    dropped: tuple[str, ...] = ()  # held requests replaced by newer ones, to finish
    function_exists: bool | None = None
    stable_version: str | None = None
    deployed: DesiredFunction | None = None  # the desired state the stable version came from
    settings: DeploymentSettings | None = None  # from SettingsRecorded, for the next plan
    rolled_back_hash: str | None = None  # not retried until the desired state changes
    last_finished: DeploymentFinished | None = None
    # What glam last wrote to $LATEST (code members and configuration, as split_definition
    # gives them), or None when unknown. A rollback or a supersede leaves the abandoned
    # content in $LATEST, so whether an update may be skipped is decided against this, never
    # against the last successful deployment.
    latest_code: dict[str, Any] | None = None
    latest_config: dict[str, Any] | None = None
    # Event sources an unsuccessful deployment may have left wired (its rollback could not
    # undo them): passed as ``previous`` with the deployed ones, so the next reconcile or
    # detach removes them.
    stray_sources: EventSources | None = None

    @property
    def idle(self) -> bool:
        return self.active is None and self.held is None and not self.dropped


def initial_state(function_name: str, policy: SagaPolicy = DEFAULT_POLICY) -> SagaState:
    """The state of a function stream with no events."""
    return SagaState(function_name=function_name, policy=policy)


def fold(state: SagaState, events: list[Event] | tuple[Event, ...]) -> SagaState:
    """Apply ``events`` in order: replay is a fold."""
    for event in events:
        state = evolve(state, event)
    return state


def evolve(state: SagaState, event: Event) -> SagaState:
    """The state after ``event``. Total and pure: every event type is handled."""
    dep = state.active
    match event:
        case DeploymentRequested():
            return _requested(state, event)
        case SettingsRecorded():
            return replace(state, settings=event.settings)
        case StepStarted():
            if dep is None:
                return state
            state = _latest_started(state, event)
            # A created alias routes to the new version: with a stable version to go back to,
            # a rollback must set it there like after a shift.
            creates = event.step == "create_alias" and dep.stable is not None
            touched = dep.alias_touched or creates or event.step in ("shift", "promote")
            wired = dep.sources_touched or event.step == "sources"
            if event.step == "sources" and dep.desired is not None:
                strays = union_sources(state.stray_sources, dep.desired.event_sources)
                state = replace(state, stray_sources=strays)
            return _with(
                state,
                dep,
                dangling=event,
                attempt=event.attempt,
                alias_touched=touched,
                sources_touched=wired,
                unresolved=0,  # a new intent: no read has failed to settle it yet
                unresolved_code=None,
            )
        case StepSucceeded():
            if dep is None or event.deployment_id != dep.deployment_id:
                return state
            state = _latest_written(state, dep, event)
            if event.step == "rollback_sources" and not event.result.get("kept"):
                state = replace(state, stray_sources=None)
            return _with_dep(state, _succeeded(state, dep, event))
        case StepFailed():
            if dep is None or event.deployment_id != dep.deployment_id:
                return state
            return _with_dep(state, _failed(state, dep, event))
        case TimerStarted():
            if dep is None:
                return state
            if event.purpose == RESOLVE_WAIT:
                # Each pause before reading again follows one failed resolve read: the count
                # that bounds the reads (repeats of a recorded error record only this).
                return _with(state, dep, timer=event, due_wait=None, unresolved=dep.unresolved + 1)
            return _with(state, dep, timer=event, due_wait=None)
        case TrafficShifted():
            if dep is None:
                return state
            return _with(state, dep, weight=event.weight)
        case RollbackStarted():
            if dep is None:
                return state
            return _with_dep(state, _start_rollback(state, dep, event))
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
        case (
            CommitObserved()
            | HistoryRewritten()
            | SourceUnavailable()
            | CommitPlanned()
            | DefinitionRejected()
            | DeletesHeld()
            | OperatorCommandIssued()
        ):
            # Not function-stream events; a function stream never holds them.
            return state
        case _:
            assert_never(event)


def _with(state: SagaState, dep: Deployment, **changes: Any) -> SagaState:
    return replace(state, active=replace(dep, **changes))


def _with_dep(state: SagaState, dep: Deployment) -> SagaState:
    return replace(state, active=dep)


def _latest_started(state: SagaState, event: StepStarted) -> SagaState:
    # A write to $LATEST whose outcome is not recorded yet may or may not have happened.
    if event.step in ("update_config", "create_function"):
        state = replace(state, latest_config=None)
    if event.step in ("update_code", "create_function"):
        state = replace(state, latest_code=None)
    return state


def _latest_written(state: SagaState, dep: Deployment, event: StepSucceeded) -> SagaState:
    if dep.desired is None or event.step not in ("update_config", "update_code", "create_function"):
        return state
    code, config = split_definition(dep.desired.definition)
    if event.step == "update_config":
        return replace(state, latest_config=config)
    if event.step == "update_code":
        return replace(state, latest_code=code)
    if not event.result.get("found", True):
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
    return _with(state, dep, operator=event)


def _next_phase(dep: Deployment, phase: Phase, **changes: Any) -> Deployment:
    """Enter ``phase``: a fresh attempt and poll count, no pending wait."""
    return replace(
        dep,
        phase=phase,
        attempt=1,
        polls=0,
        dangling=None,
        unresolved=0,
        unresolved_code=None,
        settling=False,
        due_wait=None,
        timer=None,
        **changes,
    )


def _finish(dep: Deployment, outcome: Outcome, reason: str = "") -> Deployment:
    return _next_phase(dep, "finish", outcome=outcome, reason=reason or dep.reason)


def _after_update_steps(dep: Deployment, done: Phase) -> Phase:
    order: list[Phase] = []
    if not dep.skip_config:
        order += ["update_config", "wait_config"]
    if not dep.skip_code:
        order += ["update_code", "wait_code"]
    order.append("publish")
    if done == "inspect_alias":
        return order[0]
    return order[order.index(done) + 1]


def _alias_from(dep: Deployment, result: dict[str, Any]) -> Deployment:
    if "function_version" not in result:
        return dep
    routing = tuple(sorted((str(k), float(v)) for k, v in (result.get("routing") or {}).items()))
    return replace(dep, alias_version=str(result["function_version"]), alias_routing=routing)


def _succeeded(state: SagaState, dep: Deployment, event: StepSucceeded) -> Deployment:
    step, r = event.step, event.result
    if step.startswith("wait:"):
        dep = replace(dep, timer=None)
        if step == "wait:operator_promote":
            # The operator's promote: the alarms were read once and were quiet.
            return _next_phase(dep, "promote", shift_index=len(dep.schedule))
        if step == "wait:bake":
            index = dep.shift_index + 1
            if index < len(dep.schedule):
                return _next_phase(dep, "shift", shift_index=index)
            return _next_phase(dep, "promote", shift_index=index)
        return dep
    if step == "settle":
        if r.get("last_update_status") == "InProgress":
            return replace(dep, polls=dep.polls + 1, due_wait=("poll", state.policy.poll_seconds))
        return replace(dep, settling=False, polls=0)
    desired = dep.desired
    settings = desired.settings if desired else None
    if step == "inspect_function":
        if not r.get("found"):
            if dep.request.action == "delete":
                return _finish(dep, "succeeded", "the function was already absent")
            return _next_phase(dep, "create_function", path="create")
        dep = replace(dep, function_arn=r.get("arn"))
        if dep.request.action == "delete":
            return _next_phase(dep, "detach_sources", path="delete")
        return _next_phase(dep, "inspect_alias")
    if step == "inspect_alias":
        found = bool(r.get("found"))
        dep = _alias_from(replace(dep, alias_exists=found), r)
        # An alias on $LATEST (made outside glam) has no version to fall back to: deploy as a
        # first deployment, switching the alias to the new version without routing.
        on_version = found and r.get("function_version") not in (None, "$LATEST")
        stable = str(r["function_version"]) if on_version else None
        dep = replace(dep, stable=stable)
        if desired is not None:
            # Compared with what $LATEST holds (not with the last success): after a rollback
            # $LATEST still has the abandoned content, and publishing it would ship it again.
            code, config = split_definition(desired.definition)
            skip_config = state.latest_config is not None and config == state.latest_config
            skip_code = state.latest_code is not None and code == state.latest_code
            dep = replace(dep, skip_config=skip_config, skip_code=skip_code)
            if found and dep.skip_config and dep.skip_code:
                return _next_phase(dep, "sources", path="sources_only")
        return _next_phase(dep, _after_update_steps(dep, "inspect_alias"), path="update")
    if step == "create_function":
        return _next_phase(
            dep,
            "wait_active",
            function_arn=r.get("arn"),
            code_sha256=r.get("code_sha256"),
            revision_id=r.get("revision_id"),
        )
    if step in ("wait_active", "wait_config", "wait_code"):
        dep = replace(dep, code_sha256=r.get("code_sha256"), revision_id=r.get("revision_id"))
        if not poll_ready(step, r):
            return replace(dep, polls=dep.polls + 1, due_wait=("poll", state.policy.poll_seconds))
        if step == "wait_active":
            return _next_phase(dep, "publish")
        done: Phase = "wait_config" if step == "wait_config" else "wait_code"
        return _next_phase(dep, _after_update_steps(dep, done))
    if step in ("update_config", "update_code"):
        return _next_phase(dep, "wait_config" if step == "update_config" else "wait_code")
    if step == "publish":
        new = str(r["version"])
        dep = replace(dep, new_version=new)
        if dep.path == "create":
            return _next_phase(dep, "create_alias")
        if new == dep.stable:
            # AWS publishes nothing when nothing changed and answers with the latest version.
            return _next_phase(dep, "sources")
        return _next_phase(dep, "readiness")
    if step == "readiness":
        if r.get("state") == "Active":
            return _next_phase(dep, "sources" if dep.alias_exists else "create_alias")
        wait = float(settings.readiness.wait_interval) if settings else 10.0
        return replace(dep, polls=dep.polls + 1, due_wait=("readiness", wait))
    if step == "create_alias":
        dep = _alias_from(replace(dep, alias_exists=True), r)
        return _next_phase(dep, "sources")
    if step == "sources":
        shifting = dep.path == "update" and dep.stable is not None
        if shifting and dep.new_version is not None and dep.new_version != dep.stable:
            schedule = weights(settings.traffic if settings else None)
            return _next_phase(dep, "shift" if schedule else "promote", schedule=schedule)
        if dep.path == "update" and dep.alias_exists and dep.stable is None and dep.new_version:
            return _next_phase(dep, "promote")  # the alias was on $LATEST: switch it
        return _finish(dep, "succeeded")
    if step == "shift":
        return _next_phase(_alias_from(dep, r), "bake")
    if step == "promote":
        dep = _alias_from(dep, r)
        keep = settings is not None and not settings.delete_old_version
        if keep or dep.stable is None or dep.stable == dep.new_version:
            return _finish(dep, "succeeded")
        return _next_phase(dep, "verify_old")
    if step == "verify_old":
        dep = _alias_from(dep, r)
        if dep.stable in (dep.alias_version, *dep.routing):
            return _finish(dep, "succeeded", f"old version {dep.stable} kept: alias references it")
        return _next_phase(dep, "delete_old")
    if step == "delete_old":
        note = f"old version {dep.stable} kept: {r['kept']}" if r.get("kept") else ""
        return _finish(dep, "succeeded", note)
    if step == "rollback_alias":
        dep = _alias_from(dep, r)
        if dep.new_version is None or dep.new_version == dep.stable:
            return _after_rollback(state, dep, dep.reason)
        return _next_phase(dep, "rollback_verify", weight=0.0)
    if step == "rollback_verify":
        dep = _alias_from(dep, r)
        if dep.new_version in (dep.alias_version, *dep.routing):
            note = f"; new version {dep.new_version} kept: the alias still references it"
            return _after_rollback(state, dep, dep.reason + note)
        return _next_phase(dep, "rollback_delete_new")
    if step == "rollback_delete_new":
        note = f"; new version {dep.new_version} kept: {r['kept']}" if r.get("kept") else ""
        return _after_rollback(state, dep, dep.reason + note)
    if step == "rollback_sources":
        note = f"; event sources left as attempted: {r['kept']}" if r.get("kept") else ""
        return _finish(dep, _rollback_outcome(dep), dep.reason + note)
    if step == "detach_sources":
        return _next_phase(dep, "delete_function")
    if step == "delete_function":
        return _finish(dep, "succeeded")
    return dep


def poll_ready(step: str, result: dict[str, Any]) -> bool:
    """Whether a wait_* poll shows the function ready for the next step."""
    if step == "wait_active":
        return result.get("state") == "Active" and result.get("last_update_status") != "InProgress"
    return result.get("last_update_status") == "Successful"


def _after_rollback(state: SagaState, dep: Deployment, reason: str) -> Deployment:
    """The alias is back: put back the deployed event sources if this deployment reconciled
    them (sources are wired before the first shift), then finish."""
    if dep.sources_touched and state.deployed is not None:
        return _next_phase(dep, "rollback_sources", reason=reason)
    return _finish(dep, _rollback_outcome(dep), reason)


def _rollback_outcome(dep: Deployment) -> Outcome:
    return "superseded" if dep.rollback and dep.rollback.superseded_by else "rolled_back"


def _failed(state: SagaState, dep: Deployment, event: StepFailed) -> Deployment:
    if event.step.startswith("resolve:"):
        # The outcome of the dangling step is still unknown: keep it, read again after a pause
        # that grows (capped) with every failed read. Only a new error is recorded like this;
        # the pause (a RESOLVE_WAIT timer) counts the read, see resolve._resolve_failed.
        pause = state.policy.retry.backoff(dep.unresolved + 1)
        return replace(dep, unresolved_code=event.error_code, due_wait=(RESOLVE_WAIT, pause))
    if event.kind == "ambiguous":
        # The mutation may have happened: pause, then read before anything is repeated.
        pause = state.policy.retry.backoff(1)
        return replace(dep, unresolved=0, unresolved_code=None, due_wait=("backoff", pause))
    attempt = (dep.dangling.attempt if dep.dangling else dep.attempt) + 1
    dep = replace(
        dep, dangling=None, attempt=attempt, unresolved=0, unresolved_code=None, timer=None
    )
    if event.kind == "conflict":
        return replace(dep, settling=True, polls=0)
    if event.kind == "not_applied":
        return dep  # a read proved it never happened: repeat it at once
    return replace(dep, due_wait=("backoff", state.policy.retry.backoff(attempt - 1)))


def _start_rollback(state: SagaState, dep: Deployment, event: RollbackStarted) -> Deployment:
    dep = replace(dep, rollback=event, reason=event.reason)
    if dep.alias_touched:
        return _next_phase(dep, "rollback_alias")
    if dep.new_version is not None and dep.new_version != dep.stable:
        return _next_phase(dep, "rollback_verify")
    return _after_rollback(state, dep, dep.reason)
