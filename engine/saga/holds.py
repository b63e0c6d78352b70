"""Holds: an operator pauses a deployment, lengthens its bake, or moves it one step. Pure.

    glam hold FN       at the next safe point (a bake) the bake timer stops, what is left of it
                       kept (``DeploymentHeld``); the alarms are still watched and still roll
                       back; a newer commit or ``glam abort`` still acts
    glam resume FN     the bake runs on for what was left of it (``DeploymentResumed``)
    glam extend FN     the bake in progress (or the next one) lasts ``seconds`` longer
                       (``BakeExtended``)
    glam promote --step  the bake in progress (or a traffic gate's wait) ends once the alarms
                       are read quiet: one step on (a held deployment stays held, in the next
                       step's bake)

Each acts once the command was handed over (``OperatorRequested``, engine.operator decides
whether it may) and the deployment is at a point where it may: the events below record it
acting, with the operator's name and reason. Where a bake's end leads is engine.saga.bake.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.events.function import (
    BakeExtended,
    DeploymentHeld,
    DeploymentResumed,
    OperatorRequested,
    TimerStarted,
)
from engine.saga.bake import step_bake
from engine.saga.effects import Effect, Record, Wait
from engine.saga.state import Deployment, SagaState
from engine.saga.steps import Phase

# How long one wait of a held deployment lasts before it is waited again: a hold has no end
# of its own, and the runner wakes at every alarm poll anyway (to see commands arrive).
HOLD_RECHECK_SECONDS = 300.0
# The wait that reads the alarms once before a one-step promote ends the bake.
OPERATOR_STEP = "operator_step"
# Where an operator's hold or extend may be handed over: the traffic part of a deployment,
# where it waits for its next bake. Where a one-step promote may: a bake before the promote.
HOLDABLE: frozenset[Phase] = frozenset(
    {"hook_before", "alarm_check", "shift", "bake", "gate", "promote"}
)


def hold_effect(
    state: SagaState, dep: Deployment, command: OperatorRequested, now: datetime
) -> Effect | None:
    """What a pending hold, resume, extend or one-step promote asks for now, or None when it
    waits for a point where it may act."""
    did = dep.deployment_id
    who = {"actor": command.actor, "reason": command.reason}
    bake_timer = dep.timer if dep.timer is not None and dep.timer.purpose == "bake" else None
    in_bake = dep.phase == "bake" and (dep.timer is None or bake_timer is not None)
    match command.command:
        case "hold" if in_bake and dep.paused is None:
            left = (bake_timer.until - now).total_seconds() if bake_timer else dep.bake_left
            held = DeploymentHeld(deployment_id=did, bake_left=_left(left), **who)
            return Record((held,))
        case "resume" if dep.paused is not None:
            return Record((DeploymentResumed(deployment_id=did, **who),))
        case "extend" if in_bake:
            seconds = command.seconds or 0
            if bake_timer is None:
                extended = BakeExtended(deployment_id=did, seconds=seconds, **who)
                return Record((extended,))
            until = bake_timer.until + timedelta(seconds=seconds)
            extended = BakeExtended(deployment_id=did, seconds=seconds, until=until, **who)
            timer = TimerStarted(deployment_id=did, purpose="bake", until=until)
            return Record((extended, timer))
        case "promote_step" if (in_bake or dep.phase == "gate") and not dep.promoted:
            # A wait that ends now: the runner reads the alarms once before it completes, and
            # an alarm in ALARM (or missing) rolls back instead of moving on.
            intent = TimerStarted(deployment_id=did, purpose=OPERATOR_STEP, until=now)
            return Wait(
                purpose=OPERATOR_STEP,
                until=now,
                alarms=watched(dep),
                poll_seconds=state.policy.alarm_poll_seconds,
                intent=intent,
            )
    return None


def held_wait(state: SagaState, dep: Deployment, now: datetime) -> Wait | None:
    """The wait of a held deployment (in a bake, not rolling back): no timer runs, the alarms
    are polled and roll back, and a command arriving ends it (the runner re-reads)."""
    if dep.paused is None or dep.rollback is not None or dep.phase != "bake":
        return None
    if dep.timer is not None and dep.timer.purpose == OPERATOR_STEP:
        return None  # a one-step promote is reading the alarms
    return Wait(
        purpose="hold",
        until=now + timedelta(seconds=HOLD_RECHECK_SECONDS),
        alarms=watched(dep),
        poll_seconds=state.policy.alarm_poll_seconds,
    )


def extended_left(dep: Deployment, seconds: int) -> float:
    """What is left of the bake after an extend of ``seconds`` that found no timer running:
    what a hold left (or the step's whole bake, not started yet), longer by ``seconds``."""
    left = dep.bake_left if dep.bake_left is not None else float(step_bake(dep))
    return left + seconds


def watched(dep: Deployment) -> tuple[str, ...]:
    """The alarms a wait of this deployment polls (engine.saga.saga: from the new version's
    publish until the end, never while rolling back)."""
    if dep.path != "update" or dep.new_version is None or dep.rollback is not None:
        return ()
    if dep.stable is None or dep.desired is None:
        return ()
    return dep.desired.settings.alarms


def _left(seconds: float | None) -> float | None:
    return None if seconds is None else max(0.0, round(seconds, 3))
