"""The operator hand-over, decided: whether ``glam abort|promote|retry|allow-deletes``, and
``glam hold|resume|extend|promote --step``, can act on its target, and what the log records.

    decision = decide_hand_over(command, target, actor=..., new_id=...)

Pure: the caller reads the log and passes what it says about the target (``Target``). The CLI
decides when the command is given, to refuse it with one line; the engine decides again when
it hands the command over (``engine.runtime.operators``), and records it applied or ignored.
One function for both, so what the CLI accepts is what the engine records as applied and what
the saga then acts on:

- abort, promote: the deployment in flight, unless it is already rolling back (nothing is
  left to abort or promote) or past its last safe point (promoting, cleaning up or deleting:
  it finishes first, ``engine.saga.saga.SUPERSEDABLE``); a delete has nothing to promote.
  Once handed over, only to the deployment the CLI checked (``command.deployment_id``), so a
  late hand-over never reaches a newer deployment.
- hold, extend: the deployment in flight while it shifts traffic (engine.saga.holds.HOLDABLE);
  not a deployment already held. resume: a held one (or one whose hold is still to act).
  promote_step: a bake of a step before the promote. Each acts at the next bake.
- retry: the rolled-back desired state again, unless ``engine.replan.retry_refusal`` says
  why not (in flight, nothing rolled back, the branch deleted or replaced it); once handed
  over, only while the rolled-back deployment is still the one the CLI checked.
- allow_deletes: a commit whose deletes are held.

A ``HandOver`` records the command's copy (``OperatorRequested``), and for a retry the request
it makes, on the target's stream. A ``Refusal`` records the copy as ignored, with why, so the
command is handled exactly once; a target that is no function stream is recorded on ``ops``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from engine.deployed import DeployedState
from engine.events.function import DeploymentRequested, OperatorRequested
from engine.events.operator import OPS_STREAM, OperatorCommandIssued
from engine.events.repo import PlannedAction
from engine.replan import plan_retry, retry_refusal
from engine.saga.holds import HOLDABLE
from engine.saga.saga import SUPERSEDABLE
from engine.saga.state import Deployment, SagaState
from engine.streams import is_function_stream


@dataclass(frozen=True, slots=True)
class Target:
    """What the log says about a command's target, as far as its kind needs: the function's
    ``saga`` (abort, promote); what is ``deployed`` and the ``head`` action of the branch's
    last plan for it (retry); the branch's ``repo_stream`` and the commits whose deletes it
    holds (allow_deletes)."""

    saga: SagaState | None = None
    deployed: DeployedState | None = None
    head: PlannedAction | None = None
    repo_stream: str | None = None
    held: Collection[str] = ()


@dataclass(frozen=True, slots=True)
class HandOver:
    """The command acts: append ``events`` to ``stream`` (stamped with ``commit``).
    ``deployment_id`` is the deployment it acts on: in flight (abort, promote) or rolled back
    (retry); None for allow_deletes."""

    stream: str
    events: tuple[OperatorRequested | DeploymentRequested, ...]
    deployment_id: str | None = None
    commit: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """The command cannot act: ``reason`` (and ``hint``) say why. ``events`` is the copy
    recorded as ignored on ``stream``."""

    stream: str
    events: tuple[OperatorRequested, ...]
    reason: str
    hint: str

    @property
    def commit(self) -> None:
        return None


Decision = HandOver | Refusal


def decide_hand_over(
    command: OperatorCommandIssued,
    target: Target,
    *,
    actor: str,
    new_id: Callable[[], str],
) -> Decision:
    """What handing ``command`` (given by ``actor``) over to its target records, or why it
    cannot act. ``new_id`` makes the deployment id of the request a retry makes."""
    copy = OperatorRequested(
        command=command.command,
        target=command.target,
        actor=actor,
        reason=command.reason,
        seconds=command.seconds,
    )
    if command.command == "allow_deletes":
        return _allow_deletes(copy, target)
    if not is_function_stream(command.target):
        note = f"{command.target} is not a function stream"
        return _refuse(OPS_STREAM, copy, note, "pass a function name or fn:ACCOUNT:REGION:NAME")
    if command.command == "retry":
        return _retry(command, copy, target, new_id)
    return _in_flight(command, copy, target)


def _in_flight(command: OperatorCommandIssued, copy: OperatorRequested, target: Target) -> Decision:
    stream = command.target
    dep = target.saga.active if target.saga is not None else None
    if dep is None:
        note = f"nothing in flight for {stream} to {command.command}"
        return _refuse(stream, copy, note, "`glam status` shows its last deployment")
    did = dep.deployment_id
    wanted = command.deployment_id
    if wanted is not None and wanted != did:
        note = f"deployment {wanted} is no longer in flight ({did} is)"
        return _refuse(stream, copy, note, "`glam status` shows what it is doing")
    if dep.rollback is not None:
        note = f"deployment {did} of {stream} is already rolling back"
        return _refuse(stream, copy, note, "wait for it to finish")
    if dep.phase not in SUPERSEDABLE:
        note = f"deployment {did} of {stream} is past its last safe point ({dep.phase})"
        return _refuse(stream, copy, note, f"too late to {command.command}: it finishes first")
    if command.command == "promote" and dep.request.action == "delete":
        note = f"deployment {did} of {stream} deletes the function"
        return _refuse(stream, copy, note, "nothing to promote")
    refused = _bake_refusal(command, dep, stream)
    if refused is not None:
        return _refuse(stream, copy, *refused)
    acted = copy.model_copy(update={"deployment_id": did})
    return HandOver(stream, (acted,), deployment_id=did, commit=dep.request.commit)


def _bake_refusal(
    command: OperatorCommandIssued, dep: Deployment, stream: str
) -> tuple[str, str] | None:
    """Why a hold, resume, extend or one-step promote cannot act on ``dep`` (engine.saga.holds),
    as (reason, hint); None when it can."""
    did = dep.deployment_id
    hold_pending = dep.operator is not None and dep.operator.command == "hold"
    match command.command:
        case "hold" | "extend" if dep.phase not in HOLDABLE:
            note = f"deployment {did} of {stream} is not shifting traffic ({dep.phase})"
            return note, f"{command.command} acts on the bakes between traffic steps"
        case "hold" if dep.paused is not None or hold_pending:
            return f"deployment {did} of {stream} is already held", "`glam resume` lifts it"
        case "extend" if not command.seconds or command.seconds <= 0:
            return "extend needs a positive length", "pass --by, e.g. --by 10m"
        case "resume" if dep.paused is None and not hold_pending:
            return f"deployment {did} of {stream} is not held", "`glam hold` pauses it"
        case "promote_step" if dep.phase != "bake" or dep.promoted:
            note = f"deployment {did} of {stream} is not baking a traffic step ({dep.phase})"
            hint = "a one-step promote ends the bake of a step before the promote"
            return note, hint
    return None


def _retry(
    command: OperatorCommandIssued,
    copy: OperatorRequested,
    target: Target,
    new_id: Callable[[], str],
) -> Decision:
    stream = command.target
    current = target.deployed or DeployedState(stream=stream)
    hint = "`glam status` shows what it is doing"
    refusal = retry_refusal(current, target.head)
    if refusal is not None:
        return _refuse(stream, copy, refusal, hint)
    assert current.rolled_back is not None  # no refusal: a rolled-back request exists
    rolled_back = current.rolled_back.deployment_id
    wanted = command.deployment_id
    if wanted is not None and wanted != rolled_back:
        return _refuse(stream, copy, f"deployment {wanted} is no longer the rolled-back one", hint)
    # A retry's desired state names its own region and account: the defaults go unused.
    # (Imported here: the planner brings the definitions' templates and Lambda shapes, which
    # every other operator decision, and every `glam` command's start, does without.)
    from engine.planner import PlanContext

    ctx = PlanContext(new_id=new_id, default_region="", default_account="")
    request = plan_retry(current, ctx, target.head)
    assert request is not None  # retry_refusal said it can be retried
    return HandOver(stream, (copy, request), deployment_id=rolled_back, commit=request.commit)


def _allow_deletes(copy: OperatorRequested, target: Target) -> Decision:
    stream = target.repo_stream or OPS_STREAM
    sha = copy.target
    if target.repo_stream is None or sha not in target.held:
        note = f"no deletes are held for commit {sha}"
        hint = "`glam events --type DeletesHeld` lists held commits"
        return _refuse(stream, copy, note, hint)
    return HandOver(stream, (copy,), commit=sha)


def _refuse(stream: str, copy: OperatorRequested, reason: str, hint: str) -> Refusal:
    ignored = copy.model_copy(update={"outcome": "ignored", "note": reason})
    return Refusal(stream, (ignored,), reason=reason, hint=hint)
