"""The web dashboard: HTML pages rendered on the server from the log, a little vanilla
JavaScript (vendored here, no build step, nothing from a CDN) that follows the log live.

It is served by the engine's server (``glam run --listen``: ``add_routes``) and on its own
by ``glam dashboard --db PATH`` (``serve_log``), which only reads a log, next to a running
engine or after it. docs/dashboard.md describes the pages.

    GET  /dashboard/                        every function, branch and held delete
    GET  /dashboard/functions/{stream}      the weight chart, sources, history, commits
    GET  /dashboard/deployments/{id}        the timeline, AWS calls and their timings
    GET  /dashboard/events/{position}       one event of the log, as the API shows it
    GET  /dashboard/stream                  the log, as server-sent events (live updates)
    POST /dashboard/functions/{stream}/{promote|abort|retry}   operator commands
    POST /dashboard/commits/{sha}/allow_deletes
    GET|POST /dashboard/sign-in, POST /dashboard/sign-out

Every page takes ``?at=POSITION`` (or an ISO-8601 time) and then shows the log as it was
after that event (``board``). Reads need the API token only when the server asks for one on
reads (``--auth-reads``): a bearer token or the sign-in cookie (``session``).

    board.py     the views now or at a position; the facts no view keeps, indexed
    pages.py     the read pages          actions.py   the buttons, signing in
    chart.py     the SVG weight chart    render.py    templates, static files, page context
    session.py   the sign-in cookie
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
from aiohttp import web

from engine.errors import ConfigError, GlamError
from engine.logs import get_logger
from engine.server.app import CONTEXT, healthz, status_of
from engine.server.auth import Auth, access
from engine.server.dashboard import actions, pages
from engine.server.dashboard.board import Board
from engine.server.dashboard.render import moment_of, render, static_answer
from engine.server.dashboard.session import signed_in
from engine.server.sse import event_filter, stream
from engine.server.state import LogState

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from engine.ports import Clock, ProjectionStore
    from engine.tokens import TokenRef

__all__ = ["Board", "add_routes", "dashboard_url", "make_log_app", "read_only_auth", "serve_log"]

log = get_logger("server")
BOARD: web.AppKey[Board] = web.AppKey("glam-dashboard", Board)
PREFIX = "/dashboard"
LOAD_WAIT = 10.0  # seconds a page waits for the first read of the log

Page = Callable[[web.Request, Board], Awaitable[web.StreamResponse]]


Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _page(handler: Page, *, write: bool = False) -> Route:
    """A route of the dashboard: its own read check (a browser sends a cookie, not a bearer
    header), and a ``GlamError`` shown as a page saying what to do."""

    # The server's middleware lets it through; the dashboard checks the token itself.
    @access("open")
    async def route(request: web.Request) -> web.StreamResponse:
        board = request.app[BOARD]
        public = request.path in (f"{PREFIX}/sign-in",) or request.path.startswith(
            f"{PREFIX}/static/"
        )
        if not write and not public and board.auth.needs_token("read"):
            expected = await board.auth.expected()
            if not signed_in(request, expected):
                raise web.HTTPSeeOther(f"{PREFIX}/sign-in?next={request.path_qs}")
        if not public:
            # A page served while the log is first read would show an empty or partial
            # log: wait for the read (a long log: the page shows the position it reached).
            await board.state.until_loaded(LOAD_WAIT)
        try:
            return await handler(request, board)
        except GlamError as exc:
            status = status_of(exc)
            if status >= 500:
                log.error("%s %s: %s", request.method, request.path, exc.one_line())
            moment = await moment_of(board, None, board.position)
            return await render(
                request,
                board,
                "error",
                moment,
                status=status,
                title="glam",
                message=exc.one_line(),
            )

    return route


async def _overview(request: web.Request, board: Board) -> web.StreamResponse:
    return await pages.overview(request, board)


async def _function(request: web.Request, board: Board) -> web.StreamResponse:
    return await pages.function(request, board, request.match_info["stream"])


async def _deployment(request: web.Request, board: Board) -> web.StreamResponse:
    return await pages.deployment(request, board, request.match_info["deployment_id"])


async def _event(request: web.Request, board: Board) -> web.StreamResponse:
    return await pages.event(request, board, int(request.match_info["position"]))


async def _function_command(request: web.Request, board: Board) -> web.StreamResponse:
    info = request.match_info
    return await actions.command(request, board, info["command"], info["stream"])


async def _allow_deletes(request: web.Request, board: Board) -> web.StreamResponse:
    return await actions.command(request, board, "allow_deletes", request.match_info["sha"])


async def _static(request: web.Request, board: Board) -> web.StreamResponse:
    return static_answer(request.match_info["name"])


async def _stream(request: web.Request, board: Board) -> web.StreamResponse:
    """The log after ``since`` (or ``Last-Event-ID``), as ``GET /api/v1/events`` streams it."""
    text = request.headers.get("Last-Event-ID") or request.query.get("since") or ""
    since = int(text) if text.strip().isdigit() else board.position
    keep = event_filter(request)
    return await stream(request, board.store, board.state, since, keep, heartbeat=board.heartbeat)


@access("open")
async def _home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{PREFIX}/")


def _routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", _home)
    r.add_get(PREFIX, _home)
    r.add_get(f"{PREFIX}/", _page(_overview))
    r.add_get(f"{PREFIX}/functions/{{stream}}", _page(_function))
    r.add_get(f"{PREFIX}/deployments/{{deployment_id}}", _page(_deployment))
    r.add_get(f"{PREFIX}/events/{{position:\\d+}}", _page(_event))
    r.add_get(f"{PREFIX}/stream", _page(_stream))
    r.add_get(f"{PREFIX}/static/{{name}}", _page(_static))
    r.add_get(f"{PREFIX}/sign-in", _page(actions.sign_in_page))
    r.add_post(f"{PREFIX}/sign-in", _page(actions.sign_in_post, write=True))
    r.add_post(f"{PREFIX}/sign-out", _page(actions.sign_out_post, write=True))
    r.add_post(f"{PREFIX}/functions/{{stream}}/{{command}}", _page(_function_command, write=True))
    r.add_post(f"{PREFIX}/commits/{{sha}}/allow_deletes", _page(_allow_deletes, write=True))


def add_routes(app: web.Application) -> None:
    """The dashboard on the engine's server (its ``Context`` is already on ``app``)."""
    app[BOARD] = Board.of(app[CONTEXT])
    _routes(app)


