"""All views together: fold the log into them, serialize them to rows and back.

``fold(events)`` is the whole of time travel: the views as they were at any point are the fold
of the log up to it. The runner (``projections.runner``) uses the same ``Views.apply`` to keep
the stored views current, so a rebuild and an incremental update cannot disagree; it also
saves snapshots of them, from which ``projections.history`` folds only the last stretch.

Views read from a snapshot decode their rows when first used: a million-event log has
hundreds of thousands of rows, and a caller asking for the state at a position usually looks
at a few of them (``row``, ``recent``) or at one small view (``functions``). Reading a view's
property decodes the rest of that view.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from engine.errors import StoreCorrupt
from engine.events import RecordedEvent
from engine.ports import RowKey, SnapshotListing, SnapshotRows
from projections import commits, deployments, functions
from projections.base import Row
from projections.commits import CommitRow
from projections.deployments import DeploymentRow
from projections.functions import FunctionRow

R = TypeVar("R", bound=Row)

# How a snapshot row is encoded: the row's JSON as UTF-8, as the view rows are. Compressing
# each row (zlib, a third of the size) cost another tenth of a fold to write the snapshots and
# made reading one only a fifth faster. Part of the snapshot format.
_CODEC = "json-1"


@dataclass(frozen=True, slots=True)
class ViewSpec(Generic[R]):
    """A view: its name, row model, which row an event changes and how, and its place in
    :class:`Views`."""

    name: str
    row: type[R]
    key: Callable[[RecordedEvent], str | None]
    apply: Callable[[R | None, RecordedEvent], R]
    index: int


VIEWS: tuple[ViewSpec[Any], ...] = (
    ViewSpec(functions.NAME, FunctionRow, functions.key, functions.apply, 0),
    ViewSpec(deployments.NAME, DeploymentRow, deployments.key, deployments.apply, 1),
    ViewSpec(commits.NAME, CommitRow, commits.key, commits.apply, 2),
)
_SPECS = {spec.name: spec for spec in VIEWS}
_FOLD = tuple((spec.name, spec.key, spec.apply, spec.index) for spec in VIEWS)

Payload = tuple[int, bytes]  # a snapshot row: (the row's position, its encoded JSON)


class RowsNotRead(RuntimeError):
    """A caller read a row of views read for a few rows only: a bug in that caller (never
    taken for a row that does not exist)."""


class SnapshotUnreadable(StoreCorrupt):
    """A snapshot row of this glam's format does not decode: the log's file was altered."""


@cache
def snapshot_format() -> str:
    """The name of the snapshot format this glam reads and writes: the encoding and a digest
    of every row model's JSON schema, so that any change to a view's rows makes the stored
    snapshots unreadable here (they are then ignored, and replaced by the runner)."""
    schemas = json.dumps([spec.row.model_json_schema() for spec in VIEWS], sort_keys=True)
    return f"{_CODEC}:{hashlib.sha256(schemas.encode()).hexdigest()[:16]}"


def encode_row(text: str) -> bytes:
    """A row's JSON text as a snapshot payload."""
    return text.encode()


