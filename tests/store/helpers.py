"""Small builders for store tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio

from engine.events import Metadata, NewEvent
from engine.events.function import RollbackStarted

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
