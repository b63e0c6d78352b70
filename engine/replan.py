"""What an operator's retry and allow-deletes read from a repository's plans.

Pure, as the planner is: ``head_action`` (what the latest plan wants of a function),
``retry_refusal`` and ``plan_retry`` (an operator's retry of a rolled-back desired state) and
``held_deletes`` (the commits whose deletes wait for ``glam allow-deletes``). Shared by the
engine's operator hand-over and the CLI, so both decide alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from engine.deployed import DeployedState
from engine.events.catalog import Event
from engine.events.function import DeploymentRequested, OperatorRequested
from engine.events.repo import CommitPlanned, DeletesHeld, PlannedAction

if TYPE_CHECKING:
    from engine.planner import PlanContext


def head_action(events: Iterable[Event], stream: str) -> PlannedAction | None:
    """The last action the planner recorded for function ``stream`` (from the repository
    stream's events in order): what the latest planned commit wants of it. A plan records only
    the prefixes it changes, so the last one naming the stream is the one that counts."""
    last: PlannedAction | None = None
    for event in events:
        if isinstance(event, CommitPlanned):
            for action in event.actions:
                if action.function == stream:
                    last = action
    return last


def retry_refusal(current: DeployedState, head: PlannedAction | None = None) -> str | None:
    """Why an operator's retry cannot be acted on for this function, or None when it can.
    ``head`` is ``head_action`` of the repository stream: a retry never brings back a desired
    state the branch has since deleted or replaced (the normal plan handles a replacement)."""
    if current.in_flight is not None:
        return f"{current.stream} has a deployment in progress; abort it first"
    if current.rolled_back is None or current.rolled_back_hash is None:
        return f"{current.stream} has no rolled-back desired state to retry"
    if head is not None and head.action == "delete":
        return f"the branch deleted the definition of {current.stream}; nothing to retry"
    if head is not None and head.content_hash not in (None, current.rolled_back_hash):
        return (
            f"the branch wants another desired state of {current.stream} than the rolled-back "
            "one; the engine deploys it without a retry"
        )
    return None


def plan_retry(
    current: DeployedState, ctx: PlanContext, head: PlannedAction | None = None
) -> DeploymentRequested | None:
    """An operator's retry: request the rolled-back desired state again (same commit, a new
    deployment id), or None when ``retry_refusal`` says it cannot be retried."""
    if retry_refusal(current, head) is not None:
        return None
    rejected = current.rolled_back
    assert rejected is not None  # retry_refusal checked it
    assert rejected.desired is not None  # only requests with a desired state roll back
    return DeploymentRequested(
        deployment_id=ctx.new_id(),
        commit=rejected.commit,
        action="update" if current.exists else "create",
        desired=rejected.desired,
        owner=rejected.owner,
    )


def held_deletes(events: Iterable[Event]) -> dict[str, DeletesHeld]:
    """The commits whose deletes are held and not yet allowed, from the repository stream's
    events in order: a ``DeletesHeld`` holds its commit, a later ``CommitPlanned`` of another
    commit makes it stale (that plan decides anew), an ``allow_deletes`` handed to the stream
    releases it."""
    held: dict[str, DeletesHeld] = {}
    for event in events:
        match event:
            case DeletesHeld(sha=sha):
                held = {sha: event}
            case CommitPlanned(sha=sha) if sha not in held:
                held = {}
            case OperatorRequested(command="allow_deletes", target=sha, outcome="applied"):
                held.pop(sha, None)
            case _:
                pass
    return held
