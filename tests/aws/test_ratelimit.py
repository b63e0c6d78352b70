"""The shared limiter paces calls to its rate and pauses everyone on Retry-After."""

from __future__ import annotations

import heapq
import itertools
from datetime import UTC, datetime

import anyio
import pytest

from engine.aws.ratelimit import DEFAULT_SERVICE_RATE, Background, LimiterRegistry, RateLimiter

# Slots are spaced by 1/rate of a window a microsecond over one second, so that the sum of
# fifteen slots never rounds below the second: gaps are 0.1000001 s, not 0.1 s.
SPACING = 1e-5


class FakeTime:
    """Virtual time (an ``engine.ports.Clock``): a sleeper wakes when it holds the earliest
    deadline, and the clock jumps to that deadline. Sleepers spin on checkpoints, so every
    runnable task gets its turn first. ``time`` is the monotonic reading."""

    def __init__(self) -> None:
        self.time = 1000.0
        self._deadlines: list[tuple[float, int]] = []
        self._seq = 0

    def monotonic(self) -> float:
        return self.time

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time, UTC)

    async def sleep_until(self, deadline: datetime) -> None:
        await self.sleep((deadline - self.now()).total_seconds())

    async def sleep(self, seconds: float) -> None:
        self._seq += 1
        me = (self.time + seconds, self._seq)
        heapq.heappush(self._deadlines, me)
        while True:
            await anyio.lowlevel.checkpoint()
            if self._deadlines[0] == me:
                heapq.heappop(self._deadlines)
                self.time = max(self.time, me[0])
                return


@pytest.mark.anyio
async def test_sequential_calls_are_spaced_by_the_rate() -> None:
    t = FakeTime()
    limiter = RateLimiter(rate=10, clock=t)
    stamps = []
    for _ in range(21):
        await limiter.acquire()
        stamps.append(t.time)
    assert stamps[0] == 1000.0
    # Spaced by a tenth of the window, which is a second and a microsecond (SPACING).
    assert stamps[-1] - stamps[0] == pytest.approx(2.0, rel=SPACING)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(g == pytest.approx(0.1, rel=SPACING) for g in gaps)
    assert all(g >= 0.1 for g in gaps)


@pytest.mark.anyio
async def test_concurrent_callers_never_exceed_the_rate_in_any_second() -> None:
    t = FakeTime()
    limiter = RateLimiter(rate=10, clock=t)
    stamps: list[float] = []

    async def caller() -> None:
        for _ in range(5):
            await limiter.acquire()
            stamps.append(t.time)

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(caller)
    assert len(stamps) == 40
    stamps.sort()
    for i, start in enumerate(stamps):
        in_window = [s for s in stamps[i:] if s < start + 1.0 - 1e-6]
        assert len(in_window) <= 10


@pytest.mark.anyio
async def test_polls_have_their_own_budget() -> None:
    t = FakeTime()
    limiter = RateLimiter(rate=1, poll_rate=50, clock=t)
    await limiter.acquire()
    start = t.time
    for _ in range(10):
        await limiter.acquire(poll=True)
    # Ten polls at 50/s take 0.18 s; they did not wait for the 1/s mutating budget.
    assert t.time - start == pytest.approx(0.18)


@pytest.mark.anyio
async def test_retry_after_pauses_every_caller() -> None:
    t = FakeTime()
    registry = LimiterRegistry(rate=10, clock=t)
    limiter = registry.get("123456789012", "us-east-1")
    assert registry.get("123456789012", "us-east-1") is limiter
    assert registry.get("123456789012", "eu-west-1") is not limiter
    await limiter.acquire()
    limiter.retry_after(3.0)
    await limiter.acquire(poll=True)
    assert t.time == pytest.approx(1003.0)
    await limiter.acquire()
    assert t.time >= 1003.0


@pytest.mark.anyio
async def test_retry_after_arriving_while_a_caller_sleeps_holds_it_back() -> None:
    t = FakeTime()
    limiter = RateLimiter(rate=1, clock=t)
    await limiter.acquire()  # t=1000, next slot at 1001
    woke: list[float] = []

    async def waiter() -> None:
        await limiter.acquire()
        woke.append(t.time)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.lowlevel.checkpoint()  # waiter reserved 1001 and sleeps
        limiter.retry_after(5.0)
    assert woke
    assert woke[0] >= 1005.0


def test_rates_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(rate=0)


