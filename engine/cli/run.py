"""``glam run``: the engine in the foreground, until Ctrl-C (or, with ``--once``, until the
branch head is reconciled).

Exit codes with ``--once``: 0 every deployment succeeded (or there was nothing to do), 1 one
failed or rolled back, a definition was rejected, or the repository could not be read.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
import typer

from engine.cli.app import app
from engine.cli.common import DbOption, db_path
from engine.errors import UsageError
from engine.logs import get_logger, setup_logging

if TYPE_CHECKING:
    from engine.runtime.engine import EngineConfig, RunReport
    from engine.runtime.failpoints import Failpoints

log = get_logger("run")


@app.command("run")
def run_command(
    repo: Annotated[str, typer.Option("--repo", help="Repository path or URL to watch.")],
    branch: Annotated[
        str | None, typer.Option("--branch", help="Branch (default: the repository's HEAD).")
    ] = None,
    db: DbOption = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url",
            help="AWS endpoint, e.g. the one `glam aws-local` prints (default: real AWS).",
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option("--region", help="Region for definitions that name none (else $AWS_REGION)."),
    ] = None,
    poll: Annotated[
        float, typer.Option("--poll", help="Seconds between repository fetches.")
    ] = 30.0,
    max_parallel: Annotated[
        int, typer.Option("--max-parallel", help="Deployments running at the same time.")
    ] = 10,
    once: Annotated[
        bool,
        typer.Option("--once", help="Exit when the head is reconciled: 0 all succeeded, 1 not."),
    ] = False,
    token_env: Annotated[
        str | None, typer.Option("--token-env", help="Env var holding an HTTPS token.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> int:
    """Run the engine: make AWS match the branch, deploying with canaries and rollbacks."""
    if poll <= 0:
        raise UsageError("--poll must be positive", hint="e.g. --poll 30")
    if max_parallel < 1:
        raise UsageError("--max-parallel must be at least 1", hint="e.g. --max-parallel 10")
    config = engine_config(
        repo=repo,
        branch=branch,
        db=db,
        endpoint_url=endpoint_url,
        region=region,
        poll=poll,
        max_parallel=max_parallel,
        token_env=token_env,
    )
    return run_engine(config, once=once, verbose=verbose)


def engine_config(
    *,
    repo: str,
    branch: str | None = None,
    db: Path | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    poll: float = 30.0,
    max_parallel: int = 10,
    token_env: str | None = None,
) -> EngineConfig:
    """The engine's configuration from ``glam run``'s options: the region falls back to
    ``$AWS_REGION``, ``$AWS_DEFAULT_REGION``, then us-east-1; an endpoint with no credentials
    in the environment gets dummy ones (only an emulator accepts them)."""
    region = (
        region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )
    endpoint_url = endpoint_url or None
    access_key = secret = None
    if endpoint_url and not os.environ.get("AWS_ACCESS_KEY_ID"):
        # The embedded AWS accepts anything; real credentials are never needed for it.
        access_key = "testing"
        secret = "testing"  # noqa: S105 - a dummy only an emulator accepts
    # Imported here, not at the top: the engine pulls in aiobotocore, aiohttp and rich, which
    # every other glam command (and `glam --help`) would otherwise pay for at start-up.
    from engine.runtime.engine import EngineConfig

    return EngineConfig(
        repo=repo,
        db=db_path(db),
        branch=branch,
        region=region,
        endpoint_url=endpoint_url,
        poll=poll,
        max_parallel=max_parallel,
        token_env=token_env,
        access_key_id=access_key,
        secret_access_key=secret,
    )


def run_engine(
    config: EngineConfig,
    *,
    once: bool,
    verbose: bool = False,
    failpoints: Failpoints | None = None,
) -> int:
    """Run the engine in the foreground as ``glam run`` does; the exit code (with ``once``:
    0 reconciled, 1 not). ``failpoints`` is for chaos tests, which start glam through it."""
    setup_logging(verbose)
    terminal = sys.stdout.isatty()
    report = anyio.run(_run, config, once, terminal, failpoints, backend="asyncio")
    if once:
        _summary(report)
    return report.exit_code if once else 0


async def _run(
    config: EngineConfig, once: bool, terminal: bool, failpoints: Failpoints | None
) -> RunReport:
    from engine.cli.progress import LineProgress, LiveProgress
    from engine.runtime.clock import SystemClock
    from engine.runtime.engine import Engine

    clock = SystemClock()
    live = LiveProgress(clock) if terminal else None
    hook = live if live is not None else LineProgress()
    with live if live is not None else contextlib.nullcontext():
        engine = Engine(config, clock=clock, on_event=hook, failpoints=failpoints)
        async with engine:
            log.info(
                "engine started: %s",
                " ".join(f"{k}={v}" for k, v in engine.describe().items() if v),
            )
            async with anyio.create_task_group() as tg:

                async def stop_on_signal() -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for _ in signals:
                            log.info("stopping: sagas stop at a safe point or resume later")
                            engine.stop()
                            return

                tg.start_soon(stop_on_signal)
                report = await engine.run(once=once)
                tg.cancel_scope.cancel()
    return report


def _summary(report: RunReport) -> None:
    for stream, finished in report.finished:
        typer.echo(
            f"{stream}: {finished.outcome}" + (f" ({finished.reason})" if finished.reason else "")
        )
    for rejected in report.rejected:
        typer.echo(f"rejected: {rejected.file}: {rejected.reason}", err=True)
    for error in report.errors:
        typer.echo(f"error: {error}", err=True)
    if report.unavailable:
        typer.echo(f"repository unavailable: {report.unavailable}", err=True)
    if not report.finished and report.ok:
        typer.echo("nothing to do")


__all__ = ["engine_config", "run_command", "run_engine"]
