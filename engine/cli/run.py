"""``glam run``: the engine in the foreground, until Ctrl-C (or, with ``--once``, until every
watched branch head is reconciled).

    glam run --repo ./lambdas                   one repository, its default branch
    glam run --config glam.toml                 every repository, branch and account in it

With ``--config`` (or ``$GLAM_CONFIG``), SIGHUP re-reads the file: a new repository or branch
starts being watched, a removed one stops (nothing is deleted), accounts apply to the next
plan. A file that no longer validates is refused with its mistakes, and the engine goes on
with the configuration it has. Flags given on the command line win over the file.

Exit codes with ``--once``: 0 every deployment succeeded (or there was nothing to do), 1 one
failed or rolled back, a definition was rejected, or a repository could not be read, 3 all
went well but deletes are held for an operator (``glam allow-deletes SHA`` releases them).

SIGTERM and SIGINT stop the engine at a safe point: a saga records what it did and stops; on
the next start it resumes from the log (a bake waits only for what was left of it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
import typer

from engine.cli.app import app
from engine.cli.config import ConfigOption, config_path
from engine.cli.output import examples, print_json
from engine.cli.run_config import (
    engine_config,
    engine_config_from,
    file_server,
    given_location,
    server_settings,
    tracing,
    with_server,
    with_sharing,
)
from engine.errors import GlamError, UsageError
from engine.logs import LogFormat, get_logger, setup_logging

if TYPE_CHECKING:
    from collections.abc import Callable

    from engine.events import RecordedEvent
    from engine.notify import Notifier, Route
    from engine.ports import Clock
    from engine.runtime.engine import EngineConfig, RunReport
    from engine.runtime.failpoints import Failpoints
    from engine.server.settings import ServerSettings

log = get_logger("run")


EXIT_HELD = 3
DRAIN_SECONDS = 5.0  # how long queued notifications may still be delivered at shutdown


@app.command(
    "run",
    epilog=examples(
        "glam run --repo ./lambdas",
        "glam run --config /etc/glam/glam.toml --log-format json   # as a service",
        "glam run --once --repo https://github.com/acme/lambdas.git --json   # in CI",
    ),
)
def run_command(
    repo: Annotated[
        str | None, typer.Option("--repo", help="Repository path or URL to watch.")
    ] = None,
    config: ConfigOption = None,
    branch: Annotated[
        str | None, typer.Option("--branch", help="Branch (default: the repository's HEAD).")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Event log: an SQLite file, or a postgresql:// URL. Default: $GLAM_DB, else "
            "./.glam/glam.db",
            show_default=False,
        ),
    ] = None,
    shared: Annotated[
        bool,
        typer.Option(
            "--shared",
            help="One of several engines on this PostgreSQL log, each on the shards it leases.",
        ),
    ] = False,
    lease_ttl: Annotated[
        float | None,
        typer.Option(
            "--lease-ttl",
            help="With --shared: seconds without a renewal before another engine takes over "
            "(default 15).",
            show_default=False,
        ),
    ] = None,
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
        float | None,
        typer.Option(
            "--poll", help="Seconds between repository fetches (default 30).", show_default=False
        ),
    ] = None,
    max_parallel: Annotated[
        int | None,
        typer.Option(
            "--max-parallel",
            help="Deployments running at the same time (default 10).",
            show_default=False,
        ),
    ] = None,
    drift_interval: Annotated[
        float | None,
        typer.Option(
            "--drift-interval",
            help="Seconds between two drift sweeps, 0 for none (default 300).",
            show_default=False,
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Exit when the head is reconciled: 0 all succeeded, 1 not."),
    ] = False,
    token_env: Annotated[
        str | None, typer.Option("--token-env", help="Env var holding an HTTPS token.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="Serve HTTP (health, metrics, API, webhooks) on [HOST:]PORT; "
            "HOST defaults to 127.0.0.1.",
        ),
    ] = None,
    api_token_env: Annotated[
        str | None,
        typer.Option("--api-token-env", help="Env var holding the API's bearer token."),
    ] = None,
    webhook_secret_env: Annotated[
        str | None,
        typer.Option("--webhook-secret-env", help="Env var holding the webhook secret."),
    ] = None,
    auth_reads: Annotated[
        bool, typer.Option("--auth-reads", help="The API's reads need the token too.")
    ] = False,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote", help="Allow --listen on a non-loopback address (needs a token)."
        ),
    ] = False,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            help="text, or json: one JSON object per line (and no live table).",
            envvar="GLAM_LOG_FORMAT",
        ),
    ] = "text",
    as_json: Annotated[
        bool, typer.Option("--json", help="With --once: print the outcome as JSON.")
    ] = False,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            "--otlp-endpoint",
            help="Send each deployment as an OpenTelemetry trace to this OTLP/HTTP URL, e.g. "
            "http://127.0.0.1:4318/v1/traces (else $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "
            "else the file's [traces]; default: off).",
            show_default=False,
        ),
    ] = None,
) -> int:
    """Run the engine: make AWS match the branches, deploying with canaries and rollbacks.
    With --once: exit 0 all succeeded, 1 something failed, 3 deletes are held."""
    if log_format not in ("text", "json"):
        raise UsageError(f"--log-format {log_format!r}", hint="text or json")
    if as_json and not once:
        raise UsageError("--json needs --once", hint="the engine prints JSON when it is done")
    shown = Shown(
        verbose=verbose, log_format="json" if log_format == "json" else "text", json=as_json
    )
    if poll is not None and poll <= 0:
        raise UsageError("--poll must be positive", hint="e.g. --poll 30")
    if max_parallel is not None and max_parallel < 1:
        raise UsageError("--max-parallel must be at least 1", hint="e.g. --max-parallel 10")
    server: ServerSettings | None = None
    if listen is not None:
        server = server_settings(
            listen,
            api_token_env=api_token_env,
            webhook_secret_env=webhook_secret_env,
            auth_reads=auth_reads,
            allow_remote=allow_remote,
        )
    elif api_token_env or webhook_secret_env or auth_reads or allow_remote:
        raise UsageError("the server options need --listen", hint="e.g. --listen 8080")
    if drift_interval is not None and drift_interval < 0:
        raise UsageError("--drift-interval must be 0 or more", hint="e.g. --drift-interval 300")
    if lease_ttl is not None and lease_ttl <= 0:
        raise UsageError("--lease-ttl must be positive", hint="e.g. --lease-ttl 15")
    location = given_location(db)
    # An explicit --config beats --repo's absence; $GLAM_CONFIG only when --repo is not given.
    path = config if config is not None else (None if repo else config_path(None))
    if path is not None and repo is not None:
        raise UsageError(
            "--repo and --config both name what to watch",
            hint="pass one: --repo for one repository, --config for a configuration file",
        )
    if path is None and repo is None and server is None:
        raise UsageError(
            "nothing to watch",
            hint="pass --repo PATH_OR_URL, or --config glam.toml (or --listen, and add "
            "repositories through the API)",
        )
    if path is not None:
        if branch is not None or token_env is not None:
            raise UsageError(
                "--branch and --token-env are set per repository in the configuration file",
                hint="set branches and token in its [[repository]] entry",
            )
        from engine.config import load_config
        from engine.notify import routes_from

        config_file = path
        notify = Notifications()

        def reload() -> EngineConfig:
            glam = load_config(config_file)
            engine = engine_config_from(
                glam,
                db=location,
                endpoint_url=endpoint_url,
                region=region,
                poll=poll,
                max_parallel=max_parallel,
                server=server if server is not None else file_server(glam),
                drift_interval=drift_interval,
            )
            notify.update(routes_from(glam), glam.engine.public_url)
            return tracing(engine, otlp_endpoint, glam.traces)

        def reload_shared() -> EngineConfig:
            return with_sharing(reload(), shared=shared, lease_ttl=lease_ttl)

        return run_engine(
            reload_shared(), once=once, shown=shown, reload=reload_shared, notify=notify
        )
    engine = engine_config(
        repo=repo or "",
        branch=branch,
        db=location,
        endpoint_url=endpoint_url,
        region=region,
        poll=poll if poll is not None else 30.0,
        max_parallel=max_parallel if max_parallel is not None else 10,
        token_env=token_env,
    )
    if drift_interval is not None:
        engine = dataclasses.replace(engine, drift_interval=drift_interval)
    return run_engine(
        tracing(
            with_sharing(with_server(engine, server), shared=shared, lease_ttl=lease_ttl),
            otlp_endpoint,
        ),
        once=once,
        shown=shown,
    )


@dataclass
class Notifications:
    """The notification routes of the configuration file, kept current on SIGHUP, and the
    notifier delivering them while the engine runs."""

    routes: list[Route] = field(default_factory=list)
    public_url: str | None = None
    notifier: Notifier | None = None

    def update(self, routes: list[Route], public_url: str | None) -> None:
        self.routes, self.public_url = routes, public_url
        if self.notifier is not None:
            self.notifier.routes, self.notifier.public_url = routes, public_url


@dataclass(frozen=True, slots=True)
class Shown:
    """How ``glam run`` shows what it does: log level and format, and JSON at the end."""

    verbose: bool = False
    log_format: LogFormat = "text"
    json: bool = False


def run_engine(
    config: EngineConfig,
    *,
    once: bool,
    verbose: bool = False,
    failpoints: Failpoints | None = None,
    reload: Callable[[], EngineConfig] | None = None,
    shown: Shown | None = None,
    notify: Notifications | None = None,
) -> int:
    """Run the engine in the foreground as ``glam run`` does; the exit code (with ``once``:
    0 reconciled, 1 not, 3 deletes held). ``failpoints`` is for chaos tests, which start glam
    through it; ``reload`` re-reads the configuration on SIGHUP."""
    if once and config.shared:  # refused before anything is opened
        from engine.runtime.shared import SHARED_ONCE, SHARED_ONCE_HINT

        raise UsageError(SHARED_ONCE, hint=SHARED_ONCE_HINT)
    shown = shown or Shown(verbose=verbose)
    setup_logging(shown.verbose, log_format=shown.log_format)
    terminal = sys.stdout.isatty() and shown.log_format == "text" and not shown.json
    created = _new_log_files(config)
    try:
        report = anyio.run(
            _run, config, once, terminal, failpoints, reload, notify, backend="asyncio"
        )
    except BaseException:
        _remove_if_empty(created)  # a run that failed at once leaves no empty log behind
        raise
    if not once:
        return 0
    code = exit_code(report)
    if shown.json:
        print_json(summary_json(report, code))
    else:
        _summary(report)
    return code


def _new_log_files(config: EngineConfig) -> list[Path]:
    """The SQLite log's files and folders this run would create (none when the log exists or
    is not a local file)."""
    db = config.db
    if not isinstance(db, Path) or db.exists():
        return []
    folders = []
    parent = db.parent
    while not parent.exists():
        folders.append(parent)
        parent = parent.parent
    suffixes = ("-wal", "-shm", "-journal", ".lock")
    return [db, *(db.with_name(db.name + s) for s in suffixes), *folders]


def _remove_if_empty(created: list[Path]) -> None:
    """Remove what ``_new_log_files`` named if the new log holds no event."""
    if not created or not created[0].exists():
        return
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{created[0]}?mode=ro", uri=True)) as conn:
            (count,) = conn.execute("SELECT count(*) FROM events").fetchone()
    except sqlite3.Error:
        return  # not a log glam can read: leave it for a person to look at
    if count:
        return
    for path in created:
        with contextlib.suppress(OSError):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)


def exit_code(report: RunReport) -> int:
    """``--once``: 1 when something went wrong, else 3 when deletes wait for an operator."""
    if not report.ok:
        return 1
    return EXIT_HELD if report.held else 0


def summary_json(report: RunReport, code: int) -> dict[str, object]:
    """What ``glam run --once --json`` prints."""
    return {
        "exit_code": code,
        "ok": report.ok,
        "heads": report.heads,
        "finished": [
            {"stream": stream, **finished.model_dump(mode="json", exclude={"type"})}
            for stream, finished in report.finished
        ],
        "rejected": [
            {"file": r.file, "prefix": r.prefix, "reason": r.reason} for r in report.rejected
        ],
        "errors": report.errors,
        "unavailable": report.unavailable_by,
        "held": [
            {
                "sha": held.sha,
                "prefixes": list(held.prefixes),
                "release": f'glam allow-deletes {held.sha[:12]} --reason "…"',
            }
            for held in report.held
        ],
    }


async def _run(
    config: EngineConfig,
    once: bool,
    terminal: bool,
    failpoints: Failpoints | None,
    reload: Callable[[], EngineConfig] | None,
    notify: Notifications | None = None,
) -> RunReport:
    from engine.cli.progress import LineProgress, LiveProgress
    from engine.runtime.clock import SystemClock

    clock = SystemClock()
    live = LiveProgress(clock) if terminal else None
    progress = live if live is not None else LineProgress()
    async with contextlib.AsyncExitStack() as stack:
        notifier = await _notifier(stack, notify, config, clock)

        def hook(record: RecordedEvent) -> None:
            progress(record)
            if notifier is not None:
                notifier(record)

        stack.enter_context(live if live is not None else contextlib.nullcontext())
        if notifier is not None:
            delivery = await stack.enter_async_context(anyio.create_task_group())
            delivery.start_soon(notifier.run)
            stack.push_async_callback(_drain, notifier, delivery)
        return await _serve(config, once, clock, hook, failpoints, reload)
    raise AssertionError("unreachable: the exit stack returns or raises")


async def _notifier(
    stack: contextlib.AsyncExitStack,
    notify: Notifications | None,
    config: EngineConfig,
    clock: Clock,
) -> Notifier | None:
    """The notifier of the configured routes (None without any), closed with ``stack``."""
    if notify is None or not notify.routes:
        return None
    from engine.notify import Notifier
    from engine.notify.http import AiohttpPoster
    from engine.tokens import TokenResolver

    secrets = None
    if any(r.url.kind != "env" for r in notify.routes):
        from engine.aws.secrets import AwsSecrets

        secrets = AwsSecrets(config.aws_config())
        stack.push_async_callback(secrets.aclose)
    poster = await stack.enter_async_context(AiohttpPoster())
    notifier = Notifier(
        notify.routes,
        poster=poster,
        resolve=TokenResolver(secrets=secrets).resolve,
        clock=clock,
        public_url=notify.public_url,
    )
    notify.notifier = notifier
    return notifier


async def _drain(notifier: Notifier, delivery: anyio.abc.TaskGroup) -> None:
    """On the way out: what is queued gets a few seconds to be delivered, then is dropped."""
    notifier.close()
    with anyio.move_on_after(DRAIN_SECONDS, shield=True):
        await notifier.drained.wait()
    delivery.cancel_scope.cancel()


async def _serve(
    config: EngineConfig,
    once: bool,
    clock: Clock,
    hook: Callable[[RecordedEvent], None],
    failpoints: Failpoints | None,
    reload: Callable[[], EngineConfig] | None,
) -> RunReport:
    from engine.runtime.engine import Engine

    engine = Engine(config, clock=clock, on_event=hook, failpoints=failpoints)
    async with engine:
        log.info(
            "engine started: %s",
            " ".join(f"{k}={v}" for k, v in engine.describe().items() if v),
        )
        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                wanted = [signal.SIGINT, signal.SIGTERM]
                if reload is not None:
                    wanted.append(signal.SIGHUP)
                with anyio.open_signal_receiver(*wanted) as signals:
                    async for signum in signals:
                        if signum == signal.SIGHUP:
                            _reconfigure(engine, reload)
                            continue
                        log.info("stopping: sagas stop at a safe point or resume later")
                        engine.stop()
                        return

            tg.start_soon(stop_on_signal)
            report = await engine.run(once=once)
            tg.cancel_scope.cancel()
    return report


def _reconfigure(engine: object, reload: Callable[[], EngineConfig] | None) -> None:
    """SIGHUP: read the configuration again and apply it; a file that no longer validates
    is logged (every mistake) and the engine goes on as it was."""
    from engine.runtime.engine import Engine

    assert isinstance(engine, Engine)
    if reload is None:
        return
    try:
        config = reload()
        engine.reconfigure(config)
    except GlamError as exc:
        log.error("configuration not applied: %s", exc.one_line())
        return
    log.info("configuration applied: watching %s", engine.describe()["watching"])


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
    for held in report.held:
        what = ", ".join(
            f"{r.function}" + (f" alias {r.alias}" if r.alias else "") + f" ({r.reason})"
            for r in held.removals
        ) or ", ".join(held.prefixes)
        typer.echo(
            f"held for an operator: {what} — "
            f'`glam allow-deletes {held.sha[:12]} --reason "…"` releases it',
            err=True,
        )
    if not report.finished and report.ok and not report.held:
        typer.echo("nothing to do")


__all__ = [
    "engine_config",
    "engine_config_from",
    "file_server",
    "run_command",
    "run_engine",
    "server_settings",
]
