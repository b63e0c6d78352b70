"""Builders shared by the tests: typed event filters and small test doubles.

events_of(records, TrafficShifted)   the events of one class, typed: no ``type: ignore``
records_of(records, TrafficShifted)  the same, keeping each record (stream, metadata)
StepClock                            a Clock whose time moves only by its own sleeps
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TypeVar

from engine.events import RecordedEvent

E = TypeVar("E")


def events_of(records: Iterable[RecordedEvent], kind: type[E]) -> list[E]:
    """The events of ``records`` that are ``kind`` instances, in order."""
    return [r.event for r in records if isinstance(r.event, kind)]


def records_of(records: Iterable[RecordedEvent], kind: type[object]) -> list[RecordedEvent]:
    """The records of ``records`` whose event is a ``kind`` instance, in order."""
    return [r for r in records if isinstance(r.event, kind)]


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
