"""One function stream as the drift sweep sees it, and the events a sweep's findings make.
Pure.

``watched(events)`` folds a function stream into a :class:`Watched`: the saga's state (what
is deployed, on which version, whether a deployment is in flight), the drift the log holds
open (path -> the DriftDetected that recorded it) and the request the deployed state came
from. ``expected(watched)`` says what AWS should serve, or None when there is nothing to
compare (nothing deployed, a deployment in flight, the function deleted).

``sweep_events(watched, found, now, new_id)`` turns what a read found into events:

* a ``DriftDetected`` per difference not recorded yet, or recorded with other values (a
  difference already recorded is not recorded again each sweep);
* a ``DriftResolved`` per recorded difference no longer found;
* under ``driftPolicy: heal``, when a difference was newly recorded, a ``DeploymentRequested``
  of the deployed desired state with ``reason`` ``drift: <paths>``: the normal, alarm-watched
  deployment makes AWS match again. A heal that rolled back is not asked again until the
  differences change (a new DriftDetected).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from engine.definitions.normalize import code_key
from engine.drift.compare import Difference, Expected, expected_code, summary
from engine.events import Event
from engine.events.function import (
    DeploymentRequested,
    DriftDetected,
    DriftResolved,
    FunctionDeleted,
)
from engine.saga import evolve, initial_state
from engine.saga.state import SagaState

HEAL_REASON = "drift: "


@dataclass(frozen=True)
class Watched:
    """A function stream folded for the sweep (module docstring)."""

    state: SagaState
    open: Mapping[str, DriftDetected] = field(default_factory=dict)
    request: DeploymentRequested | None = None  # the newest request for the deployed state

    @property
    def name(self) -> str:
        return self.state.function_name


def watched(function_name: str, events: Iterable[Event]) -> Watched:
    """Fold one function stream's events (module docstring)."""
    state = initial_state(function_name)
    open_: dict[str, DriftDetected] = {}
    requests: dict[str, DeploymentRequested] = {}
    for event in events:
        state = evolve(state, event)
        match event:
            case DriftDetected():
                open_[event.path] = event
            case DriftResolved():
                open_.pop(event.path, None)
            case DeploymentRequested(desired=desired) if desired is not None:
                requests[desired.content_hash] = event
            case FunctionDeleted():
                open_.clear()
            case _:
                pass
    deployed = state.deployed
    request = requests.get(deployed.content_hash) if deployed is not None else None
    return Watched(state=state, open=open_, request=request)


def expected(w: Watched) -> Expected | None:
    """What AWS should serve for ``w``'s function, or None when there is nothing to compare."""
    state = w.state
    if not state.idle or state.deployed is None or state.function_exists is False:
        return None
    definition = state.deployed.definition
    recorded = state.code_record(code_key(definition))
    return Expected(
        name=state.function_name,
        desired=state.deployed,
        version=state.stable_version,
        code_sha256=expected_code(definition, recorded),
    )


def sweep_events(
    w: Watched, found: Sequence[Difference], now: datetime, new_id: Callable[[], str]
) -> list[Event]:
    """The events one sweep's findings make (module docstring)."""
    name = w.name
    events: list[Event] = []
    paths = {d.path for d in found}
    for difference in found:
        known = w.open.get(difference.path)
        if known is not None and (known.desired, known.live) == (
            difference.desired,
            difference.live,
        ):
            continue
        events.append(
            DriftDetected(
                function=name,
                path=difference.path,
                desired=difference.desired,
                live=difference.live,
                detected_at=now,
            )
        )
    for path in sorted(set(w.open) - paths):
        events.append(
            DriftResolved(function=name, path=path, resolved_at=now, reason="AWS matches again")
        )
    deployed = w.state.deployed
    heals = deployed is not None and deployed.settings.drift_policy == "heal"
    if heals and any(isinstance(e, DriftDetected) for e in events):
        assert deployed is not None
        events.append(
            DeploymentRequested(
                deployment_id=new_id(),
                commit=w.request.commit if w.request is not None else "",
                action="update",
                desired=deployed,
                owner=w.request.owner if w.request is not None else None,
                reason=HEAL_REASON + summary(found),
            )
        )
    return events
