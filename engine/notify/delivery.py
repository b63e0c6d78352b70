"""Delivering notifications: one owned task drains a bounded queue.

``Notifier.submit`` is called from the engine's ``on_event`` hook, synchronously and never
blocking: a notification that finds the queue full is dropped and counted, so a slow or dead
endpoint can never slow a saga. ``Notifier.run`` (started in the caller's task group) posts
each one, retrying a 5xx answer, a timeout or a connection error with jittered exponential
backoff up to ``RetryPolicy.attempts``; a 4xx answer is not retried (the request itself is
wrong: a revoked Slack URL stays revoked). Every outcome is counted in ``DeliveryCounters``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import anyio

from engine.errors import GlamError
from engine.events import RecordedEvent
from engine.events.function import FunctionOwner
from engine.logs import get_logger
from engine.notify.messages import Notification, notification_for, slack_payload, webhook_payload
from engine.ports import Clock
from engine.tokens import TokenRef

if TYPE_CHECKING:
    from engine.config.model import GlamConfig

log = get_logger("notify")

OUTCOMES = ("delivered", "retried", "rejected", "gave_up", "dropped", "unresolved")


class Poster(Protocol):
    """The HTTP port: POST ``body`` (JSON) to ``url``, with ``headers`` besides the adapter's
    own; the status code. A connection error raises ``OSError`` (the caller bounds the
    time)."""

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard a delivery is tried: ``attempts`` in all, waiting ``base`` seconds doubled
    each time (at most ``cap``), each wait jittered by ±``jitter`` of itself."""

    attempts: int = 5
    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.5
    timeout: float = 10.0

    def delay(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry number ``retry`` (1 for the first)."""
        plain = min(self.cap, self.base * 2.0 ** (retry - 1))
        return max(0.0, plain * (1.0 + self.jitter * (2.0 * rand() - 1.0)))


@dataclass
class DeliveryCounters:
    """Deliveries by sink kind and outcome (delivered, retried, rejected, gave_up, dropped,
    unresolved): what a ``/metrics`` endpoint exposes, e.g. as
    ``glam_notifications_total{kind, outcome}``."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, kind: str, outcome: str) -> None:
        key = (kind, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        return dict(self.counts)


COUNTERS = DeliveryCounters()


@dataclass(frozen=True, slots=True)
class Route:
    """One sink of one repository (``repository`` None: every repository's events)."""

    kind: str  # webhook or slack
    url: TokenRef
    events: frozenset[str]
    repository: str | None = None

    def wants(self, n: Notification) -> bool:
        # An event whose repository is unknown (a deployment resumed after a restart, before
        # its request was seen) goes to every route that wants its kind.
        return n.kind in self.events and (
            self.repository is None or n.repository in (None, self.repository)
        )


def routes_from(config: GlamConfig) -> list[Route]:
    """The routes of every ``[[repository.notify]]`` of a configuration."""
    return [
        Route(kind=n.kind, url=n.url_ref, events=frozenset(n.events), repository=repo.id)
        for repo in config.repository
        for n in repo.notify
    ]


@dataclass(frozen=True, slots=True)
class _Job:
    route: Route
    notification: Notification


class Notifier:
    """Announces the events it is fed to its routes (see the module docstring)."""

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        poster: Poster,
        resolve: Callable[[TokenRef], Awaitable[str]],
        clock: Clock,
        policy: RetryPolicy | None = None,
        public_url: str | None = None,
        counters: DeliveryCounters | None = None,
        queue_size: int = 1000,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.routes = list(routes)
        self._poster = poster
        self._resolve = resolve
        self._clock = clock
        self.policy = policy or RetryPolicy()
        self.public_url = public_url
        self.counters = counters if counters is not None else COUNTERS
        self._rand = rand
        self._send, self._receive = anyio.create_memory_object_stream[_Job](queue_size)
        self.drained = anyio.Event()  # set when run() has delivered everything after close()
        self._owners: dict[str, FunctionOwner] = {}
        self._commits: dict[str, tuple[str, str]] = {}

    def __call__(self, record: RecordedEvent) -> None:
        """The ``on_event`` hook: queue what ``record`` announces, without waiting."""
        self.submit(record)

    def submit(self, record: RecordedEvent) -> None:
        if not self.routes:
            return
        n = notification_for(record, self._owners, self._commits)
        if n is None:
            return
        for route in self.routes:
            if not route.wants(n):
                continue
            try:
                self._send.send_nowait(_Job(route, n))
            except anyio.WouldBlock:
                self.counters.add(route.kind, "dropped")
                log.warning("notification queue full: %s of %s dropped", n.kind, n.stream)

    def close(self) -> None:
        """No more notifications: ``run`` returns once the queue is drained."""
        self._send.close()

    async def run(self) -> None:
        """Deliver until ``close`` (or cancellation)."""
        async with self._receive:
            async for job in self._receive:
                await self._deliver(job)
        self.drained.set()

    def payload(self, route: Route, n: Notification) -> bytes:
        build = slack_payload if route.kind == "slack" else webhook_payload
        return json.dumps(build(n, self.public_url), ensure_ascii=False).encode()

    async def _deliver(self, job: _Job) -> None:
        route, n = job.route, job.notification
        try:
            url = await self._resolve(route.url)
        except GlamError as exc:
            self.counters.add(route.kind, "unresolved")
            log.warning("notification not sent: %s", exc.one_line())
            return
        body = self.payload(route, n)
        outcome, why = await post_retried(
            self._poster,
            url,
            body,
            policy=self.policy,
            clock=self._clock,
            rand=self._rand,
            retried=lambda: self.counters.add(route.kind, "retried"),
        )
        self.counters.add(route.kind, outcome)
        if outcome == "rejected":
            log.warning(
                "%s notification rejected (%s) by the URL in %s: not retried",
                route.kind,
                why,
                route.url.describe(),
            )
        elif outcome == "gave_up":
            log.warning(
                "%s notification of %s given up after %d attempts (%s), URL in %s",
                route.kind,
                n.kind,
                self.policy.attempts,
                why,
                route.url.describe(),
            )


async def post_retried(
    poster: Poster,
    url: str,
    body: bytes,
    *,
    policy: RetryPolicy,
    clock: Clock,
    rand: Callable[[], float] = random.random,
    retried: Callable[[], None] = lambda: None,
    headers: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """POST ``body`` as ``policy`` says: ("delivered", ""), or ("rejected" | "gave_up", why).
    A 5xx, a 429, a timeout or a connection error is retried after a jittered backoff (each
    retry told to ``retried``); any other 4xx is not: the request itself is wrong."""
    why = ""
    for attempt in range(1, policy.attempts + 1):
        try:
            with anyio.fail_after(policy.timeout):
                status = await (
                    poster.post(url, body) if headers is None else poster.post(url, body, headers)
                )
        except (OSError, TimeoutError) as exc:
            why = type(exc).__name__
        else:
            if 200 <= status < 300:
                return "delivered", ""
            why = f"HTTP {status}"
            if status < 500 and status != 429:
                return "rejected", why
        if attempt == policy.attempts:
            break
        retried()
        await clock.sleep(policy.delay(attempt, rand))
    return "gave_up", why
