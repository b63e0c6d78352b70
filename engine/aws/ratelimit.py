"""One rate limiter per AWS service, account and region, shared by every saga.

Lambda's control plane allows about 15 requests/second per account and region for all mutating
APIs together, and GetFunction has a budget of its own. Each saga pacing itself would multiply
the rate by the number of sagas, so every Lambda call of one account+region goes through the
same :class:`RateLimiter` (see :func:`limiter_for`). Other services glam calls (ELB and API
Gateway, for event sources) have quotas of their own: each gets a limiter of its own, so their
calls neither spend Lambda's budget nor wait for it.

The limiter is a pair of reservation-based token buckets (GCRA): an ``acquire`` reserves the
next free slot synchronously and then sleeps until it. Reservation happens without an await,
so concurrent callers on one event loop are served in arrival order and never over-issue, and
no lock is needed. ``retry_after`` (AWS said "slow down, wait N seconds") pauses everyone:
slots not yet started are pushed past the pause.

The ceiling is the quota itself (``rate``, 15/s for Lambda's control plane), and every call
counts, reads included: GetAlias, ListVersionsByFunction and GetFunctionConfiguration spend the
same budget as the updates (only GetFunction, on its own quota, has a bucket of its own). Two
guards keep glam at the quota without crossing it:

- a window check at send time: no call is sent while ``rate`` calls may have reached AWS within
  the last second. A caller the event loop woke late (a busy loop delays one call, not the ones
  after it) cannot crowd the window of the slots after its own. AWS counts a call when it
  *arrives*, and the way there takes a varying time (the event loop, signing, the connection,
  the network: 2 to 35 ms on the embedded AWS, more on a loaded machine), so evenly spaced
  sends at exactly the quota still arrive sixteen in some second. A call made through
  :meth:`RateLimiter.call` therefore stays in the window until its answer came back, the
  latest moment it can have arrived: the sixteenth call goes only one second after the answer
  to the first. That costs one round trip per ``rate`` calls (15/s becomes 15 per 1.01 s at a
  10 ms round trip) and holds however late a request travels; a call still unanswered keeps
  its place in the window. A bare :meth:`RateLimiter.acquire` counts its send time only;
- AIMD when AWS throttles anyway (another tool spends the same account's quota): ``throttled``
  halves the rate (multiplicative decrease, at most once per ``_CUT_SPACING`` so that a volley
  of 429s from calls already in flight counts as one signal) and honours ``Retry-After``; the
  rate then climbs back by ``increase`` calls/s every second without a throttle (additive
  increase) up to the ceiling. glam shares an account with other tools and converges on what
  is left, instead of failing.

Reads no deployment waits on (the drift sweep, engine.drift) go through a :class:`Background`
lane of the same limiter: they take at most ``share`` of its rate, and only a slot no
deployment has reserved, so they never delay a deployment by more than the one slot each
takes and stop altogether while deployments keep the limiter busy.

Time comes from an ``engine.ports.Clock`` (``clock``), so unit tests drive it by hand and
integration tests on a jumping test clock never sleep.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Protocol

from engine.runtime.clock import SYSTEM_CLOCK

if TYPE_CHECKING:
    from engine.ports import Clock

DEFAULT_RATE = 15.0  # control-plane calls per second: Lambda's quota per account and region
DEFAULT_POLL_RATE = 50.0  # GetFunction polls per second, half of its own ~100/s quota

LAMBDA = "lambda"
# Calls per second of any other service, about half of the control-plane quotas of the ones
# event sources use (ELB's register/describe calls and API Gateway's management API both allow
# about 10/s per account and region), so glam leaves room for everything else in the account.
# ``LimiterRegistry(service_rates=...)`` sets another rate for a service.
DEFAULT_SERVICE_RATE = 5.0

# The share of a limiter's rates the background lane may take (drift reads).
DEFAULT_BACKGROUND_SHARE = 0.2

# AIMD (module docstring): a throttle multiplies the rate by DECREASE (not below FLOOR of the
# ceiling); each second without one adds INCREASE calls/s back.
DEFAULT_DECREASE = 0.5
DEFAULT_INCREASE = 1.0
_FLOOR = 0.1
# Two cuts at least this far apart (seconds): the calls already in flight when AWS first said
# "slow down" answer 429 too, and that is still one signal.
_CUT_SPACING = 1.0
# The window of the send-time check: AWS's second, and a microsecond more, so that the rounding
# of the slots' sums (fifteen times 1/15 is a hair under one) never lets a sixteenth call in.
# The slots are spaced by _WINDOW / rate, so that evenly spaced calls never wait for the check.
_WINDOW = 1.0 + 1e-6
# How soon a call that waits on the window looks again while the call it waits for is still
# unanswered (its answer, not the clock, frees the window).
_RECHECK = 0.01


class Pacer(Protocol):
    """What an adapter paces its calls with: a :class:`RateLimiter` or a :class:`Background`
    lane of one."""

    async def acquire(self, *, poll: bool = False) -> None:
        """Wait for this caller's turn (``poll``: on the GetFunction budget)."""
        ...

    def retry_after(self, seconds: float) -> None:
        """AWS asked to wait ``seconds``: every caller of this account+region pauses."""
        ...

    def throttled(self, retry_after: float | None = None, *, poll: bool = False) -> None:
        """AWS throttled a call (``poll``: a GetFunction): slow down, and pause everyone for
        ``retry_after`` seconds when AWS said how long."""
        ...

    def call(self, *, poll: bool = False) -> AbstractAsyncContextManager[None]:
        """``async with pacer.call():`` around one request: its turn, then the request, which
        counts in the window until it is answered (module docstring)."""
        ...


