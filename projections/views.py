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

from engine.events import RecordedEvent
from projections import commits, deployments, functions
from projections.base import Row

R = TypeVar("R", bound=Row)


@dataclass(frozen=True, slots=True)
class ViewSpec(Generic[R]):
    """A view: its name, row model, which row an event changes and how."""

    name: str
    row: type[R]
    key: Callable[[RecordedEvent], str | None]
    apply: Callable[[R | None, RecordedEvent], R]


VIEWS: tuple[ViewSpec[Any], ...] = (
    ViewSpec(functions.NAME, functions.FunctionRow, functions.key, functions.apply),
    ViewSpec(deployments.NAME, deployments.DeploymentRow, deployments.key, deployments.apply),
    ViewSpec(commits.NAME, commits.CommitRow, commits.key, commits.apply),
)
VIEW_NAMES = tuple(spec.name for spec in VIEWS)

RowKey = tuple[str, str]  # (view name, row key)


@dataclass(slots=True)
class Views:
    """Every view's rows, keyed by view name then row key, and the last position folded."""

    rows: dict[str, dict[str, Row]] = field(default_factory=lambda: {n: {} for n in VIEW_NAMES})
    position: int = 0

    @property
    def functions(self) -> dict[str, functions.FunctionRow]:
        return self.rows[functions.NAME]  # type: ignore[return-value]

    @property
    def deployments(self) -> dict[str, deployments.DeploymentRow]:
        return self.rows[deployments.NAME]  # type: ignore[return-value]

    @property
    def commits(self) -> dict[str, commits.CommitRow]:
        return self.rows[commits.NAME]  # type: ignore[return-value]

    def copy(self) -> Views:
        # Rows are immutable, so copying the dicts is a full, independent copy.
        return Views({name: dict(rows) for name, rows in self.rows.items()}, self.position)

    def apply(self, record: RecordedEvent) -> list[RowKey]:
        """Fold one event in place; the rows it changed. Events must come in position order."""
        if record.position <= self.position:
            raise ValueError(f"event {record.position} is not after {self.position}")
        changed: list[RowKey] = []
        for spec in VIEWS:
            key = spec.key(record)
            if key is not None:
                rows = self.rows[spec.name]
                rows[key] = spec.apply(rows.get(key), record)
                changed.append((spec.name, key))
        self.position = record.position
        return changed

    def row_text(self, view: str, key: str) -> str | None:
        row = self.rows[view].get(key)
        return None if row is None else row.model_dump_json()

    def to_rows(self) -> dict[RowKey, str]:
        """Every row as JSON text, as the ViewStore keeps them."""
        return {
            (view, key): row.model_dump_json()
            for view, rows in self.rows.items()
            for key, row in rows.items()
        }

    @classmethod
    def from_rows(cls, position: int, stored: Mapping[RowKey, str]) -> Views:
        views = cls(position=position)
        models = {spec.name: spec.row for spec in VIEWS}
        for (view, key), text in stored.items():
            model = models.get(view)
            if model is None:
                continue  # a view this glam no longer has; a rebuild drops it
            views.rows[view][key] = model.model_validate_json(text)
        return views

    def as_json(self) -> dict[str, Any]:
        """Plain JSON-able data, rows sorted by key (CLI, snapshots)."""
        return {
            "position": self.position,
            **{
                view: {key: json.loads(rows[key].model_dump_json()) for key in sorted(rows)}
                for view, rows in self.rows.items()
            },
        }


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
