"""Where a step's outcome leads: the phase machine of one deployment, as small transitions.

Every arrow is a recorded event (engine.saga.replay calls these while folding):

    inspect_function ─┬─ absent ─ create_function → wait_active → publish → create_alias → sources
                      └─ present → inspect_alias → update_config → wait_config → update_code
                           → wait_code → publish → readiness → sources → (shift → bake)* →
                           promote → verify_old → delete_old → finish
    unchanged code and configuration: inspect_alias → sources → finish
    delete: inspect_function → detach_sources → delete_function → finish
    rollback: rollback_alias → rollback_verify → rollback_delete_new → rollback_sources → finish
      (rollback_sources only when this deployment reconciled event sources)

A success is dispatched on what the step reports (its group in engine.saga.steps), then on
the step; each group's ``match`` ends in ``assert_never``, so a step added to a group without
a transition is a type error.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, assert_never

from engine.events.function import DeployOutcome, RollbackStarted, StepFailed
from engine.saga.results import (
    AlarmsRead,
    AliasRead,
    AlreadyAbsent,
    Deleted,
    FunctionRead,
    Kept,
    Published,
    SourcesChanged,
    StepResult,
)
from engine.saga.schedule import weights
from engine.saga.state import (
    OPERATOR_PROMOTE,
    RESOLVE_WAIT,
    Deployment,
    SagaState,
    split_definition,
)
from engine.saga.steps import (
    AliasStep,
    DeleteStep,
    FunctionStep,
    Phase,
    SourcesStep,
    StepName,
    WaitPurpose,
    is_alias_step,
    is_delete_step,
    is_function_step,
    is_sources_step,
)


def _next_phase(dep: Deployment, phase: Phase) -> Deployment:
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
    )


def _finish(dep: Deployment, outcome: DeployOutcome, reason: str = "") -> Deployment:
    return replace(_next_phase(dep, "finish"), outcome=outcome, reason=reason or dep.reason)


def _poll_again(dep: Deployment, purpose: WaitPurpose, seconds: float) -> Deployment:
    """Stay in this phase and read again after ``seconds``."""
    return replace(dep, polls=dep.polls + 1, due_wait=(purpose, seconds))


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


def _alias_from(dep: Deployment, read: AliasRead) -> Deployment:
    """The alias as ``read`` shows it (unchanged when the read has no version)."""
    if read.function_version is None:
        return dep
    routing = tuple(sorted(read.routing.items()))
    return replace(dep, alias_version=read.function_version, alias_routing=routing)


# -- where a step's success leads ------------------------------------------------------------


def after_success(
    state: SagaState, dep: Deployment, name: StepName, result: StepResult | None
) -> Deployment:
    """The deployment after step ``name`` reported ``result``: dispatched on what the step
    reports, then on the step (each group's match is exhaustive over its steps)."""
    match name.step, result:
        case _, AlarmsRead():  # a wait ended (its timer may have any purpose)
            return _after_wait(replace(dep, timer=None), name.purpose)
        case "settle", FunctionRead():
            return _after_settle(state, dep, result)
        case step, FunctionRead() if is_function_step(step):
            return _after_function_step(state, dep, step, result)
        case step, AliasRead() if is_alias_step(step):
            return _after_alias_step(state, dep, step, result)
        case "publish", Published():
            return _after_publish(dep, result)
        case step, Deleted() | AlreadyAbsent() | Kept() if is_delete_step(step):
            return _after_delete_step(state, dep, step, result)
        case step, SourcesChanged() | Kept() if is_sources_step(step):
            return _after_sources_step(state, dep, step, result)
    return dep  # a step this glam does not know: passed over


def _after_wait(dep: Deployment, purpose: WaitPurpose | None) -> Deployment:
    if purpose == OPERATOR_PROMOTE:
        # The operator's promote: the alarms were read once and were quiet.
        return replace(_next_phase(dep, "promote"), shift_index=len(dep.schedule))
    if purpose == "bake":
        index = dep.shift_index + 1
        phase: Phase = "shift" if index < len(dep.schedule) else "promote"
        return replace(_next_phase(dep, phase), shift_index=index)
    return dep


def _after_settle(state: SagaState, dep: Deployment, read: FunctionRead) -> Deployment:
    if read.last_update_status == "InProgress":
        return _poll_again(dep, "poll", state.policy.poll_seconds)
    return replace(dep, settling=False, polls=0)


def _after_function_step(
    state: SagaState, dep: Deployment, step: FunctionStep, read: FunctionRead
) -> Deployment:
    match step:
        case "inspect_function":
            return _after_inspect_function(dep, read)
        case "create_function":
            dep = replace(
                dep,
                function_arn=read.arn,
                code_sha256=read.code_sha256,
                revision_id=read.revision_id,
            )
            return _next_phase(dep, "wait_active")
        case "wait_active" | "wait_config" | "wait_code":
            return _after_poll(state, dep, step, read)
        case "update_config":
            return _next_phase(dep, "wait_config")
        case "update_code":
            return _next_phase(dep, "wait_code")
        case "readiness":
            return _after_readiness(dep, read)
        case _:
            assert_never(step)


def _after_inspect_function(dep: Deployment, read: FunctionRead) -> Deployment:
    deleting = dep.request.action == "delete"
    if not read.found:
        if deleting:
            return _finish(dep, "succeeded", "the function was already absent")
        return replace(_next_phase(dep, "create_function"), path="create")
    dep = replace(dep, function_arn=read.arn)
    if deleting:
        return replace(_next_phase(dep, "detach_sources"), path="delete")
    return _next_phase(dep, "inspect_alias")


PollStep = Literal["wait_active", "wait_config", "wait_code"]
# Reads of a function until an update or creation has settled.
Poll = Literal[PollStep, "settle"]


def _after_poll(
    state: SagaState, dep: Deployment, step: PollStep, read: FunctionRead
) -> Deployment:
    dep = replace(dep, code_sha256=read.code_sha256, revision_id=read.revision_id)
    if not poll_ready(step, read):
        return _poll_again(dep, "poll", state.policy.poll_seconds)
    if step == "wait_active":
        return _next_phase(dep, "publish")
    return _next_phase(dep, _after_update_steps(dep, step))


def poll_ready(step: Poll, read: FunctionRead) -> bool:
    """Whether a wait_* poll shows the function ready for the next step."""
    if step == "wait_active":
        return read.state == "Active" and read.last_update_status != "InProgress"
    return read.last_update_status == "Successful"


def _after_readiness(dep: Deployment, read: FunctionRead) -> Deployment:
    if read.state == "Active":
        return _next_phase(dep, "sources" if dep.alias_exists else "create_alias")
    settings = dep.desired.settings if dep.desired else None
    wait = float(settings.readiness.wait_interval) if settings else 10.0
    return _poll_again(dep, "readiness", wait)


def _after_publish(dep: Deployment, published: Published) -> Deployment:
    dep = replace(dep, new_version=published.version)
    if dep.path == "create":
        return _next_phase(dep, "create_alias")
    if published.version == dep.stable:
        # AWS publishes nothing when nothing changed and answers with the latest version.
        return _next_phase(dep, "sources")
    return _next_phase(dep, "readiness")


def _after_alias_step(
    state: SagaState, dep: Deployment, step: AliasStep, read: AliasRead
) -> Deployment:
    match step:
        case "inspect_alias":
            return _after_inspect_alias(state, dep, read)
        case "create_alias":
            return _next_phase(_alias_from(replace(dep, alias_exists=True), read), "sources")
        case "shift":
            return _next_phase(_alias_from(dep, read), "bake")
        case "promote":
            return _after_promote(_alias_from(dep, read))
        case "verify_old":
            return _after_verify_old(_alias_from(dep, read))
        case "rollback_alias":
            return _after_rollback_alias(state, _alias_from(dep, read))
        case "rollback_verify":
            return _after_rollback_verify(state, _alias_from(dep, read))
        case _:
            assert_never(step)


def _after_inspect_alias(state: SagaState, dep: Deployment, read: AliasRead) -> Deployment:
    dep = _alias_from(replace(dep, alias_exists=read.found), read)
    # An alias on $LATEST (made outside glam) has no version to fall back to: deploy as a
    # first deployment, switching the alias to the new version without routing.
    on_version = read.found and read.function_version not in (None, "$LATEST")
    dep = replace(dep, stable=read.function_version if on_version else None)
    if dep.desired is not None:
        # Compared with what $LATEST holds (not with the last success): after a rollback
        # $LATEST still has the abandoned content, and publishing it would ship it again.
        code, config = split_definition(dep.desired.definition)
        skip_config = state.latest_config is not None and config == state.latest_config
        skip_code = state.latest_code is not None and code == state.latest_code
        dep = replace(dep, skip_config=skip_config, skip_code=skip_code)
        if read.found and skip_config and skip_code:
            return replace(_next_phase(dep, "sources"), path="sources_only")
    return replace(_next_phase(dep, _after_update_steps(dep, "inspect_alias")), path="update")


def _after_promote(dep: Deployment) -> Deployment:
    settings = dep.desired.settings if dep.desired else None
    keep = settings is not None and not settings.delete_old_version
    if keep or dep.stable is None or dep.stable == dep.new_version:
        return _finish(dep, "succeeded")
    return _next_phase(dep, "verify_old")


def _after_verify_old(dep: Deployment) -> Deployment:
    """Delete the old version, unless the alias (as read just now) still references it."""
    if dep.stable in (dep.alias_version, *dep.routing):
        return _finish(dep, "succeeded", f"old version {dep.stable} kept: alias references it")
    return _next_phase(dep, "delete_old")


def _after_rollback_alias(state: SagaState, dep: Deployment) -> Deployment:
    if dep.new_version is None or dep.new_version == dep.stable:
        return _after_rollback(state, dep, dep.reason)
    return replace(_next_phase(dep, "rollback_verify"), weight=0.0)


def _after_rollback_verify(state: SagaState, dep: Deployment) -> Deployment:
    """Delete the new version, unless the alias (as read just now) still references it."""
    if dep.new_version in (dep.alias_version, *dep.routing):
        note = f"; new version {dep.new_version} kept: the alias still references it"
        return _after_rollback(state, dep, dep.reason + note)
    return _next_phase(dep, "rollback_delete_new")


def _after_delete_step(
    state: SagaState, dep: Deployment, step: DeleteStep, result: Deleted | AlreadyAbsent | Kept
) -> Deployment:
    kept = result.reason if isinstance(result, Kept) else ""
    match step:
        case "delete_old":
            return _finish(
                dep, "succeeded", f"old version {dep.stable} kept: {kept}" if kept else ""
            )
        case "rollback_delete_new":
            note = f"; new version {dep.new_version} kept: {kept}" if kept else ""
            return _after_rollback(state, dep, dep.reason + note)
        case "delete_function":
            return _finish(dep, "succeeded")
        case _:
            assert_never(step)


def _after_sources_step(
    state: SagaState, dep: Deployment, step: SourcesStep, result: SourcesChanged | Kept
) -> Deployment:
    match step:
        case "sources":
            return _after_sources(dep)
        case "rollback_sources":
            reason = dep.reason
            if isinstance(result, Kept):
                reason += f"; event sources left as attempted: {result.reason}"
            return _finish(dep, _rollback_outcome(dep), reason)
        case "detach_sources":
            return _next_phase(dep, "delete_function")
        case _:
            assert_never(step)


def _after_sources(dep: Deployment) -> Deployment:
    """Sources are wired before any traffic moves: shift, switch the alias, or finish."""
    settings = dep.desired.settings if dep.desired else None
    shifting = dep.path == "update" and dep.stable is not None
    if shifting and dep.new_version is not None and dep.new_version != dep.stable:
        schedule = weights(settings.traffic if settings else None)
        return replace(_next_phase(dep, "shift" if schedule else "promote"), schedule=schedule)
    if dep.path == "update" and dep.alias_exists and dep.stable is None and dep.new_version:
        return _next_phase(dep, "promote")  # the alias was on $LATEST: switch it
    return _finish(dep, "succeeded")


def _after_rollback(state: SagaState, dep: Deployment, reason: str) -> Deployment:
    """The alias is back: put back the deployed event sources if this deployment reconciled
    them (sources are wired before the first shift), then finish."""
    if dep.sources_touched and state.deployed is not None:
        return replace(_next_phase(dep, "rollback_sources"), reason=reason)
    return _finish(dep, _rollback_outcome(dep), reason)


def _rollback_outcome(dep: Deployment) -> DeployOutcome:
    return "superseded" if dep.rollback and dep.rollback.superseded_by else "rolled_back"


# -- a step that failed, a rollback that starts ----------------------------------------------


def after_failure(state: SagaState, dep: Deployment, event: StepFailed) -> Deployment:
    """The deployment after step ``event.step`` failed: pause, settle, read or repeat it."""
    if event.step.is_resolve:
        # The outcome of the dangling step is still unknown: keep it, read again after a pause
        # that grows (capped) with every failed read. Only a new error is recorded like this;
        # the pause (a RESOLVE_WAIT timer) counts the read, see engine.saga.resolve.
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


def rolling_back(state: SagaState, dep: Deployment, event: RollbackStarted) -> Deployment:
    """The deployment as its rollback starts: undo the alias first, if it may have moved."""
    dep = replace(dep, rollback=event, reason=event.reason)
    if dep.alias_touched:
        return _next_phase(dep, "rollback_alias")
    if dep.new_version is not None and dep.new_version != dep.stable:
        return _next_phase(dep, "rollback_verify")
    return _after_rollback(state, dep, dep.reason)
