"""Entering a phase: the few moves every transition of a deployment is made of. Pure."""

from __future__ import annotations

from dataclasses import replace

from engine.events.function import DeployOutcome
from engine.saga.results import AliasRead
from engine.saga.state import Deployment
from engine.saga.steps import Phase, WaitPurpose


def next_phase(dep: Deployment, phase: Phase) -> Deployment:
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


def finish(dep: Deployment, outcome: DeployOutcome, reason: str = "") -> Deployment:
    return replace(next_phase(dep, "finish"), outcome=outcome, reason=reason or dep.reason)


def poll_again(dep: Deployment, purpose: WaitPurpose, seconds: float) -> Deployment:
    """Stay in this phase and read again after ``seconds``."""
    return replace(dep, polls=dep.polls + 1, due_wait=(purpose, seconds))


def go_on(dep: Deployment, otherwise: Phase = "publish") -> Deployment:
    """On to the next phase decided before the publish (``otherwise`` when none is left: a
    log written before these were decided goes on as it did)."""
    if not dep.todo:
        return next_phase(dep, otherwise)
    phase, *rest = dep.todo
    return replace(next_phase(dep, phase), todo=tuple(rest))


def alias_from(dep: Deployment, read: AliasRead) -> Deployment:
    """The alias as ``read`` shows it (unchanged when the read has no version)."""
    if read.function_version is None:
        return dep
    routing = tuple(sorted(read.routing.items()))
    return replace(dep, alias_version=read.function_version, alias_routing=routing)


def settings_alias(dep: Deployment) -> str:
    return dep.desired.settings.alias if dep.desired else ""