def make_log_app(board: Board) -> web.Application:
    """The dashboard alone, on a log and no engine (``glam dashboard --db``)."""
    app = web.Application(client_max_size=64 * 1024)
    app[BOARD] = board
    app.router.add_get("/healthz", healthz)
    _routes(app)
    return app


async def _no_token(ref: TokenRef) -> str | None:
    return None


def read_only_auth() -> Auth:
    """The auth of a dashboard that only reads (``glam dashboard``, the demo): no token."""
    return Auth(None, reads=False, read=_no_token)


def dashboard_url(bound: tuple[str, int]) -> str:
    """The overview's URL on the address ``serve_log`` bound."""
    host, port = bound
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{PREFIX}/"


async def serve_log(
    store: ProjectionStore,
    clock: Clock,
    auth: Auth,
    host: str,
    port: int,
    *,
    task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the dashboard of ``store``'s log (read-only) until cancelled."""
    state = LogState(store, clock)
    board = Board(store, state, clock, auth=auth)
    runner = web.AppRunner(
        make_log_app(board), access_log=None, handle_signals=False, shutdown_timeout=2.0
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint="pick another --listen address",
            ) from None
        address = runner.addresses[0]
        async with anyio.create_task_group() as tg:
            tg.start_soon(state.run, name="glam dashboard log")
            task_status.started((str(address[0]), int(address[1])))
            await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            state.close()
            await runner.cleanup()
