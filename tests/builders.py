"""Builders shared by the tests: typed event filters and small test doubles.

events_of(records, TrafficShifted)   the events of one class, typed for mypy
records_of(records, TrafficShifted)  the same, keeping each record (stream, metadata)
active(state)                        a saga state's deployment in flight, asserted there
StepClock                            a Clock whose time moves only by its own sleeps
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TypeVar

from engine.events import RecordedEvent
from engine.saga.state import Deployment, SagaState

E = TypeVar("E")


def events_of(records: Iterable[RecordedEvent | object], kind: type[E]) -> list[E]:
    """The events of ``records`` (records or bare events) that are ``kind``, in order."""
    events = (r.event if isinstance(r, RecordedEvent) else r for r in records)
    return [e for e in events if isinstance(e, kind)]


def records_of(records: Iterable[RecordedEvent], kind: type[object]) -> list[RecordedEvent]:
    """The records of ``records`` whose event is a ``kind`` instance, in order."""
    return [r for r in records if isinstance(r.event, kind)]


def active(state: SagaState) -> Deployment:
    """The deployment ``state`` has in flight (the test fails if there is none)."""
    assert state.active is not None, "no deployment in flight"
    return state.active


class StepClock:
    """An ``engine.ports.Clock`` whose time moves only when something sleeps on it, by as
    much as it sleeps, at once. ``time`` is the monotonic reading, ``slept`` every sleep of
    some time (a sleep of none, as a rate limiter with a free slot makes, is not one)."""

    def __init__(self, start: float = 0.0, slept: list[float] | None = None) -> None:
        self.time = start
        self.slept = slept if slept is not None else []

    def monotonic(self) -> float:
        return self.time

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time, UTC)

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.slept.append(seconds)
            self.time += seconds

    async def sleep_until(self, deadline: datetime) -> None:
        await self.sleep((deadline - self.now()).total_seconds())
