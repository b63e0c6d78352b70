"""The commits view: one row per commit sha — observed, planned, rejected, held, deployed."""

from __future__ import annotations

from typing import assert_never

from pydantic import BaseModel, ConfigDict

from engine.events import RecordedEvent
from engine.events.base import FunctionEvent
from engine.events.function import DeploymentRequested, OperatorRequested
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
from projections.base import Row, with_changes

NAME = "commits"


class _Value(BaseModel):
    """An immutable value inside a row."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Planned(_Value):
    """One action of the commit's plan."""

    prefix: str
    function: str
    action: str
    reason: str


class Rejection(_Value):
    """One function prefix of the commit rejected as invalid, and why."""

    prefix: str
    file: str
    line: int | None = None
    reason: str


class CommitRow(Row):
    """One commit: observed, planned, rejected, held, and the deployments it asked for."""

    sha: str
    observed: bool = False
    author: str = ""
    summary: str = ""
    committed_at: str = ""
    changes: tuple[str, ...] = ()  # "modified apps/orders/orders_lambdadef.json"
    rewrote_history_from: str | None = None  # set when this head replaced another history
    planned: tuple[Planned, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    held_deletes: tuple[str, ...] = ()
    held_share: float | None = None
    deletes_allowed_by: str | None = None
    deployments: tuple[str, ...] = ()  # deployment ids this commit asked for


def key(record: RecordedEvent) -> str | None:
    """The row an event changes, or None."""
    event = record.event
    match event:  # the commonest first: a class pattern that misses costs an ABC check
        case DeploymentRequested():
            return event.commit
        case OperatorRequested():
            # The held deletes of this commit were released: planned again, guard lifted.
            applied = event.command == "allow_deletes" and event.outcome == "applied"
            return event.target if applied else None
        case FunctionEvent():
            return None
        case CommitObserved() | CommitPlanned() | DefinitionRejected() | DeletesHeld():
            return event.sha
        case HistoryRewritten():
            return event.head
        case OperatorCommandIssued():
            return event.target if event.command == "allow_deletes" else None
        case SourceUnavailable() | RepositoryAdded() | RepositoryRemoved():
            return None
        case _:
            assert_never(event)


def apply(row: CommitRow | None, record: RecordedEvent) -> CommitRow:
    """The row after ``record`` (pure)."""
    if row is None:
        sha = key(record)
        assert sha is not None, "apply is only called for events that have a key"
        row = CommitRow(sha=sha, position=record.position, updated_at=record.recorded_at)
    changes = _changes(row, record)
    changes["position"] = record.position
    changes["updated_at"] = record.recorded_at
    return with_changes(row, changes)


def _changes(row: CommitRow, record: RecordedEvent) -> dict[str, object]:
    event = record.event
    match event:
        case CommitObserved():
            return {
                "observed": True,
                "author": event.author,
                "summary": event.summary,
                "committed_at": event.committed_at,
                "changes": tuple(f"{c.change} {c.path}" for c in event.changes),
            }
        case HistoryRewritten():
            return {"rewrote_history_from": event.previous}
        case CommitPlanned():
            planned = tuple(
                Planned(prefix=a.prefix, function=a.function, action=a.action, reason=a.reason)
                for a in event.actions
            )
            return {"planned": planned}
        case DefinitionRejected():
            rejection = Rejection(
                prefix=event.prefix, file=event.file, line=event.line, reason=event.reason
            )
            return {"rejections": (*row.rejections, rejection)}
        case DeletesHeld():
            return {"held_deletes": event.prefixes, "held_share": event.share}
        case DeploymentRequested():
            if event.deployment_id in row.deployments:
                return {}
            return {"deployments": (*row.deployments, event.deployment_id)}
        case OperatorCommandIssued():
            return {"deletes_allowed_by": f"{record.meta.actor}: {event.reason}"}
        case OperatorRequested():
            return {"held_deletes": ()}
        case SourceUnavailable() | FunctionEvent() | RepositoryAdded() | RepositoryRemoved():
            return {}
        case _:
            assert_never(event)
