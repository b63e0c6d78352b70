"""The embedded AWS's one clock: a base clock plus an offset that only grows.

Everything in the proxy that depends on time reads this clock: how long a new function stays
``Pending`` and an update ``InProgress``, the one-second quota windows, the journal's ``t``,
and the end of an injected latency. Moving it forward (``advance``) makes all of those pass at
once, so a test never has to wait for them in real time:

    aws.advance_clock(5)        # or: curl -d '{"advance": 5}' <endpoint>/_glam/clock

It never moves back: a timer that already expired stays expired, and a quota window already
left never fills again. The base is ``time.monotonic`` unless a test gives another (a frozen
base makes nothing expire unless the test moves the clock).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import anyio

MAX_ADVANCE = 366 * 24 * 3600.0
"""The largest single step: a year, far past any timer the proxy keeps."""


class MovableClock:
    """Monotonic seconds: ``base() + offset``; ``advance(s)`` adds to the offset."""

    def __init__(self, base: Callable[[], float] = time.monotonic) -> None:
        self._base = base
        self._offset = 0.0
        # Replaced on every advance, so each sleeper waits on the event of its own epoch.
        self._moved = asyncio.Event()

    def __call__(self) -> float:
        return self._base() + self._offset

    @property
    def offset(self) -> float:
        """How far the clock has been moved past its base, in seconds."""
        return self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (0 to a year); return the new reading.

        Runs on the proxy's event loop (sleepers are woken through an asyncio event)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError("advance must be a number of seconds")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("the clock only moves forward: advance must be 0 or more seconds")
        if seconds > MAX_ADVANCE:
            raise ValueError(f"advance must be at most {MAX_ADVANCE:g} seconds")
        self._offset += float(seconds)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()
        return self()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of real time, or less if the clock is moved past the end first."""
        deadline = self() + seconds
        with anyio.move_on_after(seconds):
            while self() < deadline:
                await self._moved.wait()
