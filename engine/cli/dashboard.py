"""``glam dashboard``: the web dashboard of a log, read-only, without an engine.

It opens the database read-only (as every query does), so it runs next to a live engine,
following what it appends, or on a copy of a log long after. Operator actions are off:
they need the engine (``glam run --listen``), which serves the same pages.
"""

from __future__ import annotations

import signal
from typing import Annotated

import anyio
import typer

from engine.cli.app import app
from engine.cli.common import DbOption, db_location
from engine.cli.output import examples

DEFAULT_LISTEN = "127.0.0.1:8090"


@app.command(
    epilog=examples(
        "glam dashboard --db .glam/demo/glam.db          # http://127.0.0.1:8090/dashboard/",
        "glam dashboard --listen 127.0.0.1:9000",
    )
)
def dashboard(
    db: DbOption = None,
    listen: Annotated[
        str, typer.Option("--listen", help="Address to serve on (loopback only).")
    ] = DEFAULT_LISTEN,
) -> None:
    """Serve the web dashboard of the log (read-only) until Ctrl-C: every function, its
    weight chart and deployments, and time travel (?at=POSITION) on every page."""
    from engine.server.settings import ServerSettings, parse_listen

    host, port = parse_listen(listen)
    ServerSettings(host=host, port=port).check()  # loopback only: no token guards it
    location = db_location(db)

    async def body() -> None:
        from engine.runtime.clock import SystemClock
        from engine.server.dashboard import dashboard_url, read_only_auth, serve_log
        from engine.store import describe_target, make_store

        async with make_store(location, readonly=True) as store, anyio.create_task_group() as tg:
            auth = read_only_auth()
            bound = await tg.start(serve_log, store, SystemClock(), auth, host, port)
            print(
                f"glam dashboard: {dashboard_url(bound)} (read-only, log "
                f"{describe_target(location)}); Ctrl-C stops it",
                flush=True,
            )
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            tg.cancel_scope.cancel()

    anyio.run(body)
