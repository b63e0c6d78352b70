"""The functions view: one row per function stream ``fn:<account>:<region>:<name>``.

What is deployed (alias, stable and new version, weight), what glam is doing about it (state),
and where it came from (last commit, last deployment and its outcome, event sources).
"""

from __future__ import annotations

from typing import Literal, assert_never

from pydantic import BaseModel, ConfigDict

from engine.events import RecordedEvent
from engine.events.base import FunctionEvent, RepoEvent
from engine.events.desired import SourceKind
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
from engine.streams import parse_function_stream
from projections.base import Row, with_changes

NAME = "functions"

FunctionState = Literal[
    "pending",  # settings recorded, never deployed
    "deploying",
    "shifting",
    "baking",
    "held",  # an operator's hold: the bake timer stopped, alarms watched
    "rolling_back",
    "stable",
    "rolled_back",  # back on the old version; the failed desired state is held
    "failed",
    "superseded",  # a newer deployment took over
    "deleting",
    "deleted",
]


class WiredSource(BaseModel):
    """An event source on the function's alias: its kind and id, as the event recorded them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: SourceKind
    source_id: str  # mapping UUID, target group ARN, or api/route


class FunctionRow(Row):
    """One function: what AWS serves, what glam is doing, where it came from."""

    stream: str
    account: str
    region: str
    name: str
    prefix: str | None = None
    alias: str | None = None
    stable_version: str | None = None
    new_version: str | None = None
    weight: float = 0.0  # share of the alias's traffic on new_version
    state: FunctionState = "pending"
    last_commit: str | None = None
    last_deployment_id: str | None = None
    last_outcome: str | None = None
    last_reason: str = ""
    last_error: str = ""
    event_sources: tuple[WiredSource, ...] = ()
    last_operator_command: str | None = None


def key(record: RecordedEvent) -> str | None:
    """The row an event changes, or None."""
    event = record.event
    match event:
        case DriftDetected() | DriftResolved():
            return None  # the drift recorded is read on its own (engine.drift.recorded)
        case FunctionEvent():
            return record.stream
        case OperatorCommandIssued():
            return event.target if event.target.startswith("fn:") else None
        case OperatorRequested():
            return None  # the row already shows the command (OperatorCommandIssued)
        case RepoEvent():
            return None
        case _:
            assert_never(event)


def new_row(stream: str, record: RecordedEvent) -> FunctionRow:
    try:
        account, region, name = parse_function_stream(stream)
    except ValueError:  # a stream glam did not name: shown with blanks, never fatal to a view
        account = region = name = ""
    return FunctionRow(
        stream=stream,
        account=account,
        region=region,
        name=name,
        position=record.position,
        updated_at=record.recorded_at,
    )


def apply(row: FunctionRow | None, record: RecordedEvent) -> FunctionRow:
    """The row after ``record`` (pure)."""
    if row is None:
        stream = key(record)
        assert stream is not None, "apply is only called for events that have a key"
        row = new_row(stream, record)
    changes = _changes(row, record)
    changes["position"] = record.position
    changes["updated_at"] = record.recorded_at
    return with_changes(row, changes)


def _changes(row: FunctionRow, record: RecordedEvent) -> dict[str, object]:
    event = record.event
    match event:  # the commonest first: a class pattern that misses costs an ABC check
        case StepStarted() | StepSucceeded() | AlarmObserved():
            return {}
        case DeploymentRequested():
            desired = event.desired
            changes: dict[str, object] = {
                "state": "deleting" if event.action == "delete" else "deploying",
                "last_commit": event.commit,
                "last_deployment_id": event.deployment_id,
                "last_outcome": None,
                "last_reason": "",
                "last_error": "",
                "new_version": None,
                "weight": 0.0,
            }
            if desired is not None:
                changes |= {"prefix": desired.prefix, "alias": desired.settings.alias}
            return changes
        case SettingsRecorded():
            return {"alias": event.settings.alias, "last_commit": event.commit}
        case StepFailed():
            return {"last_error": f"{event.step}: {event.error_code}: {event.message}"}
        case TimerStarted():
            if event.purpose == "bake" and row.state != "rolling_back":
                return {"state": "baking"}
            return {}
        case TrafficShifted():
            return {
                "alias": event.alias,
                "stable_version": event.stable_version,
                "new_version": event.new_version,
                "weight": event.weight,
                "state": "rolling_back" if row.state == "rolling_back" else "shifting",
            }
        case RollbackStarted():
            return {"state": "rolling_back", "last_reason": event.reason}
        case EventSourceChanged():
            sources = tuple(s for s in row.event_sources if s.source_id != event.source_id)
            if event.change != "detached":
                sources += (WiredSource(kind=event.kind, source_id=event.source_id),)
            return {"event_sources": sources}
        case DeploymentFinished():
            return _finished(row, event)
        case FunctionDeleted():
            return {
                "state": "deleted",
                "stable_version": None,
                "new_version": None,
                "weight": 0.0,
                "event_sources": (),
                "last_outcome": "succeeded",
            }
        case OperatorCommandIssued():
            return {
                "last_operator_command": f"{event.command} by {record.meta.actor}: {event.reason}"
            }
        case DeploymentHeld():
            return {"state": "held"} if row.state != "rolling_back" else {}
        case DeploymentResumed():
            return {"state": "baking"} if row.state == "held" else {}
        case HookAnswered() if event.status != "succeeded":
            return {"last_error": f"hook {event.hook} ({event.function}): {event.status}"}
        case TrafficGateChecked() if event.verdict == "timed_out":
            got = f"{event.invocations} of {event.required} invocations"
            return {"last_error": f"traffic gate timed out: {got}; {event.action}"}
        case ReleaseMemberFailed():
            return {"last_error": f"release member failed: {event.reason}"}
        case (
            OperatorRequested()
            | DriftDetected()
            | DriftResolved()
            | HookAnswered()
            | TrafficGateChecked()
            | ReleaseStepReached()
        ):
            return {}
        case BakeExtended():
            return {}
        case RepoEvent():
            return {}
        case _:
            assert_never(event)


def _finished(row: FunctionRow, event: DeploymentFinished) -> dict[str, object]:
    base: dict[str, object] = {"last_outcome": event.outcome, "last_reason": event.reason}
    match event.outcome:
        case "succeeded" if row.state in ("deleting", "deleted"):
            return base | {"state": "deleted"}
        case "succeeded":
            stable = event.stable_version or row.new_version or row.stable_version
            return base | {
                "state": "stable",
                "stable_version": stable,
                "new_version": None,
                "weight": 0.0,
                "last_error": "",
            }
        case "rolled_back":
            return base | {
                "state": "rolled_back",
                "stable_version": event.stable_version or row.stable_version,
                "new_version": None,
                "weight": 0.0,
            }
        case "failed":
            stable = event.stable_version or row.stable_version
            return base | {"state": "failed", "stable_version": stable}
        case "superseded":
            return base | {"state": "superseded"}
        case _:
            assert_never(event.outcome)
