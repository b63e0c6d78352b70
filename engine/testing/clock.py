"""``ManualClock``: an ``engine.ports.Clock`` whose time moves only when told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio


class ManualClock:
    """Time that moves only when told: ``advance()`` wakes sleepers whose deadline passed.

    With ``autojump=True`` a sleeper moves time straight to its deadline instead of waiting,
    so a saga with a ten-minute bake runs in microseconds. ``sleeps`` records every deadline
    slept until, for assertions.
    """

    def __init__(self, start: datetime | None = None, *, autojump: bool = False) -> None:
        self._now = start or datetime(2025, 1, 1, tzinfo=UTC)
        self.autojump = autojump
        self.sleeps: list[datetime] = []
        # Created on first sleep: an anyio Event needs a running event loop.
        self._changed: anyio.Event | None = None

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        """Move time to ``moment`` (never backwards) and wake whoever is due."""
        if moment > self._now:
            self._now = moment
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.set(self._now + timedelta(seconds=seconds))

    async def sleep_until(self, deadline: datetime) -> None:
        self.sleeps.append(deadline)
        if self.autojump:
            self.set(deadline)
            await anyio.lowlevel.checkpoint()
            return
        while self._now < deadline:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