@dataclass(slots=True)
class _Sent:
    """One call in the window: when it was sent, and when its answer came (None: not yet)."""

    at: float
    answered: float | None = None


@dataclass
class _Bucket:
    """Generic cell rate algorithm: ``tat`` is the theoretical arrival time of the next call.

    ``ceiling`` is the configured rate; the rate in force is lower for a while after a
    throttle (``cut``) and climbs back by ``increase`` calls/s per second."""

    ceiling: float
    burst: int
    tat: float = 0.0
    increase: float = DEFAULT_INCREASE
    _cut_to: float = field(init=False, default=0.0)
    _cut_at: float = field(init=False, default=float("-inf"))
    sent: list[_Sent] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._cut_to = self.ceiling

    def rate(self, now: float) -> float:
        """The rate in force at ``now``."""
        if self._cut_to >= self.ceiling:
            return self.ceiling
        regained = self._cut_to + self.increase * max(0.0, now - self._cut_at)
        return min(self.ceiling, regained)

    def reserve(self, now: float) -> float:
        """Reserve a slot; return the absolute time at which it may be used."""
        interval = _WINDOW / self.rate(now)
        tat = max(self.tat, now) + interval
        self.tat = tat
        return max(now, tat - self.burst * interval)

    def push_back(self, until: float) -> None:
        # After a pause the next slot starts at ``until``; no burst of saved-up credit either.
        self.tat = max(self.tat, until + (self.burst - 1) * _WINDOW / self.rate(until))

    def cut(self, now: float, factor: float) -> bool:
        """Multiplicative decrease; False when a cut was made less than ``_CUT_SPACING`` ago."""
        if now - self._cut_at < _CUT_SPACING:
            return False
        self._cut_to = max(self.ceiling * _FLOOR, self.rate(now) * factor)
        self._cut_at = now
        return True

    def window_wait(self, now: float) -> float:
        """Seconds until one more call keeps every ``_WINDOW`` within the ceiling (0: now).

        A call counts from its send until ``_WINDOW`` after its answer (until then, were it
        still unanswered), the latest it can have reached AWS."""
        limit = max(1, math.floor(self.ceiling + 1e-9)) + self.burst - 1
        # Kept while it may still count: the same sum as the wait below.
        self.sent = sent = [
            s for s in self.sent if s.answered is None or s.answered + _WINDOW > now
        ]
        if len(sent) < limit:
            return 0.0
        answered = sorted(s.answered for s in sent if s.answered is not None)
        freed = len(sent) - limit  # the one whose leaving makes room: the oldest answer first
        if freed >= len(answered):
            return _RECHECK  # room comes only with an answer still awaited
        return answered[freed] + _WINDOW - now


