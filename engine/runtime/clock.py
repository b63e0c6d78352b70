"""The system clock, implementing ``engine.ports.Clock`` (the test clocks are
``engine.testing.ManualClock`` and ``engine.testing.AutojumpClock``).

Timezone-aware UTC everywhere: durable timers are stored in events and compared after a
restart, possibly on another machine.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import anyio


class SystemClock:
    """Wall-clock time and ``time.monotonic``; sleeps with anyio so cancellation works."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        # Always yield once, so a loop of zero delays cannot starve the event loop.
        await anyio.sleep(max(0.0, seconds))

    async def sleep_until(self, deadline: datetime) -> None:
        await self.sleep((deadline - self.now()).total_seconds())


SYSTEM_CLOCK = SystemClock()
"""The one system clock: the default of every adapter that takes a ``clock``."""
