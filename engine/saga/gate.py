"""Traffic gates (``trafficGate``): a step's bake ends only once the new version has served
enough invocations. Pure.

"No alarm fired" says nothing when no traffic reached the new version; a gate makes the
difference explicit:

    the bake's timer ends ─ no gate ─→ the next step (engine.saga.bake.after_bake)
                          └ a gate ─→ gate: count the invocations the new version served
                                      through the alias since the bake began
        ≥ minInvocations                        passed: the next step
        fewer, before the deadline              waiting: read again after checkInterval
          (the first read + maxWait)
        fewer at the deadline                   timed_out: onTimeout says rollback (as a
                                                firing alarm does) or promote (the next step)

Each read is a ``gate`` step (CloudWatch ``Invocations``, dimension ``ExecutedVersion``) and a
``TrafficGateChecked`` event, so the log shows what each step was judged on. The alarms stay
watched through the gate's waits. ``syntheticInvoke`` makes the runner send invocations to
the alias during the bake and the gate's waits (``probe``); the alias's routing decides which
version serves each, so they count only as much as real traffic would.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from engine.events import Event
from engine.events.desired import TrafficGate
from engine.events.function import TrafficGateChecked
from engine.saga.bake import after_bake, step_bake
from engine.saga.calls import read_call
from engine.saga.effects import Call, CountInvocations, Probe
from engine.saga.moves import next_phase, poll_again
from engine.saga.results import InvocationsCounted
from engine.saga.rollback import fail
from engine.saga.state import Deployment, SagaState

# The shortest pause between two reads of a gate waiting for traffic.
MIN_PAUSE_SECONDS = 1.0


def gate_of(dep: Deployment) -> TrafficGate | None:
    """The traffic gate of this deployment's steps: only an update shifting traffic from a
    stable version to a new one has a new version to count."""
    settings = dep.desired.settings if dep.desired else None
    if settings is None or settings.traffic_gate is None:
        return None
    if dep.path != "update" or dep.new_version is None or dep.stable is None:
        return None
    return settings.traffic_gate


def bake_done(state: SagaState, dep: Deployment) -> Deployment:
    """Where the end of a bake's timer leads: the gate's read when there is a gate, else the
    next step."""
    if gate_of(dep) is None or dep.rollback is not None:
        return after_bake(state, dep)
    # A new step's gate: its own window and deadline (an operator's promote skipped the
    # previous step's gate without ending it).
    return replace(next_phase(dep, "gate"), bake_left=None, gate_since=None, gate_deadline=None)


def gate_call(state: SagaState, dep: Deployment, now: datetime) -> Call:
    """The read of the invocations the new version served since the bake began (``now``
    less the step's bake, at the first read), up to ``now``."""
    assert dep.new_version is not None
    since = dep.gate_since or now - timedelta(seconds=step_bake(dep))
    count = CountInvocations(state.function_name, state.alias or "", dep.new_version, since, now)
    return read_call("gate", count)


def _deadline(gate: TrafficGate, dep: Deployment, counted: InvocationsCounted) -> datetime:
    return dep.gate_deadline or counted.until + timedelta(seconds=gate.max_wait)


def checked(dep: Deployment, counted: InvocationsCounted) -> list[Event]:
    """The events that record a gate's read: its verdict, and a rollback when it timed out
    and ``onTimeout`` says so."""
    gate = gate_of(dep)
    if gate is None:
        return []
    deadline = _deadline(gate, dep, counted)
    fields: dict[str, Any] = {
        "deployment_id": dep.deployment_id,
        "version": counted.version,
        "invocations": counted.invocations,
        "required": gate.min_invocations,
        "since": counted.since,
        "until": counted.until,
        "deadline": deadline,
    }
    if counted.invocations >= gate.min_invocations:
        return [TrafficGateChecked(verdict="passed", **fields)]
    if counted.until < deadline:
        return [TrafficGateChecked(verdict="waiting", **fields)]
    timed_out = TrafficGateChecked(verdict="timed_out", action=gate.on_timeout, **fields)
    if gate.on_timeout == "promote":
        return [timed_out]
    waited = int((counted.until - counted.since).total_seconds())
    why = (
        f"traffic gate: version {counted.version} served {counted.invocations} of the "
        f"{gate.min_invocations} invocations required in {waited} s"
    )
    return [timed_out, *fail(dep, why)]


def after_gate(state: SagaState, dep: Deployment, counted: InvocationsCounted) -> Deployment:
    """Where a gate's read leads (its events are ``checked``'s): on, again after a pause,
    or nowhere yet (a timed-out gate that rolls back: the RollbackStarted recorded with it
    moves the deployment)."""
    gate = gate_of(dep)
    if gate is None:
        return after_bake(state, dep)
    deadline = _deadline(gate, dep, counted)
    if counted.invocations >= gate.min_invocations:
        return after_bake(state, dep)
    if counted.until >= deadline:
        return after_bake(state, dep) if gate.on_timeout == "promote" else dep
    pause = min(float(gate.check_interval), (deadline - counted.until).total_seconds())
    waiting = replace(dep, gate_since=counted.since, gate_deadline=deadline)
    return poll_again(waiting, "gate", max(MIN_PAUSE_SECONDS, pause))


def probe_of(state: SagaState, dep: Deployment) -> Probe | None:
    """The synthetic invocations the runner sends during this wait: in a gated step's bake
    and the gate's pauses, when ``syntheticInvoke`` is set."""
    gate = gate_of(dep)
    if gate is None or gate.synthetic is None or dep.phase not in ("bake", "gate"):
        return None
    target = f"{dep.function_arn or state.function_name}:{state.alias or ''}"
    payload = json.loads(gate.synthetic.payload)
    return Probe(function=target, payload=payload, rate_per_second=gate.synthetic.rate_per_second)
