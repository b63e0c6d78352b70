"""The aiohttp application: its routes, the middleware every request passes, the health
probes, and ``serve``, which runs it in the engine's task group.

    app = make_app(context)             every route of every module, for tests and ``serve``
    await tg.start(serve, engine, settings)   bound, then serving until the engine stops

The routes (docs/api.md has every one, with its parameters and answers)::

    GET  /healthz  /readyz  /metrics                     app.py, metrics.py
    /api/v1/...   functions, deployments, commits,       api.py, sse.py
                  events, sync, operator commands
    /api/v1/...   Gitmoxi's endpoints                    gitmoxi.py
    POST /hooks/github  /hooks/gitlab  /hooks/generic    webhooks.py
    GET  /  /dashboard/...                               dashboard/

Every request goes through ``_middleware``: the token check of its route (``auth``), then the
handler; a ``GlamError`` becomes a JSON error with the status its kind calls for, anything
else a 500 that is logged and never reaches the engine. The dashboard (``engine.server.dashboard``)
adds its pages on the same context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from aiohttp import web

from engine.commands import AmbiguousTarget, CommandRefused, UnknownTarget
from engine.errors import ConfigError, GlamError, SourceError, StoreError, UsageError
from engine.logs import get_logger
from engine.runtime.leases import shard_of
from engine.server.auth import Auth, Handler, access, access_of
from engine.server.metrics import CONTENT_TYPE_LATEST, EngineMetrics
from engine.server.settings import ServerSettings
from engine.server.state import LogState

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from engine.runtime.engine import Engine

log = get_logger("server")
LOAD_WAIT = 10.0  # seconds a read waits for the first read of the log


@dataclass
class Context:
    """What every handler reaches: the engine, the log as folded here, the settings, the
    metrics, the token check, and the delivery ids webhooks have seen."""

    engine: Engine
    state: LogState
    settings: ServerSettings
    metrics: EngineMetrics
    auth: Auth
    extra: dict[str, Any] = field(default_factory=dict)


CONTEXT: web.AppKey[Context] = web.AppKey("glam", Context)


def context(request: web.Request) -> Context:
    return request.app[CONTEXT]


def json_error(status: int, message: str, hint: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if hint:
        body["hint"] = hint
    return web.json_response(body, status=status)


def status_of(exc: GlamError) -> int:
    if isinstance(exc, UnknownTarget):
        return 404
    if isinstance(exc, CommandRefused | AmbiguousTarget):
        return 409
    if isinstance(exc, UsageError | ConfigError):
        return 400
    if isinstance(exc, StoreError | SourceError):
        return 503  # the log, or the repository asked about, cannot be read now
    return 500 if exc.retryable else 422


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = context(request)
    if request.match_info.http_exception is None:  # a route matched: check its token
        level = access_of(handler)
        await ctx.auth.check(request, level)
        if level == "read":
            # An answer given while the log is first read would be empty or partial: wait
            # for the read (a long log: it answers what it reached).
            await ctx.state.until_loaded(LOAD_WAIT)
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except GlamError as exc:
        status = status_of(exc)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc.one_line())
        return json_error(status, exc.message, exc.hint)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return json_error(500, "internal error", "the engine logged it")


# -- health --------------------------------------------------------------------------------


@access("open")
async def healthz(request: web.Request) -> web.Response:
    """The process is alive and serving."""
    return web.json_response({"status": "ok"})


@access("open")
async def readyz(request: web.Request) -> web.Response:
    """Ready to be relied on: the log opens, every watched branch was fetched at least once,
    no deployment is stuck. 503 with the reasons otherwise. An engine of several on one log
    (``glam run --shared``) also names itself, the shards it leases now, and the stuck
    deployments by shard (``{"111122223333:eu-west-1": ["dep-1"]}``: whose owner to look at)."""
    ctx = context(request)
    reasons = await not_ready(ctx)
    answer: dict[str, Any] = {"ready": not reasons, "reasons": reasons}
    shared = ctx.engine.shared
    if shared is not None:  # one of several engines: say which part of the work is its own
        answer["engine"] = shared.leases.engine
        answer["shards"] = sorted(shared.leases.held)
        by_shard: dict[str, list[str]] = {}
        for deployment_id, stream, _ in stuck(ctx):
            by_shard.setdefault(shard_of(stream) or "?", []).append(deployment_id)
        answer["stuck"] = by_shard
    return web.json_response(answer, status=503 if reasons else 200)


def stuck(ctx: Context) -> list[tuple[str, str, float]]:
    """The deployments that have not moved for longer than ``stuck_after``: id, function
    stream ("?" when the views do not know it yet), seconds idle; by id."""
    now = ctx.engine.clock.now()
    found = []
    for deployment_id, last in sorted(ctx.state.last_activity.items()):
        idle = (now - last).total_seconds()
        if idle > ctx.settings.stuck_after:
            row = ctx.state.views.deployments.get(deployment_id)
            found.append((deployment_id, row.function if row is not None else "?", idle))
    return found


async def not_ready(ctx: Context) -> list[str]:
    """Why the engine is not ready (empty: ready)."""
    reasons: list[str] = []
    try:
        await ctx.engine.store.last_position()
    except GlamError as exc:
        reasons.append(f"event log: {exc.one_line()}")
    if not ctx.state.loaded:
        reasons.append("the log is still being read")
    for branch in ctx.engine.watched():
        name = f"{branch.url} {branch.branch or '(default branch)'}"
        if not branch.fetched:
            why = f": {branch.unavailable}" if branch.unavailable else ""
            reasons.append(f"{name} not fetched yet{why}")
    bound = ctx.settings.stuck_after
    for deployment_id, where, idle in stuck(ctx):
        reasons.append(
            f"deployment {deployment_id} of {where} has not moved for {idle:.0f} s "
            f"(more than {bound:.0f} s)"
        )
    return reasons


@access("read")
async def metrics(request: web.Request) -> web.Response:
    """Every series, in Prometheus text format."""
    body = context(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


# -- the application -----------------------------------------------------------------------

RouteAdder = Callable[[web.Application], None]


def make_app(ctx: Context, extra: tuple[RouteAdder, ...] = ()) -> web.Application:
    """The application with every route; ``extra`` adds more (a dashboard)."""
    from engine.server import api, dashboard, gitmoxi, sse, webhooks

    app = web.Application(middlewares=[_middleware], client_max_size=ctx.settings.max_body)
    app[CONTEXT] = ctx
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    sse.add_routes(app)  # before api: /api/v1/events
    gitmoxi.add_routes(app)  # before api: /api/v1/deployments/lambda before /{id}
    api.add_routes(app)
    webhooks.add_routes(app)
    dashboard.add_routes(app)
    for add in extra:
        add(app)
    return app


async def serve(
    engine: Engine,
    settings: ServerSettings,
    *,
    task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled (the engine stopping). Reports the bound address once listening;
    a bind that fails raises here, before the engine goes on."""
    settings.check()
    assert isinstance(engine.metrics, EngineMetrics)  # the engine makes them for a server
    state = LogState(engine.store, engine.clock)
    ctx = Context(
        engine=engine,
        state=state,
        settings=settings,
        metrics=engine.metrics,
        auth=Auth(settings.api_token, reads=settings.auth_reads, read=engine.read_secret),
    )
    engine.metrics.attach(state, engine.clock.now)
    app = make_app(ctx)
    # A short shutdown: event streams are told to end (state.close), nothing else is slow.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
                hint="pick another --listen address (is another glam running there?)",
            ) from None
        host, port = _bound(runner)
        log.info("serving on http://%s:%d", host if ":" not in host else f"[{host}]", port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(state.run, name="glam server log")
            task_status.started((host, port))
            await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            state.close()
            await runner.cleanup()


def _bound(runner: web.AppRunner) -> tuple[str, int]:
    address = runner.addresses[0]
    return str(address[0]), int(address[1])