@dataclass
class RateLimiter:
    """Paces the AWS calls of one account and region.

    ``rate``: mutating and other calls per second. ``poll_rate``: GetFunction polls per second,
    budgeted apart (``acquire(poll=True)``). ``burst``: calls allowed back to back before the
    pacing starts (1 = evenly spaced, which keeps any one-second window within the rate).
    """

    rate: float = DEFAULT_RATE
    poll_rate: float = DEFAULT_POLL_RATE
    burst: int = 1
    clock: Clock = SYSTEM_CLOCK
    decrease: float = DEFAULT_DECREASE
    increase: float = DEFAULT_INCREASE
    # Told how long each call that had to wait waited (the engine's metrics).
    on_wait: Callable[[float], None] | None = field(default=None, repr=False)
    _calls: _Bucket = field(init=False, repr=False)
    _polls: _Bucket = field(init=False, repr=False)
    _paused_until: float = field(init=False, default=float("-inf"), repr=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.poll_rate <= 0 or self.burst < 1:
            raise ValueError("rates must be positive and burst at least 1")
        if not 0.0 < self.decrease < 1.0 or self.increase <= 0:
            raise ValueError("decrease is a fraction in (0, 1) and increase positive")
        self._calls = _Bucket(self.rate, self.burst, float("-inf"), self.increase)
        self._polls = _Bucket(self.poll_rate, self.burst, float("-inf"), self.increase)

    async def acquire(self, *, poll: bool = False) -> None:
        """Wait for this caller's turn. ``poll=True`` for GetFunction, which has its own budget.
        The call counts in the window from now (:meth:`call` counts it until its answer)."""
        sent = await self._turn(poll)
        sent.answered = sent.at

    @asynccontextmanager
    async def call(self, *, poll: bool = False) -> AsyncIterator[None]:
        """``async with limiter.call():`` around one request: :meth:`acquire`, and the call
        counts in the window until the block ends, its answer (or failure) received."""
        sent = await self._turn(poll)
        try:
            yield
        finally:
            sent.answered = self.clock.monotonic()

    async def _turn(self, poll: bool) -> _Sent:
        bucket = self._polls if poll else self._calls
        started = self.clock.monotonic()
        while True:
            now = self.clock.monotonic()
            if now < self._paused_until:
                await self.clock.sleep(self._paused_until - now)
                continue
            at = bucket.reserve(now)
            # Through the clock even when there is no wait (a checkpoint): a test clock
            # learns from it which tasks are making calls, and holds time still for them.
            await self.clock.sleep(max(0.0, at - now))
            # A Retry-After that arrived while this caller slept applies to it as well: the
            # slot is forfeited and a new one reserved after the pause.
            if self.clock.monotonic() < self._paused_until:
                continue
            # Woken late, or the calls of the last second answered late: it waits until the
            # window has room (no await between the check and the send's record).
            while (late := bucket.window_wait(self.clock.monotonic())) > 0:
                await self.clock.sleep(late)
            if self.clock.monotonic() < self._paused_until:
                continue
            sent = _Sent(self.clock.monotonic())
            bucket.sent.append(sent)
            waited = sent.at - started
            if waited > 0 and self.on_wait is not None:
                self.on_wait(waited)
            return sent

    def retry_after(self, seconds: float) -> None:
        """AWS asked to wait ``seconds``: every caller of this account+region pauses."""
        until = self.clock.monotonic() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self._calls.push_back(until)
            self._polls.push_back(until)

    def throttled(self, retry_after: float | None = None, *, poll: bool = False) -> None:
        """AWS throttled a call: the rate of its budget is cut (module docstring, AIMD) and,
        when AWS said how long to wait, everyone pauses that long."""
        bucket = self._polls if poll else self._calls
        bucket.cut(self.clock.monotonic(), self.decrease)
        if retry_after:
            self.retry_after(retry_after)

    def current_rate(self, *, poll: bool = False) -> float:
        """Calls per second in force now: the ceiling, or less for a while after a throttle."""
        return (self._polls if poll else self._calls).rate(self.clock.monotonic())

    @property
    def paused_until(self) -> float:
        """Monotonic time until which calls are held back (``-inf`` when not paused)."""
        return self._paused_until

    def busy_for(self, *, poll: bool = False) -> float:
        """Seconds until no call has a slot reserved ahead on this budget and no pause holds:
        0 when a call now would not wait behind anyone."""
        now = self.clock.monotonic()
        bucket = self._polls if poll else self._calls
        return max(0.0, bucket.tat - now, self._paused_until - now)


class Background:
    """The low-priority lane of ``limiter`` (module docstring): at most ``share`` of its rates,
    and each call only once no other call has a slot reserved ahead of it, so deployments are
    served first. Pauses (``retry_after``) are the limiter's, for everyone."""

    def __init__(self, limiter: RateLimiter, share: float = DEFAULT_BACKGROUND_SHARE) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError("the background share is a fraction in (0, 1]")
        self.limiter = limiter
        self.share = share
        self._calls = _Bucket(limiter.rate * share, 1, float("-inf"))
        self._polls = _Bucket(limiter.poll_rate * share, 1, float("-inf"))

    async def acquire(self, *, poll: bool = False) -> None:
        """Wait for a slot of this lane's share, then for the limiter to be free, then take
        the limiter's next slot (reserved without an await: no call slips in between)."""
        await self._share(poll)
        await self.limiter.acquire(poll=poll)

    @asynccontextmanager
    async def call(self, *, poll: bool = False) -> AsyncIterator[None]:
        """:meth:`acquire`'s turn for one request that counts until its answer."""
        await self._share(poll)
        async with self.limiter.call(poll=poll):
            yield

    async def _share(self, poll: bool) -> None:
        # This lane's slot, then a limiter with nobody waiting ahead: no await between the
        # last check and the limiter's reservation.
        limiter = self.limiter
        clock = limiter.clock
        at = (self._polls if poll else self._calls).reserve(clock.monotonic())
        while (wait := max(at - clock.monotonic(), limiter.busy_for(poll=poll))) > 0:
            await clock.sleep(wait)

    def retry_after(self, seconds: float) -> None:
        self.limiter.retry_after(seconds)

    def throttled(self, retry_after: float | None = None, *, poll: bool = False) -> None:
        self.limiter.throttled(retry_after, poll=poll)


class LimiterRegistry:
    """The limiters of a process, one per (account, region, service), created on first use.

    ``rate`` and ``poll_rate`` are Lambda's; ``account_rates`` sets Lambda's ``rate`` of some
    accounts (in each of their regions); ``service_rates`` sets the rates of other services
    (by botocore name; :data:`DEFAULT_SERVICE_RATE` for the rest).
    """

    def __init__(
        self,
        *,
        rate: float = DEFAULT_RATE,
        poll_rate: float = DEFAULT_POLL_RATE,
        account_rates: Mapping[str, float] | None = None,
        service_rates: Mapping[str, float] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        on_wait: Callable[[str, float], None] | None = None,
    ) -> None:
        self.rate = rate
        self._on_wait = on_wait  # (service, seconds waited), for the engine's metrics
        self.poll_rate = poll_rate
        self.account_rates = dict(account_rates or {})
        self.service_rates = dict(service_rates or {})
        self._clock = clock
        self._limiters: dict[tuple[str, str, str], RateLimiter] = {}

    def get(self, account: str, region: str, service: str = LAMBDA) -> RateLimiter:
        """The shared limiter of ``service`` (botocore's name: "lambda", "elbv2",
        "apigatewayv2") for ``account`` in ``region``."""
        key = (account, region, service)
        limiter = self._limiters.get(key)
        if limiter is None:
            if service == LAMBDA:
                rate, poll_rate = self.account_rates.get(account, self.rate), self.poll_rate
            else:
                # Only Lambda's GetFunction has a poll budget; other services use one bucket.
                rate = self.service_rates.get(service, DEFAULT_SERVICE_RATE)
                poll_rate = rate
            on_wait = self._on_wait
            limiter = RateLimiter(
                rate=rate,
                poll_rate=poll_rate,
                clock=self._clock,
                on_wait=None if on_wait is None else partial(on_wait, service),
            )
            self._limiters[key] = limiter
        return limiter

    def __len__(self) -> int:
        return len(self._limiters)


_DEFAULT_REGISTRY = LimiterRegistry()


def limiter_for(account: str, region: str, service: str = LAMBDA) -> RateLimiter:
    """The process-wide limiter of ``service`` for ``account`` in ``region`` (default rates)."""
    return _DEFAULT_REGISTRY.get(account, region, service)