def test_each_service_has_its_own_limiter_per_account_and_region() -> None:
    """Lambda's limiter (the default) is not ELB's or API Gateway's; each service keeps its
    own rate, and a registry can override the other services' rates."""
    registry = LimiterRegistry(rate=10, poll_rate=50, service_rates={"apigatewayv2": 2.0})
    lam = registry.get("123456789012", "us-east-1")
    elb = registry.get("123456789012", "us-east-1", "elbv2")
    apigw = registry.get("123456789012", "us-east-1", "apigatewayv2")
    assert registry.get("123456789012", "us-east-1", "lambda") is lam
    assert registry.get("123456789012", "us-east-1", "elbv2") is elb
    assert registry.get("123456789012", "eu-west-1", "elbv2") is not elb
    assert len({id(lam), id(elb), id(apigw)}) == 3
    assert (lam.rate, lam.poll_rate) == (10, 50)
    assert elb.rate == DEFAULT_SERVICE_RATE < 10
    assert apigw.rate == 2.0


@pytest.mark.anyio
async def test_retry_after_on_one_service_does_not_pause_another() -> None:
    t = FakeTime()
    registry = LimiterRegistry(rate=10, clock=t)
    registry.get("123456789012", "us-east-1", "elbv2").retry_after(5.0)
    await registry.get("123456789012", "us-east-1").acquire()
    assert t.time == 1000.0


@pytest.mark.anyio
async def test_the_background_lane_takes_its_share_and_yields_to_deployments() -> None:
    """Drift reads (the background lane) take at most their share of the rate, and each only
    once no deployment call has a slot reserved ahead: deployments are served first."""
    t = FakeTime()
    limiter = RateLimiter(rate=10, clock=t)
    lane = Background(limiter, share=0.2)  # 2 calls per second at most
    alone: list[float] = []
    for _ in range(5):
        await lane.acquire()
        alone.append(t.time)
    gaps = [b - a for a, b in itertools.pairwise(alone)]
    assert all(g == pytest.approx(0.5, rel=SPACING) for g in gaps)  # 1 / (10 * 0.2)

    served: list[tuple[str, float]] = []

    async def deployment() -> None:
        for _ in range(20):
            await limiter.acquire()
            served.append(("deploy", t.time))

    async def sweep() -> None:
        await anyio.lowlevel.checkpoint()  # the deployment's calls are queued first
        for _ in range(3):
            await lane.acquire()
            served.append(("drift", t.time))

    start = t.time
    async with anyio.create_task_group() as tg:
        tg.start_soon(deployment)
        tg.start_soon(sweep)
    deploys = [at for who, at in served if who == "deploy"]
    drifts = [at for who, at in served if who == "drift"]
    # The deployment's 20 calls keep their pace, as if nothing else ran, but for the one
    # slot a drift read may take between two of them.
    assert deploys[-1] - start <= 2.0 + 3 * 0.1 + 1e-9
    assert len(drifts) == 3
    assert all(
        b - a == pytest.approx(0.1, rel=SPACING) or b - a == pytest.approx(0.2, rel=SPACING)
        for a, b in itertools.pairwise(deploys)
    )
    assert sorted(set(drifts) & set(deploys)) == []  # never the same slot


def test_the_background_share_is_a_fraction() -> None:
    with pytest.raises(ValueError, match="fraction"):
        Background(RateLimiter(), share=0.0)


def test_the_default_ceiling_is_lambdas_quota() -> None:
    assert RateLimiter().rate == 15.0
    assert LimiterRegistry().get("123456789012", "us-east-1").current_rate() == 15.0


@pytest.mark.anyio
async def test_a_throttle_halves_the_rate_and_it_climbs_back_to_the_ceiling() -> None:
    t = FakeTime()
    limiter = RateLimiter(rate=15, clock=t)
    limiter.throttled()
    assert limiter.current_rate() == pytest.approx(7.5)
    # The calls right after the cut are spaced at the lower rate.
    stamps = []
    for _ in range(3):
        await limiter.acquire()
        stamps.append(t.time)
    assert stamps[2] - stamps[1] == pytest.approx(1 / limiter.current_rate(), rel=0.05)
    assert stamps[2] - stamps[1] > 1 / 15
    # Additive increase: one call/s more every second without a throttle, up to the ceiling.
    await t.sleep(3.0)
    assert limiter.current_rate() == pytest.approx(7.5 + (t.time - 1000.0), abs=1e-6)
    await t.sleep(10.0)
    assert limiter.current_rate() == 15.0
    # The poll budget is untouched by a throttle of the control plane.
    assert limiter.current_rate(poll=True) == limiter.poll_rate


