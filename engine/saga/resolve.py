"""Settling a dangling intent by a read, and what that read's outcome means.

A log that ends in a mutation's ``StepStarted`` with no outcome is resolved, before anything
is repeated, by the read its operation names as ``resolver`` (engine.saga.effects);
``resolved`` turns the read's outcome into events: the step adopted (``StepSucceeded``),
found not applied (a retryable ``StepFailed``, so it is repeated), or, when the read itself
keeps failing, a bounded number of paused retries and then a deployment that finishes
"failed" naming what to check. Pure, like engine.saga.saga.
"""

from __future__ import annotations

from datetime import timedelta

from engine.events import Event
from engine.events.function import (
    DeploymentFinished,
    RollbackStarted,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerStarted,
)
from engine.saga.calls import PERFORMS
from engine.saga.effects import (
    Call,
    CallOutcome,
    Failed,
    GetAlias,
    GetFunction,
    ListVersions,
    Ok,
    SagaContext,
)
from engine.saga.results import (
    AliasRead,
    AlreadyAbsent,
    CallResult,
    FunctionRead,
    Published,
    Requested,
    StepResult,
    VersionsRead,
)
from engine.saga.state import RESOLVE_WAIT, Deployment, SagaState, version_marker
from engine.saga.steps import Step, StepName


def resolve_call(state: SagaState, dangling: StepStarted) -> Call | None:
    """The read that settles ``dangling``, or None when its step is simply repeated."""
    step = dangling.step.step
    performs = PERFORMS.get(step) if step is not None else None
    if step is None or performs is None or performs.resolver is None:
        return None
    read = performs.resolver.of(state.function_name, state.alias or "")
    return Call(step=StepName.resolve(step), operation=read)


def resolved(
    state: SagaState, dep: Deployment, effect: Call, outcome: CallOutcome, ctx: SagaContext
) -> list[Event]:
    """The events that record ``outcome`` of the read ``effect`` that settles
    ``dep.dangling`` (``effect.resolves`` names the step)."""
    did = dep.deployment_id
    step = effect.resolves
    assert step is not None
    match outcome:
        case Failed():
            return _resolve_failed(state, dep, effect, outcome, ctx)
        case Ok(result=result):
            asked = Requested.model_validate(dep.dangling.request if dep.dangling else {})
            adopted = _adopted(did, step, asked, result)
        case _:
            raise TypeError(f"a call ends in Ok or Failed, not {outcome!r}")
    if adopted is not None:
        return [StepSucceeded(deployment_id=did, step=StepName(step), result=adopted.to_json())]
    return [
        StepFailed(
            deployment_id=did,
            step=StepName(step),
            error_code="NotApplied",
            message=f"{step} did not happen before the restart; repeating it",
            retryable=True,
            kind="not_applied",
        )
    ]


def _adopted(did: str, step: Step, asked: Requested, read: CallResult) -> StepResult | None:
    """What the dangling step reported, as AWS shows it now; None if it did not happen."""
    match read:
        case FunctionRead() if step == "delete_function":
            return None if read.found else AlreadyAbsent()
        case FunctionRead():  # create_function
            return read if read.found else None
        case VersionsRead() if step == "publish":
            return _published(did, asked, read)
        case VersionsRead():  # a delete of one version
            present = {v.version for v in read.versions}
            return None if asked.version in present else AlreadyAbsent()
        case AliasRead():  # an alias write: adopted when the alias already is what it asked
            same = read.function_version == asked.version and read.routing == (asked.routing or {})
            return read if read.found and same else None
    return None


def _published(did: str, asked: Requested, read: VersionsRead) -> Published | None:
    """The version a dangling publish made: above the highest version known before it, with
    the code it expected (the last, if several). An intent of an earlier glam, which published
    with its marker as Description, is settled by that marker."""
    if asked.known_version is None:
        marker = asked.description or version_marker(did)
        return next((v for v in reversed(read.versions) if v.description == marker), None)
    above = [
        v
        for v in read.versions
        if v.version.isdigit() and int(v.version) > asked.known_version
        if not asked.code_sha256 or v.code_sha256 == asked.code_sha256
    ]
    return above[-1] if above else None


