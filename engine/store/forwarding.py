"""The reads of the ``EventStore`` port passed through to another store: the base of the
stores that change only how appends are made (``engine.metrics.MeteredStore`` times them,
``engine.runtime.leases.FencedStore`` fences them)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine.events import RecordedEvent
from engine.ports import EventStore


class ReadThrough:
    """Every read of ``EventStore`` answered by ``self._store``."""

    _store: EventStore

    async def read_stream(self, stream: str, from_version: int = 1) -> list[RecordedEvent]:
        return await self._store.read_stream(stream, from_version)

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        return await self._store.read_all(from_position, limit)

    def follow(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        return self._store.follow(from_position)

    async def last_position(self) -> int:
        return await self._store.last_position()

    async def stream_version(self, stream: str) -> int:
        return await self._store.stream_version(stream)
