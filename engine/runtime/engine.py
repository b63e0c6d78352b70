"""The engine process: watch branches, plan, and run one deployment saga per function.

    async with Engine(config) as engine:
        report = await engine.run(once=True)

One engine serves many repositories, branches and AWS accounts on one log (a configuration
file, ``engine.config``; ``glam run --repo`` is a configuration of one repository). One anyio
task group, owned by ``run``, holds everything the engine does while it runs:

    projections   folds the log into the views, so ``glam status`` works meanwhile
    repositories  one loop per watched (repository, branch), every ``poll`` seconds: fetch,
                  record new first-parent commits, plan the head against what the log says is
                  deployed, append the decisions (``engine.runtime.repository``); the set of
                  loops follows the configuration while the engine runs
                  (``engine.runtime.fleet``, ``Engine.reconfigure``), and the repositories
                  added through the API (``engine.runtime.added``, ``Engine.add_repository``)
    sagas         one task per function stream with work to do, at most ``max_parallel`` at
                  a time; started by recovery (at start), by the planner (on a new request)
                  and by an operator's hand-over (``engine.runtime.supervisor``)
    operators     every ``ops_poll`` seconds: hand each new command of the ``ops`` stream to
                  its target (``engine.runtime.operators``)
    server        with ``config.server``: the HTTP server (health, metrics, the API, webhook
                  receivers; ``engine.server``), which wakes the loops above when told to
    traces        with ``config.traces``: each finished deployment sent as an OpenTelemetry
                  trace, following the log (``engine.traces``); with ``once``, what finished
                  is sent before the engine stops

The engine reaches the world through ports only: the event store (``ProjectionStore``; by
default the SQLite file ``config.db``, see ``engine.store.open_store``), the repositories
(``RepoSource``; by default Git mirrors under ``data_dir``, one per repository, their tokens
read by reference at each fetch, ``engine.runtime.sources``) and AWS (``PortsProvider``; by
default real AWS, or the endpoint in ``config``, in the engine's own account and in each
configured account through the role it assumes there). ``engine.testing`` has in-memory ones,
so the whole engine runs in one process in milliseconds. Every saga of every repository shares
one rate limiter per account and region.

Write-ahead: the planner appends ``DeploymentRequested`` before any saga may act on it, and a
saga makes each intent durable before its AWS call (``engine.runtime.saga_runner``). A newer
request for a function whose saga runs lands in the same stream; the runner notices the
stream moved at its next safe point and supersedes. Opening the default store takes the engine
lock on the database: a second engine on the same file refuses to start (``StoreLocked``).

Shared mode (``config.shared``, PostgreSQL only): several engines run on one log, each on the
shards it leases — an account and region of functions, and the ``plan`` shard (repository
loops, operator commands, views) — instead of the lock (``engine.runtime.shared``,
``engine.runtime.leases``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from engine.errors import ConfigError, GlamError
from engine.events import RecordedEvent
from engine.logs import get_logger
from engine.metrics import NO_METRICS, MeteredStore, Metrics
from engine.ports import Clock, EventStore, ProjectionStore, RepoSource
from engine.registry import Registered
from engine.runtime.added import AddedRepositories
from engine.runtime.clock import SystemClock
from engine.runtime.drift import DriftSweep
from engine.runtime.engine_config import EngineConfig, WatchedBranch
from engine.runtime.failpoints import Failpoints
from engine.runtime.fleet import Fleet, Watch
from engine.runtime.leases import PLAN_SHARD
from engine.runtime.operators import Operators
from engine.runtime.providers import AwsProvider, PortsProvider
from engine.runtime.report import EventHook, RunReport, read_log
from engine.runtime.repository import LogFold, PlanDefaults, Repository
from engine.runtime.shared import SHARED_ONCE, SHARED_ONCE_HINT, SharedRun, run_shared
from engine.runtime.sources import BranchSources, Secrets, SourceFactory
from engine.runtime.startup import first_account, read_botocore_data
from engine.runtime.supervisor import Supervisor
from engine.store import describe_target, is_postgres_url, open_store
from engine.tokens import TokenRef, TokenResolver
from projections.runner import ProjectionRunner

if TYPE_CHECKING:
    from engine.traces import TraceExporter

__all__ = ["Engine", "EngineConfig", "EventHook", "RunReport", "Watch", "WatchedBranch"]

log = get_logger("engine")


class Engine:
    """The engine process. Use as an async context manager, then ``await run()``.

    ``store`` defaults to the SQLite file ``config.db``, opened (and locked) by the engine; a
    store passed in is the caller's: the engine neither opens nor closes it, so it outlives the
    engine as a database does. ``source`` is the source of the one watched branch, ``sources``
    makes the source of each watched branch (default: Git mirrors under ``data_dir``); ``ports``
    defaults to real AWS from ``config``; the engine closes them when it exits. ``clock``
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
        sources: SourceFactory | None = None,
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
        watches = config.watched()
        if source is not None and len(watches) != 1:
            raise ConfigError("one source given for several watched branches", hint="pass sources=")
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.ids = ids or (lambda: uuid.uuid4().hex)
        self.on_event = on_event
        self.failpoints = failpoints or Failpoints({})
        self._secrets = Secrets()
        self._sources = BranchSources(config, self._secrets, given=source, factory=sources)
        self._store_given = store
        self._store: ProjectionStore | None = None
        self._ports_given = ports
        self._ports: PortsProvider | None = None
        self._stack = AsyncExitStack()
        self.account: str | None = None
        self._tg: TaskGroup | None = None
        self._supervisor: Supervisor | None = None
        self._fleet: Fleet | None = None
        self._operators: Operators | None = None
        self._added: AddedRepositories | None = None  # while running
        # What the adapters report for /metrics; nobody listens without a server.
        self.metrics: Metrics = NO_METRICS
        if config.server is not None:
            from engine.server.metrics import EngineMetrics

            self.metrics = EngineMetrics(self.clock.now)
        self.listening: tuple[str, int] | None = None  # the server's address, once bound
        self._plan_store: EventStore | None = None  # shared mode: appends fenced by "plan"
        self._log: ProjectionStore | None = None  # the store as opened (not metered)
        self.shared: SharedRun | None = None
        if config.shared and store is None and not is_postgres_url(config.db):
            raise ConfigError(
                "several engines share a log only on PostgreSQL",
                hint="pass --db postgresql://USER@HOST:PORT/DATABASE, or run one engine",
            )
        self._drift: DriftSweep | None = None
        self.traces: TraceExporter | None = None  # with config.traces, once entered

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
        await anyio.to_thread.run_sync(read_botocore_data)
        try:
            # Made first (it connects to nothing yet): the log's password may be a secret.
            self._ports = self._ports_given or AwsProvider(
                self.config.aws_config(),
                accounts={a.id: a for a in self.config.accounts},
                clock=self.clock,
                metrics=self.metrics,
            )
            self._stack.push_async_callback(self._ports.aclose)
            self._secrets.resolver = TokenResolver(secrets=self._ports.secrets())
            if self._store_given is not None:
                self._store = self._store_given
            else:
                # Locked: a second engine on the same log must not even open it. Shared
                # engines hold the lock shared, and the leases say who does what.
                opened = open_store(
                    self.config.db,
                    exclusive=not self.config.shared,
                    shared=self.config.shared,
                    password=await self._secrets.db_password(self.config),
                )
                self._store = await self._stack.enter_async_context(opened)
            self._log = self._store
            if self.metrics is not NO_METRICS:
                self._store = MeteredStore(self._store, self.metrics)
            if self._sources.given is not None:
                self._stack.push_async_callback(self._sources.close_given)
            self.account = await first_account(self._ports, clock=self.clock)
            self._check_accounts(self.config)
            if self.config.traces is not None and self.config.shared:
                log.warning("traces are not exported by shared engines yet (docs/traces.md)")
            elif self.config.traces is not None:
                from engine.traces.exporter import open_exporter

                self.traces = await open_exporter(
                    self._stack,
                    self.store,
                    self.config.traces,
                    resolve=self._secrets.resolve,
                    clock=self.clock,
                )
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

    def _check_accounts(self, config: EngineConfig) -> None:
        for account in config.accounts:
            if account.role_arn is None and account.id != self.account:
                raise ConfigError(
                    f"account {account.id} has no role_arn, and the engine's credentials are "
                    f"for account {self.account}",
                    hint="give the entry the role_arn the engine assumes in that account",
                )

    # -- running -------------------------------------------------------------------------------

    async def run(self, *, once: bool = False) -> RunReport:
        """Run until cancelled; with ``once``, until every branch head is planned and every
        saga has finished. Returns what finished meanwhile.

        An error that stops the engine leaves as it was raised (inside the task group's
        ``ExceptionGroup``); saving the views afterwards never replaces it with its own."""
        report = RunReport()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                await self._run_in(tg, report, once=once)
        except BaseException:
            await self._stopped()
            await self._save_views(after_error=True)
            raise
        await self._stopped()
        await self._save_views(after_error=False)
        return report

    async def _stopped(self) -> None:
        """Release the sources of the branches the fleet watched (a source given to the
        engine is the engine's to close when it exits)."""
        fleet, self._fleet = self._fleet, None
        self._tg = self._supervisor = self._operators = None
        self.listening = None
        if fleet is not None and self._sources.given is None:
            for repository in fleet.repositories:
                await repository.aclose()

    async def _run_in(self, tg: TaskGroup, report: RunReport, *, once: bool) -> None:
        assert self.account is not None
        saw = self._saw
        supervisor = Supervisor(
            tg,
            self.store,
            self.ports,
            clock=self.clock,
            ids=self.ids,
            policy=self.config.policy,
            max_parallel=self.config.max_parallel,
            failpoints=self.failpoints,
            report=report,
            on_event=saw,
        )
        self._supervisor = supervisor
        drift = DriftSweep(
            self.store,
            self.ports,
            clock=self.clock,
            ids=self.ids,
            start_saga=supervisor.start,
            on_event=saw,
            interval=self.config.drift_interval,
        )
        self._drift = drift
        fold = LogFold(self.store)
        fleet = Fleet(
            tg,
            lambda watch: self._repository(watch, fold, fleet, report, supervisor),
            interval=self.config.poll,
            clock=self.clock,
        )
        self._fleet = fleet
        self._added = AddedRepositories(self.store, self.ids)
        await self._added.load()
        if self.config.shared:
            if once:
                raise ConfigError(SHARED_ONCE, hint=SHARED_ONCE_HINT)
            await run_shared(self, tg, supervisor, fleet, drift)
            await self._serve(tg)
            if self.config.drift_interval > 0:
                tg.start_soon(drift.loop, name="glam drift")  # on the shards leased here
            return
        fleet.apply(self._watches())
        operators = Operators(
            self.store,
            fleet,
            policy=self.config.policy,
            ids=self.ids,
            on_event=saw,
            start_saga=supervisor.start,
        )
        self._operators = operators
        tg.start_soon(self._project, name="glam projections")
        if self.traces is not None:  # its checkpoint taken before any saga resumes
            await self.traces.start()
        async for record in read_log(self.store):
            supervisor.recovering(record)
            operators.recovering(record)
            drift.saw(record)
        supervisor.resume()
        await self._serve(tg)
        if once:
            await fleet.poll_all()
            tg.start_soon(operators.loop, self.config.ops_poll, self.clock, name="glam operators")
            await operators.run_pass()  # commands given while no engine ran
            await supervisor.wait_idle()
            if self.traces is not None:
                await self.traces.catch_up()
            tg.cancel_scope.cancel()
        else:
            if self.traces is not None:
                tg.start_soon(self.traces.run, name="glam traces")
            fleet.start_loops()
            tg.start_soon(operators.loop, self.config.ops_poll, self.clock, name="glam operators")
            if self.config.drift_interval > 0:
                tg.start_soon(drift.loop, name="glam drift")

    async def _serve(self, tg: TaskGroup) -> None:
        """Start the HTTP server if the configuration asks for one. Bound before the loops
        start: a port already taken stops the engine here."""
        if self.config.server is not None:
            from engine.server import serve

            self.listening = await tg.start(serve, self, self.config.server)

    def plans_here(self) -> bool:
        """Whether this engine watches the repositories: always on its own, only while it
        holds the plan shard among several (``engine.runtime.shared``)."""
        return self.shared is None or self.shared.leases.holds(PLAN_SHARD)

    def _repository(
        self,
        watch: Watch,
        fold: LogFold,
        fleet: Fleet,
        report: RunReport,
        supervisor: Supervisor,
    ) -> Repository:
        return Repository(
            self._sources.source_of(watch),
            self._plan_store or self.store,
            url=watch.url,
            defaults=self._plan_defaults,
            ids=self.ids,
            report=report,
            on_event=self._saw,
            start_saga=supervisor.start,
            lock=fleet.lock,
            fold=fold,
            paths=watch.paths,
            metrics=self.metrics,
        )

    async def read_secret(self, ref: TokenRef) -> str | None:
        """The value of the secret ``ref`` names (the server's API token, its webhook secret),
        read as repository tokens are; None when it is unset or cannot be read now (logged,
        by its reference only)."""
        return await self._secrets.read(ref)

    def _plan_defaults(self) -> PlanDefaults:
        assert self.account is not None
        accounts: dict[str, tuple[str, ...]] = {self.account: ()}
        for account in self.config.accounts:
            accounts[account.id] = account.regions
        return PlanDefaults(region=self.config.region, account=self.account, accounts=accounts)

    def reconfigure(self, config: EngineConfig) -> None:
        """Apply a changed configuration while running: watch exactly its branches (a new one
        starts being watched, a removed one stops; nothing is deleted), plan with its accounts
        and assume their roles. What only a restart changes (the log, the AWS endpoint, the
        limits) is logged and left as it was."""
        self._check_accounts(config)
        for name in ("db", "endpoint_url", "max_parallel", "max_rate", "poll_rate", "data_dir"):
            if getattr(config, name) != getattr(self.config, name):
                log.warning("%s changed in the configuration: it applies at the next start", name)
        kept = {"db", "endpoint_url", "max_parallel", "max_rate", "poll_rate", "data_dir"}
        kept.add("server")  # bound once, at start
        self.config = _with(config, {k: getattr(self.config, k) for k in kept})
        if self._ports is not None:
            self._ports.configure({a.id: a for a in config.accounts})
        if self._fleet is not None and self.plans_here():
            # In shared mode only the plan shard's owner watches (it applies them when taken).
            self._fleet.apply(self._watches())

    def _watches(self) -> list[Watch]:
        """The configuration's branches, and those of the repositories added through the API
        that it does not list."""
        configured = list(self.config.watched())
        added = self._added.watches(configured) if self._added is not None else []
        return configured + added

    async def add_repository(
        self, url: str, branches: Sequence[str], token: str | None, *, actor: str
    ) -> RecordedEvent:
        """Watch ``url``'s ``branches`` (none: its default branch) from now on and after a
        restart, its token read by reference at each fetch (``engine.runtime.added``)."""
        record = await self._running_added().add(
            url, branches, token, actor=actor, configured=self.config.watched()
        )
        if self._fleet is not None and self.plans_here():  # else the owner follows the log
            self._fleet.apply(self._watches())
        return record

    async def remove_repository(self, url: str, *, actor: str) -> RecordedEvent:
        """Stop watching a repository added through the API; its functions stay as they
        are."""
        added = self._running_added()
        record = await added.remove(url, actor=actor, configured=self.config.watched())
        if self._fleet is not None and self.plans_here():  # else the owner follows the log
            self._fleet.apply(self._watches())
        return record

    def added(self) -> dict[str, Registered]:
        """The repositories added through the API, by identity (while running)."""
        return dict(self._added.registry) if self._added is not None else {}

    def _running_added(self) -> AddedRepositories:
        if self._added is None:
            raise RuntimeError("the engine is not running")
        return self._added

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
        if self._drift is not None:
            self._drift.saw(record)
        if self.on_event is not None:
            self.on_event(record)

    # -- for callers and tests -----------------------------------------------------------------

    @property
    def drift(self) -> DriftSweep | None:
        """The drift sweep while ``run`` runs: ``current()`` is the drift the log holds open,
        ``sweep()`` reads every function now."""
        return self._drift

    @property
    def running(self) -> frozenset[str]:
        """Function streams whose saga task is running or queued."""
        return self._supervisor.running if self._supervisor is not None else frozenset()

    @property
    def watching(self) -> list[Watch]:
        """The branches watched now."""
        return self._fleet.watches() if self._fleet is not None else list(self.config.watched())

    def watched(self) -> list[WatchedBranch]:
        """The branches this engine watches, and how their last look went."""
        fleet = self._fleet
        if fleet is None:
            return [WatchedBranch(w.url, w.branch, None, False, None) for w in self.watching]
        return [
            WatchedBranch(
                watch.url,
                repository.branch or watch.branch,
                repository.stream,
                repository.fetched,
                repository.unavailable,
            )
            for watch, repository in fleet.running()
        ]

    def repository(self, stream: str) -> Repository | None:
        """The loop of the watched branch whose repository stream is ``stream`` (to poll it
        now, or preview its plan), while the engine runs."""
        return self._fleet.for_stream(stream) if self._fleet is not None else None

    def wake(self, stream: str) -> bool:
        """Fetch the branch of repository stream ``stream`` now (its poll loop wakes; the
        poll stays the safety net). False when no branch of this engine has that stream."""
        repository = self.repository(stream)
        if repository is None:
            return False
        repository.wake.set()
        return True

    def wake_operators(self) -> None:
        """Hand operator commands over now, not at the next ``ops_poll``."""
        if self._operators is not None:
            self._operators.wake.set()

    def describe(self) -> dict[str, Any]:
        """A summary for logs: never credentials (URLs are redacted, tokens not resolved)."""
        watches = self.watching
        return {
            "watching": ", ".join(w.describe() for w in watches),
            "db": describe_target(self.config.db),
            "region": self.config.region,
            "account": self.account,
            "accounts": ",".join(a.id for a in self.config.accounts) or None,
            "endpoint": self.config.endpoint_url,
        }


def _with(config: EngineConfig, changes: Mapping[str, Any]) -> EngineConfig:
    from dataclasses import replace

    return replace(config, **changes)
