"""The bake after a traffic step: how long it lasts and where its end leads. Pure.

Two functions decide the bake, so that what may lengthen or end it (an operator's hold or
extend; a traffic gate, engine.saga.gate) is decided in one place:

    bake_until(dep, now)      when a bake starting now ends: the step's ``waitInterval``, or
                              what a hold left of it, or what an extend made it
    after_bake(state, dep)    what the end of a bake leads to: the next shift, the promote, or
                              (after the promote) the old version's delete and the finish
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from engine.saga.moves import next_phase
from engine.saga.schedule import bake_seconds
from engine.saga.state import Deployment, SagaState
from engine.saga.steps import Phase


def step_bake(dep: Deployment) -> int:
    """The bake of the step the deployment is at, in full."""
    settings = dep.desired.settings if dep.desired else None
    return bake_seconds(settings, dep.shift_index, dep.promoted)


def bake_until(dep: Deployment, now: datetime) -> datetime:
    """When the bake that starts (or resumes) ``now`` ends."""
    seconds = dep.bake_left if dep.bake_left is not None else float(step_bake(dep))
    return now + timedelta(seconds=max(0.0, seconds))


def after_bake(state: SagaState, dep: Deployment) -> Deployment:
    """Where the end of a bake (its timer, or an operator's one-step promote) leads."""
    dep = replace(dep, bake_left=None, gate_since=None, gate_deadline=None)
    if dep.promoted:
        # Imported here: transitions uses this module.
        from engine.saga.transitions import after_last_bake

        return after_last_bake(state, dep)
    index = dep.shift_index + 1
    phase: Phase = "shift" if index < len(dep.schedule) else "promote"
    return replace(next_phase(dep, phase), shift_index=index)
