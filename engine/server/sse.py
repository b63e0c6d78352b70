"""``GET /api/v1/events``: the log, a page at a time, or followed as a server-sent event stream.

    GET /api/v1/events?since=120&limit=100           {"events": [...], "next_since": 220}
    GET /api/v1/events?since=120   Accept: text/event-stream
        id: 121                                      the event's log position
        event: StepStarted                           its type
        data: {"position": 121, "stream": ..., ...}  as in a page

``since`` is a log position: events after it are given (0, the default, is the whole log).
A stream resumes where it broke off: a client that reconnects sends ``Last-Event-ID`` (every
EventSource does), and the stream goes on after that position, so nothing is lost or given
twice. ``stream`` (a stream name, or a function's name) and ``type`` (repeatable) filter both
forms; an idle stream gets a ``: keep-alive`` comment every ``heartbeat`` seconds, so proxies
keep it open and a client that went away is noticed. Events are read from the store itself,
so a stream sees exactly the log; the server's fold only says when there is more to read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from engine.errors import UsageError
from engine.events import RecordedEvent
from engine.events.catalog import EVENT_CLASSES
from engine.ports import EventStore
from engine.server.app import context
from engine.server.auth import access
from engine.server.present import event_json
from engine.server.state import LogState

API = "/api/v1"
PAGE = 100
MAX_PAGE = 1000
_READ = 500  # events read from the store at a time while streaming


def _position(text: str | None, name: str) -> int:
    if text is None or text.strip() == "":
        return 0
    if not text.strip().isdigit():
        raise UsageError(f"{name} must be a log position (a number)", hint=f"e.g. {name}=0")
    return int(text.strip())


def event_filter(request: web.Request) -> Callable[[RecordedEvent], bool]:
    """The events the request's ``stream`` and ``type`` parameters keep."""
    stream = request.query.get("stream")
    types = set(request.query.getall("type", []))
    unknown = sorted(types - set(EVENT_CLASSES))
    if unknown:
        raise UsageError(
            f"unknown event type {', '.join(unknown)}",
            hint="docs/events.md lists every type",
        )

    def keep(record: RecordedEvent) -> bool:
        if types and record.type not in types:
            return False
        if stream is None:
            return True
        return record.stream == stream or (
            record.stream.startswith("fn:") and record.stream.rsplit(":", 1)[-1] == stream
        )

    return keep


@access("read")
async def events(request: web.Request) -> web.StreamResponse:
    since = _position(request.query.get("since"), "since")
    keep = event_filter(request)
    if "text/event-stream" in request.headers.get("Accept", ""):
        resume = request.headers.get("Last-Event-ID")
        if resume is not None and resume.strip():
            since = _position(resume, "Last-Event-ID")
        ctx = context(request)
        return await stream(
            request, ctx.engine.store, ctx.state, since, keep, heartbeat=ctx.settings.heartbeat
        )
    limit_text = request.query.get("limit")
    limit = PAGE if limit_text is None else _position(limit_text, "limit")
    if limit < 1:
        raise UsageError("limit must be at least 1")
    limit = min(limit, MAX_PAGE)
    store = context(request).engine.store
    shown: list[dict[str, Any]] = []
    position = since
    # Read on until the page is full or the log ends: filters may skip many events.
    while len(shown) < limit:
        batch = await store.read_all(position + 1, limit=_READ)
        for record in batch:
            position = record.position
            if keep(record):
                shown.append(event_json(record))
                if len(shown) == limit:
                    break
        if len(batch) < _READ:
            break
    return web.json_response({"events": shown, "next_since": position})


def _frame(record: RecordedEvent) -> bytes:
    data = json.dumps(event_json(record), separators=(",", ":"), ensure_ascii=False)
    return f"id: {record.position}\nevent: {record.type}\ndata: {data}\n\n".encode()


async def stream(
    request: web.Request,
    store: EventStore,
    state: LogState,
    since: int,
    keep: Callable[[RecordedEvent], bool],
    *,
    heartbeat: float,
) -> web.StreamResponse:
    """Answer ``request`` with the events of ``store`` after ``since`` that ``keep`` keeps, as
    a server-sent event stream, until the client goes or ``state`` closes (the dashboard's
    stream is this one too)."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # a reverse proxy must pass each event on at once
        }
    )
    await response.prepare(request)
    position = since
    try:
        await response.write(b"retry: 2000\n\n")
        while not state.closed:
            batch = await store.read_all(position + 1, limit=_READ)
            for record in batch:
                position = record.position
                if keep(record):
                    await response.write(_frame(record))
            if len(batch) == _READ:
                continue
            if await state.wait_beyond(position, heartbeat):
                continue
            if state.stopping():
                break
            await response.write(b": keep-alive\n\n")
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away: nothing to clean up
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{API}/events", events)
