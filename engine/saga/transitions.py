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
            [create_alias] → sources → [detach_old_alias] → [alarm_check] → (shift → bake)* →
            promote → bake → delete_old → finish
    attributes: put_signing | delete_signing, tag, untag (function-level, not versioned)
    delete: inspect_function → detach_sources → delete_function → finish
    rollback: rollback_alias → rollback_delete_new → rollback_sources → finish
      (rollback_sources only when this deployment reconciled event sources on the same alias)

A success is dispatched on what the step reports (its group in engine.saga.steps), then on
the step; each group's ``match`` ends in ``assert_never``, so a step added to a group without
a transition is a type error. ``verify_old`` and ``rollback_verify`` are reads earlier glams
made; their transitions remain so that the logs they wrote still fold.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, assert_never

from engine.definitions.normalize import code_key, zip_sha256
from engine.events.function import DeployOutcome, RollbackStarted, StepFailed
from engine.saga.results import (
    AlarmsRead,
    AliasRead,
    AlreadyAbsent,
    Applied,
    CodeHashed,
    Deleted,
    FunctionRead,
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
    Phase,
    SourcesStep,
    StepName,
    WaitPurpose,
    is_alias_step,
    is_attribute_step,
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


def _continue(dep: Deployment, otherwise: Phase = "publish") -> Deployment:
    """On to the next phase decided before the publish (``otherwise`` when none is left: a
    log written before these were decided goes on as it did)."""
    if not dep.todo:
        return _next_phase(dep, otherwise)
    phase, *rest = dep.todo
    return replace(_next_phase(dep, phase), todo=tuple(rest))


def _alias_from(dep: Deployment, read: AliasRead) -> Deployment:
    """The alias as ``read`` shows it (unchanged when the read has no version)."""
    if read.function_version is None:
        return dep
    routing = tuple(sorted(read.routing.items()))
    return replace(dep, alias_version=read.function_version, alias_routing=routing)


def _settings_alias(dep: Deployment) -> str:
    return dep.desired.settings.alias if dep.desired else ""


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
            return _continue(dep)
        case "hash_code", CodeHashed():
            hashed = replace(dep, expected_code=result.code_sha256, code_hashed=True)
            return _deciding(state, hashed)
        case "inspect_signing", SigningRead():
            return _deciding(state, replace(dep, signing=result.arn, signing_read=True))
    return dep  # a step this glam does not know: passed over


def _after_wait(state: SagaState, dep: Deployment, purpose: WaitPurpose | None) -> Deployment:
    if purpose == OPERATOR_PROMOTE:
        # The operator's promote: the alarms were read once and were quiet.
        return replace(_next_phase(dep, "promote"), shift_index=len(dep.schedule))
    if purpose == ALARM_CHECK:
        # The alarms were read once before any weight moves, and were quiet.
        return _next_phase(dep, "shift" if dep.schedule else "promote")
    if purpose == "bake":
        if dep.promoted:
            return _after_last_bake(state, dep)
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
            return _after_inspect_function(state, dep, read)
        case "inspect_stable":
            return _after_inspect_stable(state, dep, read)
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
            return _continue(dep, "wait_config")
        case "update_code":
            return _continue(dep, "wait_code")
        case "readiness":
            return _after_readiness(dep, read)
        case _:
            assert_never(step)


def _after_inspect_function(state: SagaState, dep: Deployment, read: FunctionRead) -> Deployment:
    deleting = dep.request.action == "delete"
    if not read.found:
        if deleting:
            return _finish(dep, "succeeded", "the function was already absent")
        return replace(_next_phase(dep, "create_function"), path="create")
    dep = replace(dep, function_arn=read.arn)
    if deleting:
        return replace(_next_phase(dep, "detach_sources"), path="delete")
    if dep.desired is None:
        return _finish(dep, "failed", "a deployment without a desired state")
    dep = replace(
        dep,
        code_sha256=read.code_sha256,
        revision_id=read.revision_id,
        latest_differs=read.differs,
        latest_code=read.code_sha256,
        latest_image=read.image_uri,
        tags_set=read.tags_set,
        tags_removed=read.tags_removed,
        stable=state.stable_version,
        first_sight=state.stable_version is None,
    )
    if read.create_only:
        return _finish(dep, "failed", _create_only_reason(dep, read.create_only))
    alias = _settings_alias(dep)
    deployed_alias = state.deployed.settings.alias if state.deployed else None
    moving = state.stable_version is not None and deployed_alias not in (None, alias)
    dep = replace(
        dep,
        routing_known=state.alias_known == alias and state.stable_version is not None,
        old_alias=deployed_alias if moving else None,
        alias_exists=state.alias_known == alias and state.stable_version is not None,
        expected_code=_expected_code(state, dep),
    )
    return _deciding(state, dep)


def _create_only_reason(dep: Deployment, differs: dict[str, str]) -> str:
    definition = dep.desired.definition if dep.desired else {}
    file = f"{dep.desired.prefix}_lambdadef.json" if dep.desired else "the definition"
    what = "; ".join(
        f"{member} is {definition.get(member, 'left to its default')!r} in {file} but "
        f"{live!r} in AWS"
        for member, live in sorted(differs.items())
    )
    return (
        f"{what}: AWS sets {', '.join(sorted(differs))} only when a function is created. "
        "Put the live value back in the file, or give the function a new FunctionName (glam "
        "creates it; the old one is removed once its definition is deleted); nothing was changed"
    )


def _expected_code(state: SagaState, dep: Deployment) -> str | None:
    """The CodeSha256 the desired code has, when it can be known without a read: inline code
    by its digest, S3 code by the log's record of it. Image code is compared by its URI."""
    definition = dep.desired.definition if dep.desired else {}
    code = dict(definition.get("Code") or {})
    if "ZipFile" in code:
        return zip_sha256(code)
    if "ImageUri" in code:
        return None
    return state.code_record(code_key(definition))


def _is_s3(dep: Deployment) -> bool:
    code = dict(dep.desired.definition.get("Code") or {}) if dep.desired else {}
    return "S3Key" in code and "ZipFile" not in code and "ImageUri" not in code


def _signing_wanted(state: SagaState, dep: Deployment) -> bool:
    """Code signing is read only when it is or was configured."""
    wanted = dep.desired is not None and bool(dep.desired.definition.get("CodeSigningConfigArn"))
    had = state.deployed is not None and bool(state.deployed.definition.get("CodeSigningConfigArn"))
    return wanted or had


def _deciding(state: SagaState, dep: Deployment) -> Deployment:
    """The next read the decision needs, or the decision once every one is made."""
    if _is_s3(dep) and dep.expected_code is None and not dep.code_hashed:
        return _next_phase(dep, "hash_code")
    if not dep.routing_known:
        return _next_phase(dep, "inspect_alias")
    if dep.stable is not None and dep.stable_read != dep.stable:
        return _next_phase(dep, "inspect_stable")
    if _signing_wanted(state, dep) and not dep.signing_read:
        return _next_phase(dep, "inspect_signing")
    return _decide(dep)


def _code_matches(dep: Deployment, sha: str | None, image: str | None) -> bool:
    code = dict(dep.desired.definition.get("Code") or {}) if dep.desired else {}
    if "ImageUri" in code:
        return image == str(code["ImageUri"])
    return dep.expected_code is not None and sha == dep.expected_code


def _decide(dep: Deployment) -> Deployment:
    """Publish iff the stable version does not serve the definition; update $LATEST only in
    what it differs in; function-level attributes first, before anything is published."""
    assert dep.desired is not None
    stable_serves = (
        dep.stable is not None
        and dep.stable_differs == ()
        and _code_matches(dep, dep.stable_code, dep.stable_image)
        and not dep.alias_routing
    )
    todo = _attribute_phases(dep)
    if stable_serves:
        if dep.old_alias is not None and not dep.alias_exists:
            todo += ("create_alias",)
        dep = replace(dep, path="sources_only", todo=(*todo, "sources"))
        return _continue(dep)
    config_differs = [m for m in dep.latest_differs or () if m != "Architectures"]
    skip_config = dep.latest_differs is not None and not config_differs
    skip_code = (
        dep.latest_differs is not None
        and "Architectures" not in dep.latest_differs
        and _code_matches(dep, dep.latest_code, dep.latest_image)
    )
    if not skip_config:
        todo += ("update_config", "wait_config")
    if not skip_code:
        todo += ("update_code", "wait_code")
    dep = replace(dep, path="update", skip_config=skip_config, skip_code=skip_code)
    return _continue(replace(dep, todo=(*todo, "publish")))


def _attribute_phases(dep: Deployment) -> tuple[Phase, ...]:
    """The function-level attributes to set: code signing (only once read), then tags."""
    assert dep.desired is not None
    phases: list[Phase] = []
    if dep.signing_read:
        wanted = dep.desired.definition.get("CodeSigningConfigArn") or None
        if wanted and wanted != dep.signing:
            phases.append("put_signing")
        elif not wanted and dep.signing:
            phases.append("delete_signing")
    if dep.tags_set:
        phases.append("tag")
    if dep.tags_removed:
        phases.append("untag")
    return tuple(phases)


def _after_inspect_stable(state: SagaState, dep: Deployment, read: FunctionRead) -> Deployment:
    """The version the alias serves, compared with the definition. Read through the alias
    when the log knew its routing: an alias moved by hand shows as another version, and its
    routing is read before anything is decided."""
    if not read.found:
        if not dep.alias_read:
            # The alias (or its version) is gone: learn what the alias is now.
            return _deciding(state, replace(dep, routing_known=False, stable=None))
        return _decide(replace(dep, stable_read=dep.stable, stable_differs=None))
    dep = replace(
        dep,
        stable_read=read.version,
        stable_differs=read.differs,
        stable_code=read.code_sha256,
        stable_image=read.image_uri,
    )
    if read.version != dep.stable and not dep.alias_read:
        return _deciding(state, replace(dep, stable=read.version, routing_known=False))
    return _deciding(state, dep)


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
    return _continue(dep)


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
    if dep.path == "create":
        return _next_phase(replace(dep, new_version=published.version), "create_alias")
    if published.version != dep.stable:
        # A new version, or one AWS had already made of exactly what $LATEST holds now (it
        # answers with that one instead of publishing a copy): either serves the definition.
        return _next_phase(replace(dep, new_version=published.version), "readiness")
    # AWS answered with the stable version, which does not serve the definition: it counts
    # $LATEST as unchanged since that version (the one published after it was deleted by a
    # rollback, say). Update $LATEST once more and publish again.
    if not dep.forced:
        dep = replace(dep, forced=True, skip_config=False, todo=("wait_config", "publish"))
        return _next_phase(dep, "update_config")
    return _finish(
        dep,
        "failed",
        f"PublishVersion answered version {published.version}, which already existed, twice: "
        f"AWS published no version of the definition although version {dep.stable} does not "
        "serve it; nothing was shifted",
    )


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
            return _after_promote(state, _alias_from(dep, read))
        case "verify_old":
            return _after_verify_old(_alias_from(dep, read))
        case "rollback_alias" | "rollback_verify":
            # The alias as the rollback left it (its answer, or an earlier glam's read).
            return _after_rollback_alias(state, replace(_alias_from(dep, read), weight=0.0))
        case _:
            assert_never(step)


def _after_inspect_alias(state: SagaState, dep: Deployment, read: AliasRead) -> Deployment:
    dep = _alias_from(
        replace(dep, alias_exists=read.found, routing_known=True, alias_read=True), read
    )
    # An alias on $LATEST (made outside glam) has no version to fall back to: deploy as a
    # first deployment, switching the alias to the new version without routing.
    on_version = read.found and read.function_version not in (None, "$LATEST")
    if on_version:
        stable = read.function_version
    elif not read.found and dep.old_alias is not None:
        stable = state.stable_version  # the new alias starts where the old one serves
    else:
        stable = None
    return _deciding(state, replace(dep, stable=stable))


def _after_promote(state: SagaState, dep: Deployment) -> Deployment:
    dep = replace(dep, promoted=True)
    settings = dep.desired.settings if dep.desired else None
    if dep.stable is not None and baked(settings):
        return _next_phase(dep, "bake")  # the bake after the last step: alarms still watched
    return _after_last_bake(state, dep)


def _after_last_bake(state: SagaState, dep: Deployment) -> Deployment:
    """Delete the old version after the last bake, unless it must stay."""
    settings = dep.desired.settings if dep.desired else None
    if settings is not None and not settings.delete_old_version:
        return _finish(dep, "succeeded")
    if dep.stable is None or dep.stable == dep.new_version:
        return _finish(dep, "succeeded")
    if dep.old_alias is not None:
        return _finish(
            dep, "succeeded", f"old version {dep.stable} kept: alias {dep.old_alias} serves it"
        )
    if dep.stable != state.stable_version:
        return _finish(dep, "succeeded", f"old version {dep.stable} kept: glam did not deploy it")
    return _after_verify_old(dep)


def _after_verify_old(dep: Deployment) -> Deployment:
    """Delete the old version, unless the alias (as last answered) still references it."""
    if dep.stable in (dep.alias_version, *dep.routing):
        return _finish(dep, "succeeded", f"old version {dep.stable} kept: alias references it")
    return _next_phase(dep, "delete_old")


def _after_rollback_alias(state: SagaState, dep: Deployment) -> Deployment:
    """Delete the new version, unless the alias (as answered just now) still references it."""
    if dep.new_version is None or dep.new_version == dep.stable:
        return _after_rollback(state, dep, dep.reason)
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
        case "delete_function" | "delete_alias":
            return _finish(dep, "succeeded")
        case _:
            assert_never(step)


def _after_sources_step(
    state: SagaState, dep: Deployment, step: SourcesStep, result: SourcesChanged | Kept
) -> Deployment:
    match step:
        case "sources":
            if dep.old_alias is not None:
                return _next_phase(dep, "detach_old_alias")
            return _traffic(dep)
        case "detach_old_alias":
            if isinstance(result, Kept):
                dep = replace(dep, reason=f"sources of alias {dep.old_alias} kept: {result.reason}")
            return _traffic(dep)
        case "rollback_sources":
            reason = dep.reason
            if isinstance(result, Kept):
                reason += f"; event sources left as attempted: {result.reason}"
            return _finish(dep, _rollback_outcome(dep), reason)
        case "detach_sources":
            return _next_phase(dep, "delete_function")
        case _:
            assert_never(step)


def _traffic(dep: Deployment) -> Deployment:
    """Sources are wired before any traffic moves: shift, switch the alias, or finish."""
    settings = dep.desired.settings if dep.desired else None
    shifting = dep.path == "update" and dep.stable is not None
    if shifting and dep.new_version is not None and dep.new_version != dep.stable:
        schedule = weights(settings.traffic if settings else None)
        dep = replace(dep, schedule=schedule)
        if settings is not None and settings.alarms:
            return _next_phase(dep, "alarm_check")  # read once before any weight moves
        return _next_phase(dep, "shift" if schedule else "promote")
    on_latest = dep.alias_exists and dep.alias_version not in (None, dep.new_version)
    if dep.path == "update" and on_latest and dep.stable is None and dep.new_version:
        return _next_phase(dep, "promote")  # the alias was on $LATEST: switch it
    if dep.path == "sources_only":
        served = f"version {dep.stable} already serves the definition"
        why = f"adopted: {served}" if dep.first_sight else f"{served}; nothing published"
        return _finish(dep, "succeeded", dep.reason or why)
    return _finish(dep, "succeeded")


def _after_rollback(state: SagaState, dep: Deployment, reason: str) -> Deployment:
    """The alias is back: put back the deployed event sources if this deployment reconciled
    them (sources are wired before the first shift), then finish. A deployment that moved to
    another alias leaves them on it: that alias serves the stable version again."""
    if dep.sources_touched and state.deployed is not None and dep.old_alias is None:
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
        return _next_phase(dep, "rollback_delete_new")
    return _after_rollback(state, dep, dep.reason)
