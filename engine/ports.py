"""The ports: what the core needs from the outside world, as Protocols.

Adapters implement them (SQLite, aiobotocore, dulwich); in-memory fakes implement them too and
are real implementations used by the fast tests. Each port has one contract suite in tests/
that runs against every implementation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol

from engine.events import NewEvent, RecordedEvent

# Expected-version sentinels for EventStore.append.
ANY_VERSION = -2  # append whatever the stream's version is
NO_STREAM = 0  # the stream must not exist yet (versions start at 1)


class Clock(Protocol):
    """Time as the runtime sees it; tests use a manual clock so they never sleep."""

    def now(self) -> datetime: ...

    async def sleep_until(self, deadline: datetime) -> None: ...


class EventStore(Protocol):
    """An append-only log of streams with optimistic concurrency.

    - ``append`` writes ``events`` to ``stream`` if its current version equals
      ``expected_version`` (``ANY_VERSION`` skips the check, ``NO_STREAM`` means empty) and
      raises ``ConcurrencyConflict`` otherwise. An event whose ``event_id`` is already stored is
      a no-op and its stored record is returned, so a retried append is idempotent.
    - Positions are global, contiguous and start at 1; stream versions start at 1.
    """

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> list[RecordedEvent]: ...

    async def read_stream(self, stream: str, from_version: int = 1) -> list[RecordedEvent]: ...

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]: ...

    def follow(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        """Every event from ``from_position`` on, then new ones as they are appended."""
        ...

    async def last_position(self) -> int: ...

    async def stream_version(self, stream: str) -> int: ...

    async def aclose(self) -> None: ...