def _resolve_failed(
    state: SagaState, dep: Deployment, effect: Call, failed: Failed, ctx: SagaContext
) -> list[Event]:
    """A read settling the dangling intent failed. A new error is recorded (StepFailed) and
    the same one again only as the pause before the next read (a RESOLVE_WAIT timer, which
    also counts the reads); after ``policy.resolve_attempts`` failed reads, or
    ``resolve_refused_attempts`` when AWS refuses the read outright, the deployment finishes
    failed. Never a guess at the outcome, never the mutation repeated."""
    did = dep.deployment_id
    policy = state.policy
    reads = dep.unresolved + 1  # failed reads of this intent, this one included
    events: list[Event] = []
    if failed.code != dep.unresolved_code:
        events.append(
            StepFailed(
                deployment_id=did,
                step=effect.step,
                error_code=failed.code,
                message=failed.message,
                retryable=failed.retryable,
                kind=failed.kind,
            )
        )
    limit = policy.resolve_attempts if failed.retryable else policy.resolve_refused_attempts
    if reads >= limit:
        stable = state.stable_version if dep.request.action == "delete" else dep.stable
        reason = _unresolved_reason(state, dep, effect, failed, reads)
        if _moves_alias(effect.resolves) and dep.rollback is None and dep.alias_touched:
            # The alias may be shifted. Setting it to the stable version with no routing is
            # right whatever the lost write did, so the rollback needs no outcome: finishing
            # "failed" here would leave live traffic on the new version. (A first deployment
            # has no stable version and never touches the alias: it finishes failed below.)
            return [*events, RollbackStarted(deployment_id=did, reason=reason)]
        finished = DeploymentFinished(
            deployment_id=did, outcome="failed", reason=reason, stable_version=stable
        )
        return [*events, finished]
    if events:
        return events  # evolve turns it into the pause before the next read
    until = ctx.now + timedelta(seconds=policy.retry.backoff(reads))
    return [TimerStarted(deployment_id=did, purpose=RESOLVE_WAIT, until=until)]


def _moves_alias(step: Step | None) -> bool:
    """Whether ``step`` writes the alias (one whose outcome stays unknown is undone by a
    rollback)."""
    performs = PERFORMS.get(step) if step is not None else None
    return performs is not None and performs.resolver is GetAlias


def _unresolved_reason(
    state: SagaState, dep: Deployment, effect: Call, failed: Failed, reads: int
) -> str:
    """Why a deployment gave up on a step whose outcome is unknown, and what to check."""
    step = effect.resolves
    name = state.function_name
    asked = Requested.model_validate(dep.dangling.request if dep.dangling else {})
    match effect.operation:
        case GetFunction():
            check = f"whether function {name} exists"
        case ListVersions() if step == "publish" and asked.known_version is None:
            # An intent of an earlier glam: it published with its marker as Description.
            marker = asked.description or version_marker(dep.deployment_id)
            check = (
                f"whether function {name} has a version described '{marker}' "
                "(this deployment published it)"
            )
        case ListVersions() if step == "publish":
            check = (
                f"whether function {name} has a version above {asked.known_version} with "
                f"CodeSha256 {asked.code_sha256} (this deployment published it)"
            )
        case ListVersions():
            check = f"whether version {asked.version} of function {name} still exists"
        case GetAlias(alias=alias):
            shares = sorted((asked.routing or {}).items())
            weights = ", ".join(f"{w:.0%} to version {v}" for v, w in shares)
            target = f"version {asked.version}" + (f" routing {weights}" if weights else "")
            check = f"what alias {alias} of function {name} points at"
            check += f" (the step set it to {target})"
            if dep.stable is not None and step != "create_alias":
                check += f"; glam still counts version {dep.stable} as the stable one"
        case _:
            check = f"what {step} did to function {name}"
    refused = "" if failed.retryable else " (refused: not retried further)"
    return (
        f"the outcome of {step} is unknown: {reads} read(s) with {effect.method} to settle it "
        f"failed, the last with {failed.code}{refused}: {failed.message}; glam neither guesses "
        f"it nor repeats the step. Check {check}, and that glam's credentials may call "
        f"{effect.method}; then run glam retry for {name}"
    )
