"""The trace exporter: follows the log and sends each finished deployment to an OTLP/HTTP
endpoint, once.

It reads the log, never the sagas: a ``DeploymentFinished`` makes it read the function's
stream, build that deployment's spans (``engine.traces.build``) and POST them
(``engine.traces.otlp``), retried with jittered backoff as notifications are
(``engine.notify.delivery.post_retried``). Its checkpoint, the position of the last
deployment it is done with, is stored as the views' are (``ViewStore``, projection
``traces``), after each one: a restart goes on after it, so nothing is sent twice; a crash
between a POST and its checkpoint sends that deployment again, under the same trace and span
ids, which a collector takes as the same spans. Turned on for the first time, it starts at
the log's end: the deployments finished before are not sent.

A slow or dead collector never slows a deployment: the exporter is a task of its own that
only reads the log. A deployment given up on (after ``RetryPolicy.attempts``) or refused
(a 4xx) is counted and logged in one line, and the exporter goes on; the headers (the
collector's credentials) are resolved from their references at each export and never logged.
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from engine.errors import GlamError, UsageError
from engine.events import RecordedEvent
from engine.events.function import DeploymentFinished, DeploymentRequested
from engine.logs import get_logger
from engine.notify.delivery import DeliveryCounters, Poster, RetryPolicy, post_retried
from engine.ports import Clock, ProjectionStore
from engine.tokens import TokenRef
from engine.traces.build import Span, deployment_trace
from engine.traces.otlp import encode

if TYPE_CHECKING:
    from engine.config.model import TracesSection

log = get_logger("traces")

PROJECTION = "traces"
KIND = "otlp"  # the counters' sink kind: glam_notifications_total has webhook and slack
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
CATCH_UP_SECONDS = 30.0  # how long ``glam run --once`` may still export before it exits


@dataclass(frozen=True, slots=True)
class TraceSettings:
    """Where traces go: an OTLP/HTTP traces endpoint (``http://host:4318/v1/traces``) and
    the headers sent with each export, by name, each value a reference (an environment
    variable, a Secrets Manager or SSM ARN: an API key is a secret)."""

    endpoint: str
    headers: tuple[tuple[str, TokenRef], ...] = ()
    policy: RetryPolicy = field(default_factory=RetryPolicy)


# Exports by outcome (delivered, retried, rejected, gave_up, unresolved, error), under the
# kind "otlp": apart from the notifications' counters.
COUNTERS = DeliveryCounters()


def settings_from(
    flag: str | None,
    section: TracesSection | None = None,
    environ: Mapping[str, str] = os.environ,
) -> TraceSettings | None:
    """Where ``glam run`` sends traces: ``--otlp-endpoint``, else
    ``$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, else the file's ``[traces]``; None (off) when
    none names an endpoint. The headers and attempts come from the file."""
    from engine.config.model import TracesSection, check_otlp_endpoint

    section = section or TracesSection()
    endpoint = flag or environ.get(ENDPOINT_ENV) or section.otlp_endpoint
    if not endpoint:
        return None
    try:
        check_otlp_endpoint(endpoint)
    except ValueError as exc:
        hint = "e.g. --otlp-endpoint http://127.0.0.1:4318/v1/traces"
        raise UsageError(str(exc), hint=hint) from None
    return TraceSettings(
        endpoint=endpoint,
        headers=section.header_refs,
        policy=RetryPolicy(attempts=section.attempts),
    )


async def open_exporter(
    stack: AsyncExitStack,
    store: ProjectionStore,
    settings: TraceSettings,
    *,
    resolve: Callable[[TokenRef], Awaitable[str]],
    clock: Clock,
) -> TraceExporter:
    """The engine's exporter, its HTTP session closed with ``stack``. ``ConfigError`` naming
    the extra to install when OTLP cannot be encoded here, before anything runs."""
    from engine.notify.http import AiohttpPoster
    from engine.traces.otlp import CONTENT_TYPE, available

    await anyio.to_thread.run_sync(available)  # off the loop: an import reads files
    poster = await stack.enter_async_context(AiohttpPoster(CONTENT_TYPE))
    return TraceExporter(store, settings, poster=poster, resolve=resolve, clock=clock)


class TraceExporter:
    """Sends finished deployments' traces (see the module docstring). ``run`` follows the
    log until cancelled; ``catch_up`` sends what the log holds now and returns."""

    def __init__(
        self,
        store: ProjectionStore,
        settings: TraceSettings,
        *,
        poster: Poster,
        resolve: Callable[[TokenRef], Awaitable[str]],
        clock: Clock,
        counters: DeliveryCounters | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self.settings = settings
        self._poster = poster
        self._resolve = resolve
        self._clock = clock
        self.counters = counters if counters is not None else COUNTERS
        self._rand = rand
        self.position: int | None = None  # the checkpoint, once loaded

    async def start(self) -> int:
        """The checkpoint: stored, or (the first time) the log's end, then stored."""
        if self.position is None:
            position, _ = await self._store.load_views(PROJECTION)
            if position == 0:
                position = await self._store.last_position()
                await self._store.save_views(PROJECTION, position, {})
            self.position = position
        return self.position

    async def run(self) -> None:
        """Follow the log, exporting each deployment as it finishes."""
        async for record in self._store.follow(await self.start() + 1):
            await self.take(record)

    async def catch_up(self, within: float = CATCH_UP_SECONDS) -> None:
        """Export every deployment finished in the log now (``glam run --once``'s end), for
        ``within`` seconds at most: what is left then is sent at the next start."""
        position = await self.start()
        with anyio.move_on_after(within) as scope:
            while batch := await self._store.read_all(position + 1, limit=500):
                for record in batch:
                    await self.take(record)
                position = batch[-1].position
        if scope.cancelled_caught:
            log.warning(
                "traces after log position %d not sent within %gs: sent at the next start",
                self.position,
                within,
            )

    async def take(self, record: RecordedEvent) -> None:
        if isinstance(record.event, DeploymentFinished):
            try:
                await self.export(record)
            except Exception as exc:
                # A log this glam cannot make a trace of must not stop the engine: that one
                # deployment goes unexported, and the line says which.
                self.counters.add(KIND, "error")
                log.warning(
                    "trace of deployment %s not built: %s: %s",
                    record.event.deployment_id,
                    type(exc).__name__,
                    str(exc)[:200],
                )
            await self._store.save_views(PROJECTION, record.position, {})
        self.position = record.position

    async def export(self, finished: RecordedEvent) -> None:
        """Send the trace of the deployment ``finished`` ends; the outcome is counted."""
        spans = await self.spans(finished)
        if not spans:
            return
        try:
            headers = {name: await self._resolve(ref) for name, ref in self.settings.headers}
        except GlamError as exc:
            self.counters.add(KIND, "unresolved")
            log.warning("trace of %s not sent: %s", spans[0].name, exc.one_line())
            return
        outcome, why = await post_retried(
            self._poster,
            self.settings.endpoint,
            encode(spans),
            policy=self.settings.policy,
            clock=self._clock,
            rand=self._rand,
            retried=lambda: self.counters.add(KIND, "retried"),
            headers=headers,
        )
        self.counters.add(KIND, outcome)
        if outcome != "delivered":
            log.warning(
                "trace of %s (deployment %s) %s (%s) by the OTLP endpoint",
                spans[0].name,
                spans[0].attributes.get("glam.deployment.id"),
                "refused" if outcome == "rejected" else "given up on",
                why,
            )

    async def spans(self, finished: RecordedEvent) -> list[Span]:
        """The spans of the deployment ``finished`` ends, from its stream."""
        event = finished.event
        assert isinstance(event, DeploymentFinished)
        records = _deployment(
            await self._store.read_stream(finished.stream), event.deployment_id, finished
        )
        return deployment_trace(finished.stream, records) if records else []


def _deployment(
    stream: list[RecordedEvent], deployment_id: str, finished: RecordedEvent
) -> list[RecordedEvent]:
    """The records of one deployment: its request to its end, its own events only (a newer
    request landing meanwhile is another deployment's)."""
    start = next(
        (
            i
            for i, r in enumerate(stream)
            if isinstance(r.event, DeploymentRequested) and r.event.deployment_id == deployment_id
        ),
        None,
    )
    if start is None:
        return []  # a log cut at a snapshot, or edited: nothing to build a trace from
    # Versions count from 1: the finishing record is stream[finished.version - 1].
    return [r for r in stream[start : finished.version] if _deployment_of(r) == deployment_id]


def _deployment_of(record: RecordedEvent) -> str | None:
    own: object = getattr(record.event, "deployment_id", None)
    return own if isinstance(own, str) else record.meta.deployment_id
