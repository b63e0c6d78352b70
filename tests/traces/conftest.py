"""A local OpenTelemetry collector stand-in: ``POST /v1/traces`` over HTTP on 127.0.0.1,
each body decoded with opentelemetry-proto, as a collector's OTLP/HTTP receiver does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from aiohttp import web

from engine.traces.otlp import CONTENT_TYPE, decode


@dataclass
class Collector:
    """What the stand-in received: each request's spans and headers. ``statuses`` are the
    answers to give, in order (then 200)."""

    url: str = ""
    requests: list[list[Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    received: anyio.Event = field(default_factory=anyio.Event)  # set at the first trace

    async def handle(self, request: web.Request) -> web.Response:
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            assert request.content_type == CONTENT_TYPE
            body = decode(await request.read())
            self.requests.append(
                [span for rs in body.resource_spans for ss in rs.scope_spans for span in ss.spans]
            )
            self.headers.append(dict(request.headers))
            self.received.set()
        return web.Response(status=status)

    def traces(self) -> dict[bytes, list[Any]]:
        """The spans received, by trace id (a trace sent twice is kept once, as a collector
        that deduplicates by span id would)."""
        out: dict[bytes, dict[bytes, Any]] = {}
        for spans in self.requests:
            for span in spans:
                out.setdefault(span.trace_id, {})[span.span_id] = span
        return {trace: list(spans.values()) for trace, spans in out.items()}


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    found = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/traces"
    try:
        yield found
    finally:
        await runner.cleanup()
