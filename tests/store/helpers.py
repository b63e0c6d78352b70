"""Small builders for store tests."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from engine.events import Metadata, NewEvent
from engine.events.function import RollbackStarted
from engine.store.records import GENESIS_HASH, StoredRow, expected_hash

_ids = itertools.count(1)


def new_event(event_id: str | None = None, reason: str = "r", deployment: str = "d1") -> NewEvent:
    """A small valid event with a fresh (or given) event id."""
    return NewEvent(
        RollbackStarted(deployment_id=deployment, reason=reason),
        Metadata(event_id=event_id or f"e{next(_ids)}", deployment_id=deployment),
    )


class TickingClock:
    """A manual clock for ``now``: each call returns one second later than the last."""

    def __init__(self, start: datetime | None = None) -> None:
        self.moment = start or datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.moment += timedelta(seconds=1)
        return self.moment


async def until(condition: Callable[[], object], *, step: float = 0.005) -> None:
    """Wait until ``condition()`` holds (bound it with ``anyio.fail_after``)."""
    while True:
        if condition():
            return
        await anyio.sleep(step)


def rewritten(rows: list[StoredRow], position: int, **changes: Any) -> list[StoredRow]:
    """The rows from ``position`` on as a writer that hashes them properly would store them
    with ``changes`` made to the row at ``position`` (e.g. a type only a newer glam knows):
    that row and every later one rehashed, so the chain verifies."""
    prev = rows[position - 2].hash if position > 1 else GENESIS_HASH
    out: list[StoredRow] = []
    for row in rows[position - 1 :]:
        changed = dataclasses.replace(row, **changes) if row.position == position else row
        changed = dataclasses.replace(changed, prev_hash=prev, hash="")
        changed = dataclasses.replace(changed, hash=expected_hash(changed))
        prev = changed.hash
        out.append(changed)
    return out


REWRITE_SQL = (
    "UPDATE events SET type = ?, schema_version = ?, data = ?, prev_hash = ?, hash = ? "
    "WHERE position = ?"
)


def rewrite_params(row: StoredRow) -> tuple[object, ...]:
    return (row.type, row.schema_version, row.data, row.prev_hash, row.hash, row.position)


# ... and the log's note of its verified head, which that writer keeps up to date too.
HEAD_SQL = "UPDATE glam_meta SET value = ? WHERE key = 'verified'"


def head_params(last: StoredRow) -> tuple[object, ...]:
    return (json.dumps({"hash": last.hash, "position": last.position}, sort_keys=True),)
