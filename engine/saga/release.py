"""Releases: the deployments of one commit that share a ``release`` name move as one. Pure.

Every member is its own saga on its own function stream; they meet at barriers, through the
log alone (so members may run on different engines sharing a store):

    shift i    before the weight moves to step i (after the hooks and the alarm read that come
               before the first step: no member's traffic moves before every member is ready)
    promote    before the alias moves to the new version
    finish     after the last bake (and the ``afterAllowTraffic`` hook), before the old version
               is deleted and the deployment finishes: no member finishes while another may
               still roll back

At each, a member records ``ReleaseStepReached`` and waits (a TimerStarted of purpose
``release``, giving up after RELEASE_WAIT_SECONDS) until every other member has reached the
same point or a later one, or has finished successfully without traffic to move (a function
created, or one whose deployed version already serves its definition). Every wait of a member
also watches the others: when one rolls back, or finishes other than "succeeded", or does not
reach a barrier in time, each other member records ``ReleaseMemberFailed`` and rolls back too.
The barriers are ordered (``shift 0`` < ``shift 1`` < ... < ``promote`` < ``finish``), so
members with schedules of different lengths still meet: one with fewer steps waits at its
promote for the others to reach theirs.

A member that was created, or had nothing to publish, is not rolled back with the others:
it has no earlier version to go back to. ``member_position`` reads a member's stream (the
runner hands it the events), ``verdict`` judges the members against a member's wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from engine.events import Event
from engine.events.function import (
    DeploymentFinished,
    ReleaseMember,
    ReleaseMemberFailed,
    ReleaseStage,
    ReleaseStepReached,
    RollbackStarted,
    TimerStarted,
)
from engine.saga.effects import Effect, Record, ReleaseFailure, ReleaseWatch, Wait
from engine.saga.holds import watched
from engine.saga.state import Deployment, SagaState

# How long a member waits at one barrier for the others before the release rolls back.
RELEASE_WAIT_SECONDS = 3600.0
# The order of the barriers' stages.
_RANK: dict[ReleaseStage, int] = {"shift": 0, "promote": 1, "finish": 2}

Barrier = tuple[ReleaseStage, int]


def order(barrier: Barrier) -> tuple[int, int]:
    """The barrier's place in a deployment: shifts by step, then the promote, then the end."""
    stage, index = barrier
    return (_RANK[stage], index)


def describe(barrier: Barrier) -> str:
    stage, index = barrier
    return f"step {index + 1}" if stage == "shift" else stage


def release_point(dep: Deployment) -> Barrier | None:
    """The barrier this deployment is at, if it is a release member about to move traffic
    (or to finish after moving it); None otherwise."""
    if dep.request.release is None or dep.rollback is not None or dep.dangling is not None:
        return None
    if dep.path != "update" or dep.stable is None or dep.new_version is None:
        return None
    if dep.phase == "shift":
        return ("shift", dep.shift_index)
    if dep.phase == "promote":
        return ("promote", 0)
    if dep.promoted and (
        dep.phase == "delete_old" or (dep.phase == "finish" and dep.outcome == "succeeded")
    ):
        return ("finish", 0)
    return None


def pending(dep: Deployment) -> Barrier | None:
    """The barrier this deployment must still pass before its phase may act, if any."""
    point = release_point(dep)
    if point is None:
        return None
    if dep.release_passed is not None and order(dep.release_passed) >= order(point):
        return None
    return point


def release_effect(state: SagaState, dep: Deployment, now: datetime) -> Effect | None:
    """At a barrier not passed yet: record reaching it, then wait there for the others."""
    point = pending(dep)
    if point is None or dep.timer is not None:
        return None
    release = dep.request.release
    assert release is not None  # release_point checked it
    if dep.release_at is None or order(dep.release_at) < order(point):
        stage, index = point
        reached = ReleaseStepReached(
            deployment_id=dep.deployment_id, release_id=release.id, stage=stage, index=index
        )
        return Record((reached,))
    until = now + timedelta(seconds=RELEASE_WAIT_SECONDS)
    intent = TimerStarted(deployment_id=dep.deployment_id, purpose="release", until=until)
    return Wait(
        purpose="release",
        until=until,
        alarms=_alarms(dep, point),
        poll_seconds=state.policy.alarm_poll_seconds,
        intent=intent,
    )


