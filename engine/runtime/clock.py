"""The system clock, implementing ``engine.ports.Clock`` (the test clocks are
``engine.testing.ManualClock`` and ``engine.testing.AutojumpClock``).

Timezone-aware UTC everywhere: durable timers are stored in events and compared after a
restart, possibly on another machine.

What a timer means when the system clock jumps. Inside one engine process, time is the wall
clock read once, at the start, plus the monotonic time elapsed since: a step of the system
clock (an operator setting it, NTP stepping it, a VM resumed) while the engine runs changes no
deadline, so a bake of 60 s lasts 60 s of elapsed time, never ends early after a jump forward
and never stalls after a jump backward. A durable timer (``TimerStarted.until``) is a wall-clock
time, because the wall clock is the only one that survives a restart: an engine started after
the clock moved waits what is left by the new wall clock. A jump seen while running is logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio

from engine.logs import get_logger

log = get_logger("clock")

JUMP_LOGGED = 1.0  # seconds between the wall clock and the engine's time worth a warning


def _wall() -> datetime:
    return datetime.now(UTC)


class SystemClock:
    """Wall-clock time as of the start, advanced by the monotonic clock; sleeps with anyio
    (also monotonic) so cancellation works. ``wall`` and ``monotonic`` are the sources (tests
    give a wall clock that jumps)."""

    def __init__(
        self,
        *,
        wall: Callable[[], datetime] = _wall,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._start_wall = wall()
        self._start = monotonic()
        self._logged_offset = 0.0

    def now(self) -> datetime:
        elapsed = self._monotonic() - self._start
        moment = self._start_wall + timedelta(seconds=elapsed)
        offset = (self._wall() - moment).total_seconds()
        if abs(offset - self._logged_offset) > JUMP_LOGGED:
            self._logged_offset = offset
            log.warning(
                "the system clock jumped: it is %+.1f s from the engine's time; timers keep "
                "measuring elapsed time",
                offset,
            )
        return moment

    def monotonic(self) -> float:
        return self._monotonic()

    async def sleep(self, seconds: float) -> None:
        # Always yield once, so a loop of zero delays cannot starve the event loop.
        await anyio.sleep(max(0.0, seconds))

    async def sleep_until(self, deadline: datetime) -> None:
        await self.sleep((deadline - self.now()).total_seconds())


SYSTEM_CLOCK = SystemClock()
"""The one system clock: the default of every adapter that takes a ``clock``."""
