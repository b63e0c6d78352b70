"""What a failure that will not clear leads to, wherever the deployment stands.

An update with a stable version rolls back (``RollbackStarted``); a first deployment has
nothing to roll back to and finishes "failed", leaving the function as it is; a failure during
the rollback itself finishes "failed" with advice on the alias; a function glam cannot reach
at all ends what waits for it (``unreachable``). Pure, like engine.saga.saga.
"""

from __future__ import annotations

from engine.events import Event
from engine.events.function import DeploymentFinished, RollbackStarted
from engine.saga.state import Deployment, SagaState


def fail(dep: Deployment, reason: str) -> list[Event]:
    """Events for a failure that will not clear, at the deployment's current point."""
    did = dep.deployment_id
    if dep.rollback is not None:
        return [
            DeploymentFinished(
                deployment_id=did,
                outcome="failed",
                reason=f"{dep.reason}; rollback failed: {reason}; {_alias_advice(dep)}",
                stable_version=dep.stable,
            )
        ]
    if dep.path == "update" and dep.stable is not None:
        return [RollbackStarted(deployment_id=did, reason=reason)]
    if dep.path in ("create", "update"):
        reason += "; first deployment: no stable version to roll back to, function left as is"
    return [
        DeploymentFinished(
            deployment_id=did, outcome="failed", reason=reason, stable_version=dep.stable
        )
    ]


def _alias_advice(dep: Deployment) -> str:
    """What the alias may look like after a failed rollback, and what the operator must do."""
    alias = dep.desired.settings.alias if dep.desired else "the alias"
    if dep.phase == "rollback_alias" or dep.new_version in (dep.alias_version, *dep.routing):
        shifted = ", ".join(f"{w:.0%} to version {v}" for v, w in sorted(dep.routing.items()))
        seen = f"version {dep.alias_version}" + (f" routing {shifted}" if shifted else "")
        return (
            f"alias {alias} may still send traffic to version {dep.new_version} (last seen: "
            f"{seen}); set it to version {dep.stable} with no additional version weights, "
            f"then delete version {dep.new_version}"
        )
    return (
        f"alias {alias} is on version {dep.stable}; version {dep.new_version} may be left "
        "over and can be deleted"
    )


def unreachable(state: SagaState, reason: str) -> list[Event]:
    """What to record when this function's AWS clients cannot be made (an account the
    credentials are not for, no credentials for it): every request waiting ends with the
    reason instead of staying in flight for ever. A deployment that has changed AWS already
    stays in flight (only a read of AWS can say where its alias is), unless an operator asked
    to abort it: then it ends "failed", saying what to check by hand."""
    events: list[Event] = [
        DeploymentFinished(
            deployment_id=dropped,
            outcome="superseded",
            reason="superseded by a newer request before it started",
            stable_version=state.stable_version,
        )
        for dropped in state.dropped
    ]
    why = f"glam cannot act on this function: {reason}"
    dep = state.active
    if dep is not None:
        started = dep.path is not None or dep.dangling is not None or dep.alias_touched
        aborted = dep.operator is not None and dep.operator.command == "abort"
        if started and not aborted:
            return events
        text = why
        if aborted and dep.operator is not None:
            text = f"aborted by {dep.operator.actor}: {dep.operator.reason}; {why}"
            if started:
                text += f"; {_alias_advice(dep)}"
        events.append(
            DeploymentFinished(
                deployment_id=dep.deployment_id,
                outcome="failed",
                reason=text,
                stable_version=state.stable_version,
            )
        )
    if state.held is not None:
        events.append(
            DeploymentFinished(
                deployment_id=state.held.deployment_id,
                outcome="failed",
                reason=why,
                stable_version=state.stable_version,
            )
        )
    return events
