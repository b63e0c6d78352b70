"""Templates and static files, read once when the module is imported (never on the event
loop), and what every page is given: the position shown, whether the view is historical,
whether the browser may give operator commands.

A page asked for with ``X-Glam-Fragment: live`` (the live updates of dashboard.js) gets only
its ``live`` block: the same HTML the full page has there.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

from engine.events.catalog import EVENT_CLASSES
from engine.server.dashboard import html
from engine.server.dashboard.board import Board
from engine.server.dashboard.session import signed_in

PAGES = ("overview", "function", "deployment", "event", "sign_in", "error")
STATIC_FILES = ("dashboard.css", "dashboard.js")
FRAGMENT = "X-Glam-Fragment"

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("engine.server.dashboard", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    # Every template is loaded below, at import: a render never reads (or stats) a file on
    # the event loop, for the templates a page extends or imports either.
    auto_reload=False,
)
_TYPES = " ".join(sorted(EVENT_CLASSES))
_STATIC = {
    name: (resources.files("engine.server.dashboard").joinpath("static", name).read_bytes())
    for name in STATIC_FILES
}


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _short(value: str | None, length: int = 12) -> str:
    return (value or "")[:length]


_ENV.filters.update(percent=html.percent, when=_when, short=_short, seconds=html.seconds)
_ENV.globals.update(
    state=html.state,
    fn_link=html.fn_link,
    dep_link=html.dep_link,
    ev_link=html.ev_link,
)
_TEMPLATES = {name: _ENV.get_template(f"{name}.html") for name in PAGES}
for _shared in ("base.html", "macros.html"):
    _ENV.get_template(_shared)


@dataclass(frozen=True, slots=True)
class Moment:
    """The position a page shows: ``at`` (None: live), the log's end, and when the event at
    the position shown was recorded."""

    at: int | None
    position: int
    last: int
    recorded_at: datetime | None

    @property
    def historical(self) -> bool:
        return self.at is not None


async def moment_of(board: Board, at: int | None, position: int) -> Moment:
    recorded_at = None
    if position > 0:
        found = await board.store.read_all(position, limit=1)
        recorded_at = found[0].recorded_at if found else None
    return Moment(at, position, board.position, recorded_at)


async def render(
    request: web.Request,
    board: Board,
    page: str,
    moment: Moment | None,
    *,
    status: int = 200,
    title: str,
    **values: Any,
) -> web.Response:
    """The page (or its live block) as an HTML answer."""
    template = _TEMPLATES[page]
    expected = await board.auth.expected() if board.writable else None
    context = {
        "title": title,
        "moment": moment,
        "writable": board.writable and board.engine is not None,
        "signed_in": signed_in(request, expected),
        "read_only": board.engine is None,
        "event_types": _TYPES,
        "path": request.path,
        "query": request.query,
        "notice": values.pop("notice", None),
        "problem": values.pop("problem", None),
        **values,
    }
    if request.headers.get(FRAGMENT) == "live":
        ctx = template.new_context(context)
        body = "".join(template.blocks["live"](ctx))
    else:
        body = template.render(context)
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


def static_answer(name: str) -> web.Response:
    body = _STATIC.get(name)
    if body is None:
        raise web.HTTPNotFound()
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return web.Response(
        body=body,
        content_type=kind,
        charset="utf-8",
        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
    )
