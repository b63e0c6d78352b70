"""Settling a dangling intent by a read, and what that read's outcome means.

A log that ends in a mutation's ``StepStarted`` with no outcome is resolved by the read named
in ``RESOLVERS`` before anything is repeated; ``resolved`` turns the read's outcome into
events: the step adopted (``StepSucceeded``), found not applied (a retryable ``StepFailed``,
so it is repeated), or, when the read itself keeps failing, a bounded number of paused retries
and then a deployment that finishes "failed" naming what to check. Pure, like
engine.saga.saga.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from engine.events import Event
from engine.events.function import (
    DeploymentFinished,
    RollbackStarted,
    StepFailed,
    StepSucceeded,
    TimerStarted,
)
from engine.saga.effects import Call, Failed, Ok, Outcome, SagaContext
from engine.saga.state import RESOLVE_WAIT, Deployment, SagaState, version_marker

# Steps that write the alias: one whose outcome stays unknown is undone by a rollback.
ALIAS_STEPS = frozenset({"shift", "promote", "create_alias"})

# Mutations whose dangling intent is settled by a read, and the read.
RESOLVERS: dict[str, str] = {
    "create_function": "get_function",
    "delete_function": "get_function",
    "publish": "list_versions",
    "delete_old": "list_versions",
    "rollback_delete_new": "list_versions",
    "create_alias": "get_alias",
    "shift": "get_alias",
    "promote": "get_alias",
    "rollback_alias": "get_alias",
}


def resolved(
    state: SagaState, dep: Deployment, effect: Call, outcome: Outcome, ctx: SagaContext
) -> list[Event]:
    """The events that record ``outcome`` of the read ``effect`` that settles
    ``dep.dangling`` (``effect.resolves`` names the step)."""
    did = dep.deployment_id
    step = effect.resolves or ""
    if isinstance(outcome, Failed):
        return _resolve_failed(state, dep, effect, outcome, ctx)
    if not isinstance(outcome, Ok):
        raise TypeError(f"a call ends in Ok or Failed, not {outcome!r}")
    result = dict(outcome.result)
    request = dep.dangling.request if dep.dangling else {}
    adopted: dict[str, Any] | None = None
    if step == "create_function":
        adopted = result if result.get("found") else None
    elif step == "delete_function":
        adopted = None if result.get("found") else {"already_absent": True}
    elif step == "publish":
        marker = version_marker(did)
        for version in result.get("versions", []):
            if version.get("description") == marker:
                adopted = dict(version)
    elif step in ("delete_old", "rollback_delete_new"):
        present = {v.get("version") for v in result.get("versions", [])}
        adopted = None if request.get("version") in present else {"already_absent": True}
    else:  # alias steps: adopt when the alias already is what the intent asked for
        routing = {str(k): float(v) for k, v in (request.get("routing") or {}).items()}
        actual = {str(k): float(v) for k, v in (result.get("routing") or {}).items()}
        same = result.get("function_version") == request.get("version") and actual == routing
        adopted = result if result.get("found") and same else None
    if adopted is not None:
        return [StepSucceeded(deployment_id=did, step=step, result=adopted)]
    return [
        StepFailed(
            deployment_id=did,
            step=step,
            error_code="NotApplied",
            message=f"{step} did not happen before the restart; repeating it",
            retryable=True,
            kind="not_applied",
        )
    ]


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
        if effect.resolves in ALIAS_STEPS and dep.rollback is None and dep.alias_touched:
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


def _unresolved_reason(
    state: SagaState, dep: Deployment, effect: Call, failed: Failed, reads: int
) -> str:
    """Why a deployment gave up on a step whose outcome is unknown, and what to check."""
    step = effect.resolves or ""
    name = state.function_name
    request = dep.dangling.request if dep.dangling else {}
    if step in ("create_function", "delete_function"):
        check = f"whether function {name} exists"
    elif step == "publish":
        check = (
            f"whether function {name} has a version described "
            f"'{version_marker(dep.deployment_id)}' (this deployment published it)"
        )
    elif step in ("delete_old", "rollback_delete_new"):
        check = f"whether version {request.get('version')} of function {name} still exists"
    else:
        routing = request.get("routing") or {}
        weights = ", ".join(f"{float(w):.0%} to version {v}" for v, w in sorted(routing.items()))
        asked = f"version {request.get('version')}" + (f" routing {weights}" if weights else "")
        check = f"what alias {effect.args.get('alias')} of function {name} points at"
        check += f" (the step set it to {asked})"
        if dep.stable is not None and step != "create_alias":
            check += f"; glam still counts version {dep.stable} as the stable one"
    refused = "" if failed.retryable else " (refused: not retried further)"
    return (
        f"the outcome of {step} is unknown: {reads} read(s) with {effect.method} to settle it "
        f"failed, the last with {failed.code}{refused}: {failed.message}; glam neither guesses "
        f"it nor repeats the step. Check {check}, and that glam's credentials may call "
        f"{effect.method}; then run glam retry for {name}"
    )
