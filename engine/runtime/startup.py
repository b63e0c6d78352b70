"""What an engine does once, as it starts (``Engine.__aenter__``).

``first_account`` asks AWS for the account of the engine's credentials and rides out weather
(a throttle, a 5xx, the network) rather than ending the engine; ``read_botocore_data`` reads
the botocore data files the engine consults while it runs, once per process, in a worker
thread and not on the event loop.
"""

from __future__ import annotations

import random

from engine.definitions.names import partitions
from engine.definitions.normalize import member_kinds
from engine.errors import AwsError
from engine.logs import get_logger
from engine.ports import Clock
from engine.runtime.clock import SYSTEM_CLOCK
from engine.runtime.providers import PortsProvider

log = get_logger("engine")

# Start-up is weather-proof: a throttled, failing or unreachable AWS at the first call is waited
# out with jittered backoff (these many seconds at most) rather than ending the engine.
START_RETRY_FOR = 300.0
START_BACKOFF = (0.5, 30.0)  # first wait and longest wait, in seconds


def read_botocore_data() -> None:
    """Read, once per process and off the event loop, the botocore data files the engine
    consults while it runs (both are cached after): the regions definitions are checked
    against, and Lambda's service model that desired and live configurations are compared
    with."""
    partitions()
    member_kinds()


async def first_account(
    ports: PortsProvider,
    *,
    retry_for: float = START_RETRY_FOR,
    backoff: tuple[float, float] = START_BACKOFF,
    clock: Clock = SYSTEM_CLOCK,
) -> str:
    """The account of the credentials, asked until AWS answers. A throttle, a 5xx or a network
    error is weather: logged as such and retried with jittered backoff for up to
    ``retry_for`` seconds of ``clock``. An error that cannot clear (credentials refused) ends
    the start at once."""
    deadline = clock.monotonic() + retry_for
    delay, longest = backoff
    attempt = 1
    while True:
        try:
            return await ports.account()
        except AwsError as exc:
            wait = delay * random.uniform(0.5, 1.0)
            if not exc.retryable or clock.monotonic() + wait > deadline:
                raise
            log.warning(
                "AWS did not answer at start-up (attempt %d: %s); retrying in %.1f s",
                attempt,
                exc.message,
                wait,
            )
        await clock.sleep(wait)
        delay = min(delay * 2, longest)
        attempt += 1