@pytest.mark.anyio
async def test_a_volley_of_429s_from_calls_in_flight_is_one_cut() -> None:
    t = FakeTime()
    limiter = RateLimiter(rate=16, clock=t)
    for _ in range(10):  # ten calls in flight all answer 429 at once
        limiter.throttled()
    assert limiter.current_rate() == pytest.approx(8.0)
    await t.sleep(1.0)
    limiter.throttled()  # a second signal, a second apart: a second cut
    assert limiter.current_rate() == pytest.approx((8.0 + 1.0) / 2)


@pytest.mark.anyio
async def test_the_rate_never_falls_below_its_floor() -> None:
    t = FakeTime()
    limiter = RateLimiter(rate=10, clock=t)
    for _ in range(20):
        limiter.throttled()
        t.time += 1.0
    assert limiter.current_rate() >= 1.0
    assert limiter.current_rate() < 3.0


@pytest.mark.anyio
async def test_a_throttle_with_retry_after_also_pauses_everyone() -> None:
    t = FakeTime()
    limiter = RateLimiter(rate=15, clock=t)
    limiter.throttled(2.0)
    await limiter.acquire()
    assert t.time == pytest.approx(1002.0)
    Background(limiter).throttled(poll=True)
    assert limiter.current_rate(poll=True) == pytest.approx(limiter.poll_rate / 2, rel=0.01)


class LateTime(FakeTime):
    """FakeTime whose first sleep of a chosen length overruns: an event loop busy elsewhere
    woke that caller late."""

    def __init__(self, overrun: float) -> None:
        super().__init__()
        self.overrun = overrun

    async def sleep(self, seconds: float) -> None:
        if seconds > 0 and self.overrun:
            seconds, self.overrun = seconds + self.overrun, 0.0
        await super().sleep(seconds)


@pytest.mark.anyio
async def test_a_caller_woken_late_never_puts_the_window_over_the_quota() -> None:
    """Slots are evenly spaced, but the first sleeper wakes 0.9 s late; without the window check
    it would send together with the fourteen after it and the fifteenth, sixteen calls in one
    second. Every one-second window stays at the quota."""
    t = LateTime(overrun=0.9)
    limiter = RateLimiter(rate=15, clock=t)
    await limiter.acquire()  # the first slot is free; the next caller's sleeps
    stamps: list[float] = [t.time]

    async def caller() -> None:
        await limiter.acquire()
        stamps.append(t.time)

    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(caller)
    stamps.sort()
    assert len(stamps) == 41
    for i, start in enumerate(stamps):
        assert len([s for s in stamps[i:] if s < start + 1.0 - 1e-6]) <= 15


@pytest.mark.anyio
async def test_a_call_counts_in_the_window_until_its_answer() -> None:
    """AWS counts a call when it arrives, which may be as late as its answer: a call made
    through ``call()`` keeps its place in the window until then, so the sixteenth call goes a
    second after the first one's answer, not a second after its send."""
    t = FakeTime()
    limiter = RateLimiter(rate=15, clock=t)
    async with limiter.call():
        await t.sleep(0.3)  # a slow answer: the request may have arrived only now
    answered = t.time
    stamps = []
    for _ in range(15):
        async with limiter.call():
            stamps.append(t.time)
    # The calls after it are spaced by the rate; the fifteenth would be the sixteenth within a
    # second of the first call's arrival (at the latest its answer), so it waits for that.
    assert stamps[0] == answered
    assert stamps[13] == pytest.approx(answered + 13 / 15, rel=SPACING)
    assert stamps[14] == pytest.approx(answered + 1.0, rel=SPACING)  # not answered + 14/15
    assert stamps[14] >= answered + 1.0


@pytest.mark.anyio
async def test_an_unanswered_call_holds_its_place_in_the_window() -> None:
    """A request still in flight may not have reached AWS yet: it frees its place in the
    window only a second after its answer, however long that takes."""
    t = FakeTime()
    limiter = RateLimiter(rate=2, clock=t)
    stamps: list[float] = []

    async def hold(seconds: float) -> None:
        async with limiter.call():
            stamps.append(t.time)
            await t.sleep(seconds)

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold, 5.0)
        await anyio.lowlevel.checkpoint()
        tg.start_soon(hold, 5.0)
        await anyio.lowlevel.checkpoint()
        tg.start_soon(hold, 0.0)
    assert stamps[:2] == pytest.approx([1000.0, 1000.5], rel=SPACING)
    # Both places are held by calls unanswered until 1005 and 1005.5: the third goes a
    # second after the first answer, not a second after the first send.
    assert stamps[2] >= 1006.0
    assert stamps[2] == pytest.approx(1006.0, abs=0.02)
