"""The one discriminated union of every event glam records, and its codec.

Stored form: a stable ``type`` name (never a Python path), ``schema_version`` and the event's
fields as JSON (without ``type``). Decoding upcasts an older ``schema_version`` step by step to
the current one, then validates; an unknown type or a version newer than this glam fails loudly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, cast, get_args

from pydantic import Field, TypeAdapter, ValidationError

from engine.errors import EventDecodeError
from engine.events.base import EventBase, Metadata
from engine.events.function import (
    AlarmObserved,
    BakeExtended,
    DeploymentFinished,
    DeploymentHeld,
    DeploymentRequested,
    DeploymentResumed,
    DriftDetected,
    DriftResolved,
    EventSourceChanged,
    FunctionDeleted,
    HookAnswered,
    OperatorRequested,
    ReleaseMemberFailed,
    ReleaseStepReached,
    RollbackStarted,
    SettingsRecorded,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerStarted,
    TrafficGateChecked,
    TrafficShifted,
)
from engine.events.operator import OperatorCommandIssued
from engine.events.registry import RepositoryAdded, RepositoryRemoved
from engine.events.repo import (
    CommitObserved,
    CommitPlanned,
    DefinitionRejected,
    DeletesHeld,
    HistoryRewritten,
    SourceUnavailable,
)

Event = Annotated[
    CommitObserved
    | HistoryRewritten
    | SourceUnavailable
    | CommitPlanned
    | DefinitionRejected
    | DeletesHeld
    | DeploymentRequested
    | SettingsRecorded
    | StepStarted
    | StepSucceeded
    | StepFailed
    | TimerStarted
    | TrafficShifted
    | AlarmObserved
    | RollbackStarted
    | EventSourceChanged
    | DeploymentFinished
    | FunctionDeleted
    | DriftDetected
    | DriftResolved
    | OperatorRequested
    | OperatorCommandIssued
    | RepositoryAdded
    | RepositoryRemoved
    | HookAnswered
    | DeploymentHeld
    | DeploymentResumed
    | BakeExtended
    | TrafficGateChecked
    | ReleaseStepReached
    | ReleaseMemberFailed,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

# Stored type name -> class, read off the union so that the two can never disagree.
EVENT_CLASSES: dict[str, type[EventBase]] = {
    cls.model_fields["type"].default: cls for cls in get_args(get_args(Event)[0])
}

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (type, from_version) -> function turning that raw dict into the from_version + 1 shape.
# Add one whenever an event's SCHEMA_VERSION grows; never edit or remove one.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended, with its metadata."""

    event: Event
    meta: Metadata


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as the log holds it: its global ``position``, its ``version`` in its stream,
    the time it was recorded and the hash chaining it to the previous event."""

    position: int
    stream: str
    version: int
    event: Event
    meta: Metadata
    recorded_at: datetime
    hash: str

    @property
    def type(self) -> str:
        return self.event.type


def stamped(
    events: Sequence[Event],
    event_ids: Iterable[str],
    *,
    commit: str | None = None,
    actor: str = "engine",
    causation_id: str | None = None,
) -> list[NewEvent]:
    """``events`` ready to append: one id each from ``event_ids`` (the caller decides how ids
    are made, e.g. derived from a command so a repeated append is a no-op), the deployment id
    taken from the event itself, the rest shared."""
    return [
        NewEvent(
            event=event,
            meta=Metadata(
                event_id=event_id,
                actor=actor,
                commit=commit,
                deployment_id=getattr(event, "deployment_id", None),
                causation_id=causation_id,
            ),
        )
        for event, event_id in zip(events, event_ids, strict=False)
    ]


def encode(event: Event) -> tuple[str, int, str]:
    """``(type, schema_version, data_json)`` with keys sorted, so the bytes are canonical."""
    data = event.model_dump(mode="json", exclude={"type"})
    return (
        event.type,
        type(event).SCHEMA_VERSION,
        json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
    )


def check_readable(type_name: str, schema_version: int) -> type[EventBase]:
    """The class of a stored ``(type, schema_version)``, or ``EventDecodeError`` when this glam
    cannot read it (unknown type, or a version newer than it knows). Readers that skip some
    rows without decoding them check the skipped ones with this, so nothing unreadable is
    ever passed over in silence."""
    cls = EVENT_CLASSES.get(type_name)
    if cls is None:
        raise EventDecodeError(
            f"unknown event type {type_name!r}",
            hint="this log was written by a different glam; upgrade glam to read it",
        )
    if schema_version > cls.SCHEMA_VERSION:
        raise EventDecodeError(
            f"event {type_name} has schema version {schema_version}, "
            f"this glam knows up to {cls.SCHEMA_VERSION}",
            hint="upgrade glam to read this log",
        )
    return cls


def decode(type_name: str, schema_version: int, data: str | dict[str, Any]) -> Event:
    """Parse a stored event, upcasting older schema versions first. Never skips: an unknown
    type or a future version raises ``EventDecodeError`` naming it."""
    cls = check_readable(type_name, schema_version)
    current = cls.SCHEMA_VERSION
    try:
        if schema_version == current and isinstance(data, str):
            # The common case, and the hot path of every fold: nothing to upcast, so the
            # stored text goes straight to the type's own validator (parsing and validating
            # in one pass in pydantic-core). The stored data has no ``type`` key; the model's
            # ``type`` default is the discriminator the union would have matched, and a
            # ``type`` smuggled into the data still fails its Literal.
            return cast(Event, cls.model_validate_json(data))
        raw: dict[str, Any] = json.loads(data) if isinstance(data, str) else dict(data)
        for version in range(schema_version, current):
            upcast = UPCASTERS.get((type_name, version))
            if upcast is None:
                raise EventDecodeError(f"no upcaster for {type_name} v{version} -> v{version + 1}")
            raw = upcast(raw)
        raw["type"] = type_name
        return EVENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise EventDecodeError(
            f"event {type_name} v{schema_version} does not validate: {exc}"
        ) from exc
