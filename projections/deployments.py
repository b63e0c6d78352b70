"""The deployments view: one row per deployment id, with its timeline of steps."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, assert_never

from pydantic import BaseModel, ConfigDict, Field

from engine.events import RecordedEvent
from engine.events.base import FunctionEvent, RepoEvent
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
    Release,
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
from projections.base import Row, built, with_changes

NAME = "deployments"


class TimelineEntry(BaseModel):
    """One line of a deployment's timeline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    position: int
    at: datetime
    kind: str  # requested, started, succeeded, failed, waiting, shifted, alarm, rollback, ...
    name: str
    detail: str = ""


class DeploymentRow(Row):
    """One deployment: its state, outcome and timeline."""

    deployment_id: str
    function: str  # the function stream
    commit: str | None = None
    action: str | None = None
    state: Literal["running", "rolling_back", "finished"] = "running"
    requested_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: str | None = None
    reason: str = ""
    stable_version: str | None = None
    new_version: str | None = None
    weight: float = 0.0
    alarms: dict[str, str] = {}  # noqa: RUF012 - pydantic copies defaults; the row is frozen
    steps: tuple[TimelineEntry, ...] = ()
    # The release this deployment is a member of; left out of the row's JSON when it moves
    # alone, so the views of logs without releases read as they always did.
    release: Release | None = Field(None, exclude_if=lambda value: value is None)


def key(record: RecordedEvent) -> str | None:
    """The row an event changes, or None."""
    event = record.event
    match event:  # the commonest first: a class pattern that misses costs an ABC check
        case SettingsRecorded() | DriftDetected() | DriftResolved():
            return None  # not part of a deployment
        case FunctionEvent():
            return event.deployment_id
        case OperatorCommandIssued() | RepoEvent():
            return None
        case OperatorRequested():
            # An abort or promote belongs to the deployment it was handed to.
            return event.deployment_id
        case _:
            assert_never(event)


def apply(row: DeploymentRow | None, record: RecordedEvent) -> DeploymentRow:
    """The row after ``record`` (pure)."""
    if row is None:
        deployment_id = key(record)
        assert deployment_id is not None, "apply is only called for events that have a key"
        row = DeploymentRow(
            deployment_id=deployment_id,
            function=record.stream,
            position=record.position,
            updated_at=record.recorded_at,
        )
    changes, (kind, name, detail) = _changes(row, record)
    position, at = record.position, record.recorded_at
    entry = built(
        TimelineEntry,
        {"position": position, "at": at, "kind": kind, "name": name, "detail": detail},
    )
    changes["steps"] = (*row.steps, entry)
    changes["position"] = position
    changes["updated_at"] = at
    return with_changes(row, changes)


_Line = tuple[str, str, str]


def _changes(row: DeploymentRow, record: RecordedEvent) -> tuple[dict[str, object], _Line]:
    event = record.event
    match event:  # the commonest first: a class pattern that misses costs an ABC check
        case StepStarted():
            detail = f"attempt {event.attempt}" if event.attempt > 1 else ""
            return {}, ("started", str(event.step), detail)
        case StepSucceeded():
            return {}, ("succeeded", str(event.step), "")
        case StepFailed():
            return {}, ("failed", str(event.step), f"{event.error_code}: {event.message}")
        case TimerStarted():
            return {}, ("waiting", event.purpose, f"until {event.until.isoformat()}")
        case TrafficShifted():
            return (
                {
                    "stable_version": event.stable_version,
                    "new_version": event.new_version,
                    "weight": event.weight,
                },
                (
                    "shifted",
                    event.alias,
                    f"{event.weight:.0%} to {event.new_version}, rest to {event.stable_version}",
                ),
            )
        case AlarmObserved():
            return {"alarms": {**row.alarms, event.alarm: event.state}}, (
                "alarm",
                event.alarm,
                event.state,
            )
        case DeploymentRequested():
            detail = f"commit {event.commit}" + (f"; {event.reason}" if event.reason else "")
            if event.release is not None:
                detail += f"; release {event.release.name}"
            requested: dict[str, object] = {
                "function": record.stream,
                "commit": event.commit,
                "action": event.action,
                "requested_at": record.recorded_at,
            }
            if event.release is not None:
                requested["release"] = event.release
            return requested, ("requested", event.action, detail)
        case RollbackStarted():
            return {"state": "rolling_back", "reason": event.reason}, (
                "rollback",
                "",
                event.reason,
            )
        case EventSourceChanged():
            return {}, ("source", event.kind, f"{event.change} {event.source_id}")
        case DeploymentFinished():
            changes: dict[str, object] = {
                "state": "finished",
                "outcome": event.outcome,
                "finished_at": record.recorded_at,
                "reason": event.reason or row.reason,
            }
            if event.stable_version is not None:
                changes["stable_version"] = event.stable_version
            return changes, ("finished", event.outcome, event.reason)
        case FunctionDeleted():
            return {}, ("deleted", "", "")
        case OperatorRequested():
            return {}, ("operator", event.command, f"{event.actor}: {event.reason}")
        case HookAnswered():
            what = f"{event.status} in {event.duration_ms} ms"
            return {}, ("hook", f"{event.hook} {event.function}", what)
        case TrafficGateChecked():
            what = f"{event.invocations} of {event.required} invocations of v{event.version}"
            if event.action is not None:
                what += f"; {event.action}"
            return {}, ("gate", event.verdict, what)
        case ReleaseStepReached():
            at = f"step {event.index + 1}" if event.stage == "shift" else event.stage
            return {}, ("release", "waiting", f"at {at} for the other members")
        case ReleaseMemberFailed():
            return {}, ("release", "failed", event.reason)
        case DeploymentHeld():
            left = "" if event.bake_left is None else f"; {event.bake_left:g} s of bake left"
            return {}, ("held", event.actor, event.reason + left)
        case DeploymentResumed():
            return {}, ("resumed", event.actor, event.reason)
        case BakeExtended():
            return {}, ("extended", event.actor, f"by {event.seconds} s: {event.reason}")
        case (
            SettingsRecorded()
            | DriftDetected()
            | DriftResolved()
            | OperatorCommandIssued()
            | RepoEvent()
        ):
            return {}, ("other", event.type, "")
        case _:
            assert_never(event)
