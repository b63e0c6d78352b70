"""Where a step's outcome leads: the phase machine of one deployment, as small transitions.

Every arrow is a recorded event (engine.saga.replay calls these while folding):

    inspect_function ─┬─ absent ─ create_function → wait_active → publish → create_alias → sources
                      └─ present → the reads → decide
    the reads: hash_code (S3 code the log has no CodeSha256 for) · inspect_alias (only when the
      log does not know the alias's routing) · inspect_stable (the version the alias serves,
      compared with the definition) · inspect_signing (when code signing is or was configured)
    decide: the stable version serves the definition → attributes → sources → finish
            otherwise → attributes → update_config → wait_config (if $LATEST's configuration
            differs) → update_code → wait_code (if its code differs) → publish → readiness →
            [create_alias] → sources → [detach_old_alias] → [hook_before] → [alarm_check] →
            (shift → bake → [gate])* → promote → [hook_after] → bake → [gate] → delete_old
            → finish
    attributes: put_signing | delete_signing, tag, untag (function-level, not versioned)
    delete: inspect_function → detach_sources → delete_function → finish
    rollback: rollback_alias → rollback_delete_new → rollback_sources → finish
      (rollback_sources only when this deployment reconciled event sources on the same alias)

The reads and the decision are engine.saga.deciding; the moves every transition is made of
are engine.saga.moves. A success is dispatched on what the step reports (its group in
engine.saga.steps), then on the step; each group's ``match`` ends in ``assert_never``, so a
step added to a group without a transition is a type error. ``verify_old`` and
``rollback_verify`` are reads earlier glams made; their transitions remain so that the logs
they wrote still fold.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, assert_never

from engine.events.function import DeployOutcome, RollbackStarted, StepFailed
from engine.saga.bake import after_bake
from engine.saga.deciding import (
    after_inspect_alias,
    after_inspect_function,
    after_inspect_stable,
    deciding,
)
from engine.saga.gate import after_gate, bake_done
from engine.saga.moves import alias_from, finish, go_on, next_phase, poll_again
from engine.saga.results import (
    AlarmsRead,
    AliasRead,
    AlreadyAbsent,
    Applied,
    CodeHashed,
    Deleted,
    FunctionRead,
    HookAnswer,
    InvocationsCounted,
    Kept,
    Published,
    SigningRead,
    SourcesChanged,
    StepResult,
)
from engine.saga.schedule import baked, weights
from engine.saga.state import (
    ALARM_CHECK,
    OPERATOR_PROMOTE,
    RESOLVE_WAIT,
    Deployment,
    SagaState,
)
from engine.saga.steps import (
    AliasStep,
    DeleteStep,
    FunctionStep,
    HookStep,
    SourcesStep,
    StepName,
    WaitPurpose,
    is_alias_step,
    is_attribute_step,
    is_delete_step,
    is_function_step,
    is_hook_step,
    is_sources_step,
)

# -- where a step's success leads ------------------------------------------------------------


def after_success(
    state: SagaState, dep: Deployment, name: StepName, result: StepResult | None
) -> Deployment:
    """The deployment after step ``name`` reported ``result``: dispatched on what the step
    reports, then on the step (each group's match is exhaustive over its steps)."""
    match name.step, result:
        case _, AlarmsRead():  # a wait ended (its timer may have any purpose)
            return _after_wait(state, replace(dep, timer=None), name.purpose)
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
        case step, Applied() if is_attribute_step(step):
            return go_on(dep)
        case "hash_code", CodeHashed():
            hashed = replace(dep, expected_code=result.code_sha256, code_hashed=True)
            return deciding(state, hashed)
        case "inspect_signing", SigningRead():
            return deciding(state, replace(dep, signing=result.arn, signing_read=True))
        case step, HookAnswer() if is_hook_step(step):
            return _after_hook(state, dep, step, result)
        case "gate", InvocationsCounted():
            return after_gate(state, dep, result)
    return dep  # a step this glam does not know: passed over


def _after_wait(state: SagaState, dep: Deployment, purpose: WaitPurpose | None) -> Deployment:
    if purpose == OPERATOR_PROMOTE:
        # The operator's promote: the alarms were read once and were quiet.
        return replace(next_phase(dep, "promote"), shift_index=len(dep.schedule))
    if purpose == ALARM_CHECK:
        # The alarms were read once before any weight moves, and were quiet.
        return next_phase(dep, "shift" if dep.schedule else "promote")
    if purpose == "operator_step":
        # An operator's one-step promote: the alarms were read once and were quiet.
        return after_bake(state, replace(dep, operator=None))
    if purpose == "bake":
        return bake_done(state, dep)
    if purpose == "release":
        # Every member of the release reached this point: on with the phase.
        return replace(dep, release_passed=dep.release_at)
    return dep  # a pause between reads (a gate's among them): the phase reads again


def _after_settle(state: SagaState, dep: Deployment, read: FunctionRead) -> Deployment:
    if read.last_update_status == "InProgress":
        return poll_again(dep, "poll", state.policy.poll_seconds)
    return replace(dep, settling=False, polls=0)


def _after_function_step(
    state: SagaState, dep: Deployment, step: FunctionStep, read: FunctionRead
) -> Deployment:
    match step:
        case "inspect_function":
            return after_inspect_function(state, dep, read)
        case "inspect_stable":
            return after_inspect_stable(state, dep, read)
        case "create_function":
            dep = replace(
                dep,
                function_arn=read.arn,
                code_sha256=read.code_sha256,
                revision_id=read.revision_id,
            )
            return next_phase(dep, "wait_active")
        case "wait_active" | "wait_config" | "wait_code":
            return _after_poll(state, dep, step, read)
        case "update_config":
            return go_on(dep, "wait_config")
        case "update_code":
            return go_on(dep, "wait_code")
        case "readiness":
            return _after_readiness(dep, read)
        case _:
            assert_never(step)


PollStep = Literal["wait_active", "wait_config", "wait_code"]
# Reads of a function until an update or creation has settled.
Poll = Literal[PollStep, "settle"]


def _after_poll(
    state: SagaState, dep: Deployment, step: PollStep, read: FunctionRead
) -> Deployment:
    dep = replace(dep, code_sha256=read.code_sha256, revision_id=read.revision_id)
    if not poll_ready(step, read):
        return poll_again(dep, "poll", state.policy.poll_seconds)
    if step == "wait_active":
        return next_phase(dep, "publish")
    return go_on(dep)


def poll_ready(step: Poll, read: FunctionRead) -> bool:
    """Whether a wait_* poll shows the function ready for the next step."""
    if step == "wait_active":
        return read.state == "Active" and read.last_update_status != "InProgress"
    return read.last_update_status == "Successful"


def _after_readiness(dep: Deployment, read: FunctionRead) -> Deployment:
    if read.state == "Active":
        return next_phase(dep, "sources" if dep.alias_exists else "create_alias")
    settings = dep.desired.settings if dep.desired else None
    wait = float(settings.readiness.wait_interval) if settings else 10.0
    return poll_again(dep, "readiness", wait)


def _after_publish(dep: Deployment, published: Published) -> Deployment:
    if dep.path == "create":
        return next_phase(replace(dep, new_version=published.version), "create_alias")
    if published.version != dep.stable:
        # A new version, or one AWS had already made of exactly what $LATEST holds now (it
        # answers with that one instead of publishing a copy): either serves the definition.
        # One that existed before is not this deployment's: a rollback keeps it.
        reused = _existed(dep, published.version)
        dep = replace(dep, new_version=published.version, reused_version=reused)
        return next_phase(dep, "readiness")
    # AWS answered with the stable version, which does not serve the definition: it counts
    # $LATEST as unchanged since that version (the one published after it was deleted by a
    # rollback, say). Update $LATEST once more and publish again.
    if not dep.forced:
        dep = replace(dep, forced=True, skip_config=False, todo=("wait_config", "publish"))
        return next_phase(dep, "update_config")
    return finish(
        dep,
        "failed",
        f"PublishVersion answered version {published.version}, which already existed, twice: "
        f"AWS published no version of the definition although version {dep.stable} does not "
        "serve it; nothing was shifted",
    )


def _existed(dep: Deployment, version: str) -> bool:
    """Whether ``version`` existed before this deployment's publish: not above the highest
    version its intent knew of (an intent of an earlier glam knew none: counted as new)."""
    known = dep.dangling.request.get("known_version") if dep.dangling is not None else None
    return isinstance(known, int) and version.isdigit() and int(version) <= known


def _after_alias_step(
    state: SagaState, dep: Deployment, step: AliasStep, read: AliasRead
) -> Deployment:
    match step:
        case "inspect_alias":
            return after_inspect_alias(state, dep, read)
        case "create_alias":
            return next_phase(alias_from(replace(dep, alias_exists=True), read), "sources")
        case "reset_alias":
            removed = ", ".join(v for v, _ in dep.alias_routing)
            why = (
                f"alias {read.name or state.alias} back on version {dep.stable} alone: the "
                f"routing to version {removed} was set outside glam, and version {dep.stable} "
                "serves the definition"
            )
            return go_on(replace(alias_from(dep, read), reason=why))
        case "shift":
            return next_phase(alias_from(dep, read), "bake")
        case "promote":
            return _after_promote(state, alias_from(dep, read))
        case "verify_old":
            return _after_verify_old(alias_from(dep, read))
        case "rollback_alias" | "rollback_verify":
            # The alias as the rollback left it (its answer, or an earlier glam's read).
            return _after_rollback_alias(state, replace(alias_from(dep, read), weight=0.0))
        case _:
            assert_never(step)


def _after_promote(state: SagaState, dep: Deployment) -> Deployment:
    dep = replace(dep, promoted=True)
    settings = dep.desired.settings if dep.desired else None
    if dep.stable is not None and settings is not None and settings.hooks.after_allow_traffic:
        return next_phase(dep, "hook_after")
    return _last_bake(state, dep)


def _after_hook(
    state: SagaState, dep: Deployment, step: HookStep, answer: HookAnswer
) -> Deployment:
    """A hook that succeeded lets the deployment go on; any other answer is followed in the
    log by the rollback it starts (engine.saga.hooks), so the deployment stays where it is."""
    if answer.status != "succeeded":
        return dep
    match step:
        case "hook_before":
            return _first_move(dep)
        case "hook_after":
            return _last_bake(state, dep)
        case _:
            assert_never(step)


def _last_bake(state: SagaState, dep: Deployment) -> Deployment:
    settings = dep.desired.settings if dep.desired else None
    if dep.stable is not None and baked(settings):
        return next_phase(dep, "bake")  # the bake after the last step: alarms still watched
    return after_last_bake(state, dep)


def after_last_bake(state: SagaState, dep: Deployment) -> Deployment:
    """Delete the old version after the last bake, unless it must stay."""
    settings = dep.desired.settings if dep.desired else None
    if settings is not None and not settings.delete_old_version:
        return finish(dep, "succeeded")
    if dep.stable is None or dep.stable == dep.new_version:
        return finish(dep, "succeeded")
    if dep.old_alias is not None:
        return finish(
            dep, "succeeded", f"old version {dep.stable} kept: alias {dep.old_alias} serves it"
        )
    if dep.stable != state.stable_version:
        return finish(dep, "succeeded", f"old version {dep.stable} kept: glam did not deploy it")
    return _after_verify_old(dep)


def _after_verify_old(dep: Deployment) -> Deployment:
    """Delete the old version, unless the alias (as last answered) still references it."""
    if dep.stable in (dep.alias_version, *dep.routing):
        return finish(dep, "succeeded", f"old version {dep.stable} kept: alias references it")
    return next_phase(dep, "delete_old")


def _after_rollback_alias(state: SagaState, dep: Deployment) -> Deployment:
    """Delete the new version, unless the alias (as answered just now) still references it."""
    if dep.new_version is None or dep.new_version == dep.stable:
        return _after_rollback(state, dep, dep.reason)
    if dep.new_version in (dep.alias_version, *dep.routing):
        note = f"; new version {dep.new_version} kept: the alias still references it"
        return _after_rollback(state, dep, dep.reason + note)
    if dep.reused_version:
        note = f"; version {dep.new_version} kept: it existed before this deployment"
        return _after_rollback(state, dep, dep.reason + note)
    return next_phase(dep, "rollback_delete_new")


def _after_delete_step(
    state: SagaState, dep: Deployment, step: DeleteStep, result: Deleted | AlreadyAbsent | Kept
) -> Deployment:
    kept = result.reason if isinstance(result, Kept) else ""
    match step:
        case "delete_old":
            return finish(
                dep, "succeeded", f"old version {dep.stable} kept: {kept}" if kept else ""
            )
        case "rollback_delete_new":
            note = f"; new version {dep.new_version} kept: {kept}" if kept else ""
            return _after_rollback(state, dep, dep.reason + note)
        case "delete_function":
            return finish(dep, "succeeded")
        case "delete_alias":
            gone = isinstance(result, AlreadyAbsent)
            return finish(
                dep, "succeeded", f"alias {dep.old_alias} {'already absent' if gone else 'removed'}"
            )
        case _:
            assert_never(step)


def _after_sources_step(
    state: SagaState, dep: Deployment, step: SourcesStep, result: SourcesChanged | Kept
) -> Deployment:
    match step:
        case "sources":
            if dep.old_alias is not None:
                return next_phase(dep, "detach_old_alias")
            return _traffic(dep)
        case "detach_old_alias":
            if isinstance(result, Kept):
                dep = replace(dep, reason=f"sources of alias {dep.old_alias} kept: {result.reason}")
            return _traffic(dep)
        case "rollback_sources":
            reason = dep.reason
            if isinstance(result, Kept):
                reason += f"; event sources left as attempted: {result.reason}"
            return finish(dep, _rollback_outcome(dep), reason)
        case "detach_sources":
            return next_phase(dep, "delete_function")
        case _:
            assert_never(step)


def _traffic(dep: Deployment) -> Deployment:
    """Sources are wired before any traffic moves: shift, switch the alias, or finish."""
    settings = dep.desired.settings if dep.desired else None
    shifting = dep.path == "update" and dep.stable is not None
    if shifting and dep.new_version is not None and dep.new_version != dep.stable:
        schedule = weights(settings.traffic if settings else None)
        dep = replace(dep, schedule=schedule)
        if settings is not None and settings.hooks.before_allow_traffic is not None:
            return next_phase(dep, "hook_before")  # asked before any weight moves
        return _first_move(dep)
    on_latest = dep.alias_exists and dep.alias_version not in (None, dep.new_version)
    if dep.path == "update" and on_latest and dep.stable is None and dep.new_version:
        return next_phase(dep, "promote")  # the alias was on $LATEST: switch it
    if dep.path == "sources_only":
        served = f"version {dep.stable} already serves the definition"
        why = f"adopted: {served}" if dep.first_sight else f"{served}; nothing published"
        return finish(dep, "succeeded", dep.reason or why)
    return finish(dep, "succeeded")


def _first_move(dep: Deployment) -> Deployment:
    """The first weight moves: after one alarm read when there are alarms."""
    settings = dep.desired.settings if dep.desired else None
    if settings is not None and settings.alarms:
        return next_phase(dep, "alarm_check")  # read once before any weight moves
    return next_phase(dep, "shift" if dep.schedule else "promote")


def _after_rollback(state: SagaState, dep: Deployment, reason: str) -> Deployment:
    """The alias is back: put back the deployed event sources if this deployment reconciled
    them (sources are wired before the first shift), then finish. A deployment that moved to
    another alias leaves them on it: that alias serves the stable version again."""
    if dep.sources_touched and state.deployed is not None and dep.old_alias is None:
        return replace(next_phase(dep, "rollback_sources"), reason=reason)
    return finish(dep, _rollback_outcome(dep), reason)


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
    # A release member may roll back from its end (engine.saga.release): the outcome the
    # last bake decided is not the deployment's any more.
    dep = replace(dep, rollback=event, reason=event.reason, outcome=None)
    if dep.alias_touched:
        return next_phase(dep, "rollback_alias")
    if dep.new_version is not None and dep.new_version != dep.stable:
        if dep.reused_version:
            note = f"; version {dep.new_version} kept: it existed before this deployment"
            return _after_rollback(state, dep, dep.reason + note)
        return next_phase(dep, "rollback_delete_new")
    return _after_rollback(state, dep, dep.reason)
