"""The engine's HTTP server: health, Prometheus metrics, the read and operator API under
``/api/v1/``, Gitmoxi's API for teams moving over, and webhook receivers for push triggers.

It runs inside the engine (``EngineConfig.server``, ``glam run --listen``), in the engine's
task group, and stops with it. Only this package imports ``aiohttp.web`` for glam's own
server (the embedded AWS in ``engine.local`` has its own), and only ``engine.server.metrics``
imports prometheus-client. Importing this package loads neither: ``serve`` does.

    app.py        the application, middleware (auth, errors), /healthz /readyz /metrics, serve
    auth.py       bearer tokens, constant-time compare
    state.py      the log folded in memory: views, indexes, the tally for metrics
    metrics.py    the Prometheus registry: the metrics port and the log's numbers
    api.py        /api/v1: functions, deployments, commits, sync, operator commands
    sse.py        /api/v1/events: pages, and text/event-stream resumable by Last-Event-ID
    params.py     what requests carry: pages, cursors, JSON bodies, repositories named
    gitmoxi.py    Gitmoxi's endpoints, fields and statuses
    webhooks.py   /hooks/github, /hooks/gitlab, /hooks/generic
    present.py    how records and rows look as JSON (environment values masked)
    settings.py   where it listens, the token and secret references, limits (pure)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from engine.runtime.engine import Engine
    from engine.server.settings import ServerSettings

__all__ = ["serve"]


async def serve(
    engine: Engine,
    settings: ServerSettings,
    *,
    task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``engine`` over HTTP until cancelled (``engine.server.app.serve``)."""
    from engine.server.app import serve as serve_app

    await serve_app(engine, settings, task_status=task_status)