def with_release(dep: Deployment, effect: Effect) -> Effect:
    """A wait of a release member, made to watch the other members (and, at a barrier, to
    wait for them). A rollback's waits watch nothing: it is already on its way back."""
    release = dep.request.release
    if not isinstance(effect, Wait) or release is None or dep.rollback is not None:
        return effect
    barrier = None
    if effect.purpose == "release" and dep.release_at is not None:
        barrier = dep.release_at
        effect = replace(effect, alarms=_alarms(dep, barrier))
    return replace(effect, release=ReleaseWatch(release, dep.deployment_id, barrier))


def failed_with(dep: Deployment, failure: ReleaseFailure) -> ReleaseMemberFailed:
    release = dep.request.release
    assert release is not None
    return ReleaseMemberFailed(
        deployment_id=dep.deployment_id,
        release_id=release.id,
        member=failure.member,
        member_deployment=failure.member_deployment,
        reason=failure.reason,
    )


def failure_reason(dep: Deployment, failure: ReleaseFailure) -> str:
    name = dep.request.release.name if dep.request.release else "?"
    return f"release {name}: {failure.reason}"


def _alarms(dep: Deployment, barrier: Barrier) -> tuple[str, ...]:
    # At the end the last bake is over: a member that has seen every other member bake
    # through must not roll back after one of them has finished.
    return () if barrier[0] == "finish" else watched(dep)


# -- judging the other members (the runner reads their streams) ------------------------------


@dataclass(frozen=True, slots=True)
class MemberPosition:
    """Where one member stands, read from its stream: the last barrier it reached, its
    outcome once finished, and why it is failing (rolling back, or finished otherwise than
    succeeded); ``followed`` is set when it only rolls back because another member failed."""

    reached: Barrier | None = None
    outcome: str | None = None
    failing: str | None = None
    followed: bool = False


def member_position(
    events: Iterable[Event], deployment_id: str, known: MemberPosition | None = None
) -> MemberPosition:
    """The position of deployment ``deployment_id`` in the events of its function stream
    (``known``: its position before these events)."""
    position = known or MemberPosition()
    for event in events:
        if getattr(event, "deployment_id", None) != deployment_id:
            continue
        match event:
            case ReleaseStepReached():
                position = replace(position, reached=(event.stage, event.index))
            case ReleaseMemberFailed():
                position = replace(position, followed=True)
            case RollbackStarted():
                position = replace(position, failing=event.reason)
            case DeploymentFinished():
                failing = position.failing
                if event.outcome != "succeeded":
                    failing = event.reason or failing or event.outcome
                position = replace(position, outcome=event.outcome, failing=failing)
    return position


@dataclass(frozen=True, slots=True)
class Waiting:
    """Not every member is at the barrier yet: these are not."""

    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ready:
    pass


def verdict(
    watch: ReleaseWatch, positions: Mapping[ReleaseMember, MemberPosition]
) -> Ready | Waiting | ReleaseFailure:
    """What the other members' positions mean for a member's wait: one failing fails the
    release (the first whose failure is its own, else the first), then the barrier is
    reached when every other member is at it, past it, or finished successfully."""
    failing = [(m, p) for m, p in positions.items() if p.failing is not None]
    if failing:
        member, position = next(((m, p) for m, p in failing if not p.followed), failing[0])
        how = "rolled back" if position.outcome in (None, "rolled_back") else position.outcome
        return ReleaseFailure(
            member=member.stream,
            member_deployment=member.deployment_id,
            reason=f"{function_of(member.stream)} {how}: {position.failing}",
        )
    if watch.barrier is None:
        return Waiting(())
    target = order(watch.barrier)
    behind = tuple(
        member.stream
        for member, position in positions.items()
        if position.outcome != "succeeded"
        and (position.reached is None or order(position.reached) < target)
    )
    return Waiting(behind) if behind else Ready()


def timed_out(watch: ReleaseWatch, waiting: Waiting) -> ReleaseFailure:
    """The failure of a barrier nobody came to in time: the members still missing."""
    assert watch.barrier is not None
    names = ", ".join(function_of(s) for s in waiting.members)
    minutes = RELEASE_WAIT_SECONDS / 60
    return ReleaseFailure(
        member=waiting.members[0] if len(waiting.members) == 1 else "",
        member_deployment=None,
        reason=f"{names} did not reach {describe(watch.barrier)} within {minutes:g} min",
    )


def function_of(stream: str) -> str:
    """The function name of a stream ``fn:<account>:<region>:<name>``, for messages."""
    return stream.split(":", 3)[-1]
