"""All views together: fold the log into them, serialize them to rows and back.

``fold(events)`` is the whole of time travel: the views as they were at any point are the fold
of the log up to it. The runner (``projections.runner``) uses the same ``Views.apply`` to keep
the stored views current, so a rebuild and an incremental update cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from engine.events import RecordedEvent
from projections import commits, deployments, functions
from projections.base import Row
from projections.commits import CommitRow
from projections.deployments import DeploymentRow
from projections.functions import FunctionRow

R = TypeVar("R", bound=Row)


@dataclass(frozen=True, slots=True)
class ViewSpec(Generic[R]):
    """A view: its name, row model, which row an event changes and how, and where its rows
    sit in :class:`Views`."""

    name: str
    row: type[R]
    key: Callable[[RecordedEvent], str | None]
    apply: Callable[[R | None, RecordedEvent], R]
    rows: Callable[[Views], dict[str, R]]


VIEWS: tuple[ViewSpec[Any], ...] = (
    ViewSpec(functions.NAME, FunctionRow, functions.key, functions.apply, lambda v: v.functions),
    ViewSpec(
        deployments.NAME, DeploymentRow, deployments.key, deployments.apply, lambda v: v.deployments
    ),
    ViewSpec(commits.NAME, CommitRow, commits.key, commits.apply, lambda v: v.commits),
)
_SPECS = {spec.name: spec for spec in VIEWS}

RowKey = tuple[str, str]  # (view name, row key)


@dataclass(slots=True)
class Views:
    """Every view's rows by row key, and the last position folded."""

    functions: dict[str, FunctionRow] = field(default_factory=dict)
    deployments: dict[str, DeploymentRow] = field(default_factory=dict)
    commits: dict[str, CommitRow] = field(default_factory=dict)
    position: int = 0

    def copy(self) -> Views:
        # Rows are immutable, so copying the dicts is a full, independent copy.
        return Views(
            dict(self.functions), dict(self.deployments), dict(self.commits), self.position
        )

    def apply(self, record: RecordedEvent) -> list[RowKey]:
        """Fold one event in place; the rows it changed. Events must come in position order."""
        if record.position <= self.position:
            raise ValueError(f"event {record.position} is not after {self.position}")
        changed: list[RowKey] = []
        for spec in VIEWS:
            key = spec.key(record)
            if key is not None:
                rows = spec.rows(self)
                rows[key] = spec.apply(rows.get(key), record)
                changed.append((spec.name, key))
        self.position = record.position
        return changed

    def row_text(self, view: str, key: str) -> str | None:
        row = _SPECS[view].rows(self).get(key)
        return None if row is None else row.model_dump_json()

    def to_rows(self) -> dict[RowKey, str]:
        """Every row as JSON text, as the ViewStore keeps them."""
        return {
            (spec.name, key): row.model_dump_json()
            for spec in VIEWS
            for key, row in spec.rows(self).items()
        }

    @classmethod
    def from_rows(cls, position: int, stored: Mapping[RowKey, str]) -> Views:
        """The views a ViewStore kept. Rows in a shape this glam does not read (an earlier
        glam stored them) give empty views at position 0 instead: views are derived, so the
        caller folds the log into them again from the start."""
        views = cls(position=position)
        for (view, key), text in stored.items():
            spec = _SPECS.get(view)
            if spec is None:
                continue  # a view this glam no longer has; a rebuild drops it
            try:
                spec.rows(views)[key] = spec.row.model_validate_json(text)
            except ValidationError:
                return cls()
        return views

    def as_json(self) -> dict[str, Any]:
        """Plain JSON-able data, rows sorted by key (CLI, snapshots)."""
        out: dict[str, Any] = {"position": self.position}
        for spec in VIEWS:
            rows = spec.rows(self)
            out[spec.name] = {key: json.loads(rows[key].model_dump_json()) for key in sorted(rows)}
        return out


def fold(events: Iterable[RecordedEvent], start: Views | None = None) -> Views:
    """The views after ``events``, starting from ``start`` (empty views if None). Pure:
    ``start`` is not changed, so ``fold(a + b) == fold(b, fold(a))``."""
    views = start.copy() if start is not None else Views()
    for record in events:
        views.apply(record)
    return views


def differences(
    expected: Mapping[RowKey, str], actual: Mapping[RowKey, str]
) -> list[tuple[RowKey, str | None, str | None]]:
    """Rows that differ between two row sets: (key, expected text, actual text), compared as
    JSON values so formatting does not count."""
    out = []
    for row_key in sorted(set(expected) | set(actual)):
        a, b = expected.get(row_key), actual.get(row_key)
        if (None if a is None else json.loads(a)) != (None if b is None else json.loads(b)):
            out.append((row_key, a, b))
    return out
