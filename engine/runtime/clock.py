"""The system clock, implementing ``engine.ports.Clock`` (a manual one for tests is
``engine.testing.ManualClock``).

Timezone-aware UTC everywhere: durable timers are stored in events and compared after a
restart, possibly on another machine.
"""

from __future__ import annotations

from datetime import UTC, datetime

import anyio


class SystemClock:
    """Wall-clock time; sleeps with anyio so cancellation works."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, deadline: datetime) -> None:
        delay = (deadline - self.now()).total_seconds()
        # Always yield once, so a loop of past deadlines cannot starve the event loop.
        await anyio.sleep(max(0.0, delay))
