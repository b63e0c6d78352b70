"""The engine process: watch a branch, plan, and run one deployment saga per function.

    async with Engine(config) as engine:
        report = await engine.run(once=True)

One anyio task group, owned by ``run``, holds everything the engine does while it runs:

    projections   folds the log into the views, so ``glam status`` works meanwhile
    repository    every ``poll`` seconds: fetch, record new first-parent commits, plan the head
                  against what the log says is deployed, append the decisions
                  (``engine.runtime.repository``)
    sagas         one task per function stream with work to do, at most ``max_parallel`` at
                  a time; started by recovery (at start), by the planner (on a new request)
                  and by an operator's hand-over (``engine.runtime.supervisor``)
    operators     every ``ops_poll`` seconds: hand each new command of the ``ops`` stream to
                  its target (``engine.runtime.operators``)

The engine reaches the world through ports only: the event store (``ProjectionStore``; by
default the SQLite file ``config.db``, see ``engine.store.open_store``), the repository
(``RepoSource``; by default a Git mirror under ``data_dir``) and AWS (``PortsProvider``; by
default real AWS, or the endpoint in ``config``). ``engine.testing`` has in-memory ones, so
the whole engine runs in one process in milliseconds.

Write-ahead: the planner appends ``DeploymentRequested`` before any saga may act on it, and a
saga makes each intent durable before its AWS call (``engine.runtime.saga_runner``). A newer
request for a function whose saga runs lands in the same stream; the runner notices the
stream moved at its next safe point and supersedes. Opening the default store takes the engine
lock on the database: a second engine on the same file refuses to start (``StoreLocked``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from engine.aws.ratelimit import DEFAULT_POLL_RATE, DEFAULT_RATE
from engine.aws.session import AwsConfig
from engine.errors import ConfigError, GlamError
from engine.events import RecordedEvent
from engine.git.repo_source import GitRepoSource
from engine.logs import get_logger
from engine.ports import Clock, ProjectionStore, RepoSource
from engine.redact import redact_url
from engine.runtime.clock import SystemClock
from engine.runtime.failpoints import Failpoints
from engine.runtime.operators import Operators
from engine.runtime.providers import AwsProvider, PortsProvider
from engine.runtime.report import EventHook, RunReport, read_log
from engine.runtime.repository import Repository
from engine.runtime.supervisor import Supervisor
from engine.saga import DEFAULT_POLICY, SagaPolicy
from engine.store import open_store
from projections.runner import ProjectionRunner

__all__ = ["Engine", "EngineConfig", "EventHook", "RunReport"]

log = get_logger("engine")


@dataclass(frozen=True)
class EngineConfig:
    """What ``glam run`` is told. ``data_dir`` holds the repository mirror (default: the
    database's folder); ``policy`` tunes the sagas' polls and retries."""

    repo: str
    db: Path
    branch: str | None = None
    region: str = "us-east-1"
    endpoint_url: str | None = None
    poll: float = 30.0
    ops_poll: float = 1.0  # how often the ``ops`` stream is read for operator commands
    max_parallel: int = 10
    token_env: str | None = None
    data_dir: Path | None = None
    policy: SagaPolicy = DEFAULT_POLICY
    max_rate: float = DEFAULT_RATE
    poll_rate: float = DEFAULT_POLL_RATE
    # Explicit credentials, for a local endpoint only (repr=False: never printed).
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)

    def aws_config(self) -> AwsConfig:
        return AwsConfig(
            region=self.region,
            endpoint_url=self.endpoint_url,
            max_rate=self.max_rate,
            poll_rate=self.poll_rate,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
        )


class Engine:
    """The engine process. Use as an async context manager, then ``await run()``.

    ``store`` defaults to the SQLite file ``config.db``, opened (and locked) by the engine; a
    store passed in is the caller's: the engine neither opens nor closes it, so it outlives the
    engine as a database does. ``source`` defaults to the Git repository ``config.repo``;
    ``ports`` to real AWS from ``config``; the engine closes both when it exits. ``clock``
    defaults to the system clock; ``ids`` makes event and deployment ids; ``on_event`` sees
    every event this engine appends (live progress), in the task that appended it — it must
    not block. ``failpoints`` arms crash points for chaos tests (never armed otherwise).
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        store: ProjectionStore | None = None,
        source: RepoSource | None = None,
        ports: PortsProvider | None = None,
        clock: Clock | None = None,
        ids: Callable[[], str] | None = None,
        on_event: EventHook | None = None,
        failpoints: Failpoints | None = None,
    ) -> None:
        if config.max_parallel < 1:
            raise ConfigError("--max-parallel must be at least 1", hint="pass 1 or more")
        if config.poll <= 0:
            raise ConfigError("--poll must be a positive number of seconds", hint="e.g. 30")
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.ids = ids or (lambda: uuid.uuid4().hex)
        self.on_event = on_event
        self.failpoints = failpoints or Failpoints({})
        self.source: RepoSource = source or GitRepoSource(
            config.repo,
            config.branch,
            data_dir=config.data_dir or config.db.parent,
            token_env=config.token_env,
        )
        self._store_given = store
        self._store: ProjectionStore | None = None
        self._ports_given = ports
        self._ports: PortsProvider | None = None
        self._stack = AsyncExitStack()
        self.account: str | None = None
        self._tg: TaskGroup | None = None
        self._supervisor: Supervisor | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def store(self) -> ProjectionStore:
        if self._store is None:
            raise RuntimeError("use `async with Engine(...)` first")
        return self._store

    @property
    def ports(self) -> PortsProvider:
        if self._ports is None:
            raise RuntimeError("use `async with Engine(...)` first")
        return self._ports

    async def __aenter__(self) -> Engine:
        try:
            if self._store_given is not None:
                self._store = self._store_given
            else:
                # First, and locked: a second engine on the same log must not even open it.
                opened = open_store(self.config.db, exclusive=True)
                self._store = await self._stack.enter_async_context(opened)
            self._stack.push_async_callback(self._close_source)
            self._ports = self._ports_given or AwsProvider(
                self.config.aws_config(), clock=self.clock
            )
            self._stack.push_async_callback(self._ports.aclose)
            self.account = await self._ports.account()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Not shielded here: the store's writer task group must exit in the scope it was
        # entered in; the store and the provider shield their own closing.
        await self._stack.aclose()

    async def _close_source(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.source.aclose()

    # -- running -------------------------------------------------------------------------------

    async def run(self, *, once: bool = False) -> RunReport:
        """Run until cancelled; with ``once``, until the branch head is planned and every
        saga has finished. Returns what finished meanwhile.

        An error that stops the engine leaves as it was raised (inside the task group's
        ``ExceptionGroup``); saving the views afterwards never replaces it with its own."""
        report = RunReport()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                await self._run_in(tg, report, once=once)
        except BaseException:
            self._tg = self._supervisor = None
            await self._save_views(after_error=True)
            raise
        self._tg = self._supervisor = None
        await self._save_views(after_error=False)
        return report

    async def _run_in(self, tg: TaskGroup, report: RunReport, *, once: bool) -> None:
        assert self.account is not None
        saw = self._saw
        supervisor = Supervisor(
            tg,
            self.store,
            self.ports,
            account=self.account,
            clock=self.clock,
            ids=self.ids,
            policy=self.config.policy,
            max_parallel=self.config.max_parallel,
            failpoints=self.failpoints,
            report=report,
            on_event=saw,
        )
        self._supervisor = supervisor
        repository = Repository(
            self.source,
            self.store,
            url=self.config.repo,
            region=self.config.region,
            account=self.account,
            ids=self.ids,
            report=report,
            on_event=saw,
            start_saga=supervisor.start,
        )
        operators = Operators(
            self.store,
            repository,
            policy=self.config.policy,
            ids=self.ids,
            on_event=saw,
            start_saga=supervisor.start,
        )
        tg.start_soon(self._project, name="glam projections")
        async for record in read_log(self.store):
            supervisor.recovering(record)
            operators.recovering(record)
        supervisor.resume()
        if once:
            await repository.poll()
            tg.start_soon(operators.loop, self.config.ops_poll, self.clock, name="glam operators")
            await operators.run_pass()  # commands given while no engine ran
            await supervisor.wait_idle()
            tg.cancel_scope.cancel()
        else:
            tg.start_soon(repository.loop, self.config.poll, self.clock, name="glam repository")
            tg.start_soon(operators.loop, self.config.ops_poll, self.clock, name="glam operators")

    def stop(self) -> None:
        """Ask ``run`` to stop: sagas stop at their next await, recording stays whole."""
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def _project(self) -> None:
        await ProjectionRunner(self.store).run()

    async def _save_views(self, *, after_error: bool) -> None:
        """Fold what the projection task had not saved. A fresh runner from the stored
        checkpoint: the cancelled one may hold views folded further than it managed to save.
        After an error, a failure here is logged and the first error goes on."""
        with anyio.CancelScope(shield=True):
            try:
                await ProjectionRunner(self.store).catch_up()
            except Exception as exc:
                if not after_error:
                    raise
                text = exc.one_line() if isinstance(exc, GlamError) else repr(exc)
                log.error("saving the views after the engine stopped failed too: %s", text)

    def _saw(self, record: RecordedEvent) -> None:
        if self.on_event is not None:
            self.on_event(record)

    # -- for callers and tests -----------------------------------------------------------------

    @property
    def running(self) -> frozenset[str]:
        """Function streams whose saga task is running or queued."""
        return self._supervisor.running if self._supervisor is not None else frozenset()

    def describe(self) -> dict[str, Any]:
        """A summary for logs: never credentials (the URL is redacted)."""
        return {
            "repo": redact_url(self.config.repo),
            "branch": self.source.branch,
            "db": str(self.config.db),
            "region": self.config.region,
            "account": self.account,
            "endpoint": self.config.endpoint_url,
        }