class Views:
    """Every view's rows by row key, and the last position folded.

    ``functions``, ``deployments`` and ``commits`` are the rows of each view by key (reading
    one decodes whatever of that view a snapshot left undecoded); ``row`` and ``recent`` read
    a few rows without decoding the rest.
    """

    __slots__ = ("_lazy", "_rows", "_unread", "position")

    def __init__(
        self,
        functions: dict[str, FunctionRow] | None = None,
        deployments: dict[str, DeploymentRow] | None = None,
        commits: dict[str, CommitRow] | None = None,
        position: int = 0,
    ) -> None:
        self._rows: tuple[dict[str, Any], ...] = (
            functions if functions is not None else {},
            deployments if deployments is not None else {},
            commits if commits is not None else {},
        )
        # Rows of a snapshot not decoded yet, per view; a key is in _rows or here, never both.
        self._lazy: tuple[dict[str, Payload], ...] = ({}, {}, {})
        # Rows of a snapshot listed but not read (their positions): views read for a few rows
        # (``History.at(..., recent=N)``); reading one is a bug in the caller.
        self._unread: tuple[dict[str, int], ...] = ({}, {}, {})
        self.position = position

    @property
    def functions(self) -> dict[str, FunctionRow]:
        return self._view(0)

    @property
    def deployments(self) -> dict[str, DeploymentRow]:
        return self._view(1)

    @property
    def commits(self) -> dict[str, CommitRow]:
        return self._view(2)

    def _view(self, index: int) -> dict[str, Any]:
        if self._unread[index]:
            raise RowsNotRead(f"the {VIEWS[index].name} of these views were not read whole")
        lazy, rows = self._lazy[index], self._rows[index]
        if lazy:
            for key in list(lazy):
                rows[key] = self._decode(index, key)
        return rows

    def _decode(self, index: int, key: str) -> Any:
        if key in self._unread[index]:
            raise RowsNotRead(f"the row {VIEWS[index].name}/{key} of these views was not read")
        _, payload = self._lazy[index].pop(key)
        spec = VIEWS[index]
        try:
            return spec.row.model_validate_json(payload)
        except ValidationError as exc:
            raise SnapshotUnreadable(
                f"the snapshot row {spec.name}/{key} at position {self.position} does not "
                "decode: the log's file was altered",
                hint="run `glam replay --verify`; restore the log from a backup",
            ) from exc

    def row(self, view: str, key: str) -> Row | None:
        """One row, or None (decodes only that row)."""
        index = _SPECS[view].index
        found = self._rows[index].get(key)
        if found is None and (key in self._lazy[index] or key in self._unread[index]):
            found = self._rows[index][key] = self._decode(index, key)
        return found

    def count(self, view: str) -> int:
        """How many rows ``view`` has (decodes nothing)."""
        index = _SPECS[view].index
        return len(self._rows[index]) + len(self._lazy[index]) + len(self._unread[index])

    def recent(self, view: str, limit: int) -> list[Row]:
        """The ``limit`` rows of ``view`` changed last, oldest first (decodes only those)."""
        index = _SPECS[view].index
        positions = [(row.position, key) for key, row in self._rows[index].items()]
        positions += [(position, key) for key, (position, _) in self._lazy[index].items()]
        positions += [(position, key) for key, position in self._unread[index].items()]
        chosen = heapq.nlargest(limit, positions)
        rows = [self.row(view, key) for _, key in reversed(chosen)]
        return [row for row in rows if row is not None]

    def copy(self) -> Views:
        # Rows and payloads are immutable, so copying the dicts is a full, independent copy.
        functions, deployments, commits = (dict(rows) for rows in self._rows)
        views = Views(functions, deployments, commits, self.position)
        views._lazy = tuple(dict(lazy) for lazy in self._lazy)
        views._unread = tuple(dict(unread) for unread in self._unread)
        return views

    def apply(self, record: RecordedEvent) -> list[RowKey]:
        """Fold one event in place; the rows it changed. Events must come in position order."""
        if record.position <= self.position:
            raise ValueError(f"event {record.position} is not after {self.position}")
        changed: list[RowKey] = []
        for name, key_of, apply, index in _FOLD:
            key = key_of(record)
            if key is not None:
                rows = self._rows[index]
                row = rows.get(key)
                if row is None and (key in self._lazy[index] or key in self._unread[index]):
                    row = self._decode(index, key)
                rows[key] = apply(row, record)
                changed.append((name, key))
        self.position = record.position
        return changed

    def row_text(self, view: str, key: str) -> str | None:
        row = self.row(view, key)
        return None if row is None else row.model_dump_json()

    def row_keys(self) -> list[RowKey]:
        """Every row's (view, key), decoding nothing."""
        return [
            (spec.name, key)
            for spec in VIEWS
            for part in (self._rows[spec.index], self._lazy[spec.index], self._unread[spec.index])
            for key in part
        ]

    def changed_after(self, position: int) -> list[RowKey]:
        """The rows last changed after ``position`` (decodes nothing)."""
        return [
            *(
                (spec.name, key)
                for spec in VIEWS
                for key, row in self._rows[spec.index].items()
                if row.position > position
            ),
            *(
                (spec.name, key)
                for spec in VIEWS
                for key, (row_position, _) in self._lazy[spec.index].items()
                if row_position > position
            ),
            *(
                (spec.name, key)
                for spec in VIEWS
                for key, row_position in self._unread[spec.index].items()
                if row_position > position
            ),
        ]

    def payload(self, view: str, key: str) -> Payload | None:
        """A row as a snapshot payload (None when it does not exist), encoded from the row or
        taken as the snapshot had it."""
        index = _SPECS[view].index
        if key in self._unread[index]:
            raise RowsNotRead(f"the row {view}/{key} of these views was not read")
        lazy = self._lazy[index].get(key)
        if lazy is not None:
            return lazy
        row = self._rows[index].get(key)
        return None if row is None else (row.position, encode_row(row.model_dump_json()))

    def to_rows(self) -> dict[RowKey, str]:
        """Every row as JSON text, as the ViewStore keeps them."""
        return {
            (spec.name, key): row.model_dump_json()
            for spec in VIEWS
            for key, row in self._view(spec.index).items()
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
                views._rows[spec.index][key] = spec.row.model_validate_json(text)
            except ValidationError:
                return cls()
        return views

    @classmethod
    def from_snapshot(cls, position: int, stored: SnapshotRows) -> Views:
        """The views of a snapshot (in ``snapshot_format()``), rows decoded when first used.
        It takes ``stored``'s dicts as they are: the caller gives them up."""
        views = cls(position=position)
        views._lazy = tuple(stored.get(spec.name, {}) for spec in VIEWS)
        return views

    @classmethod
    def from_listing(
        cls, position: int, listing: SnapshotListing, read: Mapping[RowKey, Payload]
    ) -> Views:
        """The views of a snapshot of which only the rows ``read`` were read (every other row
        of ``listing`` counts, and orders by position, but reading it raises
        ``RowsNotRead``). It takes ``listing``'s dicts as they are: the caller gives them up."""
        views = cls(position=position)
        views._unread = tuple(listing.get(spec.name, {}) for spec in VIEWS)
        for (view, key), payload in read.items():
            index = _SPECS[view].index
            if views._unread[index].pop(key, None) is not None:
                views._lazy[index][key] = payload
        return views

    def as_json(self) -> dict[str, Any]:
        """Plain JSON-able data, rows sorted by key (CLI, snapshots)."""
        out: dict[str, Any] = {"position": self.position}
        for spec in VIEWS:
            rows = self._view(spec.index)
            out[spec.name] = {key: json.loads(rows[key].model_dump_json()) for key in sorted(rows)}
        return out


def touched(record: RecordedEvent) -> list[RowKey]:
    """The rows ``record`` changes (what ``Views.apply`` would return)."""
    return [(name, key) for name, key_of, _, _ in _FOLD if (key := key_of(record)) is not None]


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
