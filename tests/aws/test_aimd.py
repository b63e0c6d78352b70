"""AIMD against the embedded AWS: a 429 TooManyRequestsException (an injected throttle
fault, as another tool spending the same account's quota would cause) cuts the limiter's rate
and pauses for its Retry-After; with AWS quiet again the rate climbs back by one call per
second each second, to the quota."""

from __future__ import annotations

import itertools
import random

import pytest

from engine.aws.lambda_api import AwsLambda, CallRetry
from engine.aws.ratelimit import RateLimiter
from engine.errors import AwsThrottled
from engine.local import LocalAwsThread
from engine.local.clients import aws_client
from engine.testing import ManualClock

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_a_throttle_from_aws_cuts_the_rate_and_it_recovers_additively(
    local_aws: LocalAwsThread,
) -> None:
    clock = ManualClock(autojump=True)  # retries and pauses cost no real time
    limiter = RateLimiter(rate=15, clock=clock)
    creds = local_aws.credentials
    async with aws_client(
        "lambda",
        local_aws.endpoint_url,
        region=local_aws.region,
        credentials=(creds.access_key_id, creds.secret_access_key),
    ) as client:
        api = AwsLambda(
            client, limiter, policy=CallRetry(attempts=2), clock=clock, rng=random.Random(3)
        )
        local_aws.set_faults("GetAlias:throttle=1")
        throttled_at = clock.monotonic()
        with pytest.raises(AwsThrottled):
            await api.get_alias("nobody", "live")
        refused = [e for e in local_aws.journal.calls("GetAlias") if e.fault == "throttle"]
        assert [e.status for e in refused] == [429, 429]
        # The first 429 halved the rate and paused everyone for its Retry-After (1 s); the
        # second was the last attempt, given up on, and no second cut.
        assert clock.monotonic() >= throttled_at + 1.0
        regained = clock.monotonic() - throttled_at
        assert limiter.current_rate() == pytest.approx(7.5 + regained)

        local_aws.set_faults("")
        stamps = []
        for _ in range(4):
            assert await api.get_alias("nobody", "live") is None
            stamps.append(clock.monotonic())
        # Still below the quota: the calls are spaced wider than 1/15 s.
        assert all(b - a > 1 / 14 for a, b in itertools.pairwise(stamps))
        assert limiter.current_rate() < 15.0
        # Additive increase: one call/s more for each second without a throttle.
        await clock.sleep(2.0)
        assert limiter.current_rate() == pytest.approx(7.5 + clock.monotonic() - throttled_at)
        await clock.sleep(8.0)
        assert limiter.current_rate() == 15.0
        ok = [e for e in local_aws.journal.calls("GetAlias") if e.status == 404]
        assert len(ok) == 4
