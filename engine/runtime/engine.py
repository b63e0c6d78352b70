"""The engine process: watch a branch, plan, and run one deployment saga per function.

    async with Engine(config) as engine:
        report = await engine.run(once=True)

One anyio task group owns everything the engine does while it runs:

    projections   folds the log into the views, so ``glam status`` works meanwhile
    repository    every ``poll`` seconds: fetch, record new first-parent commits, plan the head
                  against what the log says is deployed, append the decisions
    sagas         one task per function stream with work to do, at most ``max_parallel`` at
                  a time; started by recovery (at start) and by the planner (on a new request)
    operators     every ``ops_poll`` seconds: hand each new command of the ``ops`` stream
                  (``glam abort``, ``promote``, ``retry``, ``allow-deletes``, possibly from
                  another process) to its target as an ``OperatorRequested``

Write-ahead: the planner appends ``DeploymentRequested`` before any saga may act on it, and a
saga makes each intent durable before its AWS call (``engine.runtime.saga_runner``). The
function events of a plan are appended before the ``CommitPlanned`` that closes it, so a crash
between the two re-plans the head, which the planner answers with "already in progress".

A newer request for a function whose saga runs lands in the same stream; the runner notices the
stream moved at its next safe point and supersedes. Entering the engine takes the engine lock
on the database: a second engine on the same file refuses to start (``StoreLocked``).

Operator commands are acted on exactly once: the copy handed to the target carries the
command's event id as causation (and an event id made from it, so a repeated append is a
no-op); commands whose copy the log already holds are skipped, also after a restart.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from engine.aws.ratelimit import DEFAULT_POLL_RATE, DEFAULT_RATE
from engine.aws.session import AwsConfig
from engine.errors import ConfigError, GlamError, StoreError
from engine.events import RecordedEvent, stamped
from engine.events.catalog import Event
from engine.events.function import DeploymentFinished, DeploymentRequested, OperatorRequested
from engine.events.operator import OPS_STREAM, OperatorCommandIssued
from engine.events.repo import DefinitionRejected
from engine.git.source import GitSource
from engine.git.state import observe_branch, read_commit_state
from engine.git.urls import redact_url
from engine.logs import get_logger
from engine.observe import (
    Fetched,
    RepoState,
    Unavailable,
    decide_observation,
    evolve_repo,
    plan_base,
)
from engine.planner import (
    DeployedState,
    PlanContext,
    deployed_from_events,
    evolve_deployed,
    head_action,
    held_deletes,
    plan_commit,
    plan_retry,
    render_filter,
    retry_refusal,
)
from engine.ports import ANY_VERSION, Clock
from engine.runtime.clock import SystemClock
from engine.runtime.failpoints import Failpoints
from engine.runtime.providers import AwsProvider, PortsProvider, RegionPorts
from engine.runtime.saga_runner import load_saga, run_saga
from engine.saga import DEFAULT_POLICY, InvariantViolation, SagaPolicy, evolve, initial_state
from engine.saga.state import SagaState
from engine.store.lock import EngineLock
from engine.store.sqlite import SqliteEventStore
from engine.streams import FUNCTION_PREFIX, parse_function_stream, repo_stream
from projections.runner import ProjectionRunner

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


@dataclass
class RunReport:
    """What one ``run`` saw finish, and what kept it from reconciling."""

    finished: list[tuple[str, DeploymentFinished]] = field(default_factory=list)
    rejected: list[DefinitionRejected] = field(default_factory=list)
    unavailable: str | None = None  # why the source could not be read, if it could not
    errors: list[str] = field(default_factory=list)  # sagas stopped by an error
    head: str | None = None  # the branch head last planned

    @property
    def ok(self) -> bool:
        """Everything finished as asked: no failure, rollback, rejection or outage."""
        bad = [f for _, f in self.finished if f.outcome in ("failed", "rolled_back")]
        return not bad and not self.rejected and self.unavailable is None and not self.errors

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


EventHook = Callable[[RecordedEvent], None]


class Engine:
    """The engine process. Use as an async context manager, then ``await run()``.

    ``ports`` defaults to real AWS from ``config``; ``clock`` to the system clock; ``ids``
    makes event and deployment ids; ``on_event`` sees every event this engine appends (live
    progress), in the task that appended it — it must not block.
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
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
        self.failpoints = failpoints or Failpoints.from_env()
        self._ports_given = ports
        self._ports: PortsProvider | None = None
        self._stack = AsyncExitStack()
        self._lock = EngineLock(config.db)
        self._store: SqliteEventStore | None = None
        self.source = GitSource(
            config.repo,
            config.branch,
            data_dir=config.data_dir or config.db.parent,
            token_env=config.token_env,
        )
        self.account: str | None = None
        # Folded from the log as far as ``_position``: the repository and every function.
        self._position = 0
        self._repo = RepoState()
        self._deployed: dict[str, DeployedState] = {}
        # Saga tasks: streams with a task, and streams asked to look again while it runs.
        self._tg: TaskGroup | None = None
        self._capacity = anyio.CapacityLimiter(config.max_parallel)
        self._running: set[str] = set()
        self._dirty: set[str] = set()
        self._changed = anyio.Event()
        self._report = RunReport()
        # Operator commands: how far the ``ops`` stream is read, and the commands whose copy
        # the log holds (causation ids of OperatorRequested). One pass at a time, and never
        # while the repository is planned (an allow-deletes plans too).
        self._ops_version = 0
        self._handled_ops: set[str] = set()
        self._plan_lock = anyio.Lock()

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def store(self) -> SqliteEventStore:
        if self._store is None:
            raise RuntimeError("use `async with Engine(...)` first")
        return self._store

    @property
    def ports(self) -> PortsProvider:
        if self._ports is None:
            raise RuntimeError("use `async with Engine(...)` first")
        return self._ports

    async def __aenter__(self) -> Engine:
        self._lock.acquire()  # before anything else: a second engine must not even open
        try:
            self._store = await self._stack.enter_async_context(SqliteEventStore(self.config.db))
            self._stack.push_async_callback(self._close_source)
            self._ports = self._ports_given or AwsProvider(self.config.aws_config())
            self._stack.push_async_callback(self._ports.aclose)
            self.account = await self._ports.account()
        except BaseException:
            await self._stack.aclose()
            self._lock.release()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # Not shielded here: the store's writer task group must exit in the scope it was
            # entered in; the store and the provider shield their own closing.
            await self._stack.aclose()
        finally:
            self._lock.release()

    async def _close_source(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.source.aclose()

    # -- running -------------------------------------------------------------------------------

    async def run(self, *, once: bool = False) -> RunReport:
        """Run until cancelled; with ``once``, until the branch head is planned and every
        saga has finished. Returns what finished meanwhile."""
        self._report = RunReport()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._project, name="glam projections")
                await self._recover()
                if once:
                    await self._poll()
                    tg.start_soon(self._operator_loop, name="glam operators")
                    await self._operator_pass()  # commands given while no engine ran
                    await self._wait_idle()
                    tg.cancel_scope.cancel()
                else:
                    tg.start_soon(self._repository_loop, name="glam repository")
                    tg.start_soon(self._operator_loop, name="glam operators")
        finally:
            self._tg = None
            # A fresh runner from the stored checkpoint: the cancelled one may hold views
            # folded further than it managed to save.
            with anyio.CancelScope(shield=True):
                await ProjectionRunner(self.store).catch_up()
        return self._report

    def stop(self) -> None:
        """Ask ``run`` to stop: sagas stop at their next await, recording stays whole."""
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def _project(self) -> None:
        await ProjectionRunner(self.store).run()

    async def _repository_loop(self) -> None:
        while True:
            try:
                await self._poll()
            except StoreError:
                raise
            except GlamError as exc:
                # A bad poll (a broken mirror, an unreadable commit) is retried at the next.
                log.error("repository poll failed: %s", exc.one_line())
            await anyio.sleep(self.config.poll)

    # -- the repository ------------------------------------------------------------------------

    async def _catch_up(self) -> None:
        """Fold what the log gained since the last look into the repository and functions."""
        stream = self._repo_stream()
        while True:
            batch = await self.store.read_all(self._position + 1, limit=1_000)
            for record in batch:
                self._fold(stream, record)
            if len(batch) < 1_000:
                return

    def _fold(self, repo_stream_name: str | None, record: RecordedEvent) -> None:
        self._position = max(self._position, record.position)
        if record.stream.startswith(FUNCTION_PREFIX):
            current = self._deployed.get(record.stream) or DeployedState(stream=record.stream)
            self._deployed[record.stream] = evolve_deployed(current, record.event)
        elif record.stream == repo_stream_name:
            self._repo = evolve_repo(self._repo, record.event)

    def _repo_stream(self) -> str | None:
        branch = self.source.branch
        return repo_stream(self.config.repo, branch) if branch else None

    async def _poll(self) -> None:
        """One look at the branch: record what is new, plan the head if not yet planned."""
        async with self._plan_lock:
            await self._poll_locked()

    async def _poll_locked(self) -> None:
        if self.source.branch is None:
            # The default branch is learnt from the first fetch; the repository stream is
            # named after it, so nothing can be recorded before.
            observation = await observe_branch(self.source, None)
            if isinstance(observation, Unavailable):
                self._unavailable(observation.reason)
                return
            self._position, self._repo, self._deployed = 0, RepoState(), {}
        await self._catch_up()
        observation = await observe_branch(self.source, self._repo.last_sha)
        stream = self._repo_stream()
        assert stream is not None
        assert self.source.branch is not None
        events = decide_observation(
            self._repo, observation, url=self.config.repo, branch=self.source.branch
        )
        await self._append(stream, events)
        if isinstance(observation, Unavailable):
            self._unavailable(observation.reason)
            return
        self._report.unavailable = None
        if self._repo.last_planned != observation.head:
            await self._plan(stream, observation)
        self._report.head = observation.head

    def _unavailable(self, reason: str) -> None:
        if self._report.unavailable is None:
            log.warning("repository unavailable: %s", reason)
        self._report.unavailable = reason

    async def _plan(
        self, stream: str, observation: Fetched, *, allow_deletes: bool = False
    ) -> None:
        head = observation.head
        base = plan_base(self._repo, observation)
        if base is not None and not await self._known(base):
            base = None  # the mirror lost it: count every prefix as changed
        state = await read_commit_state(
            self.source, head, base=base, select=render_filter(self._deployed)
        )
        assert self.account is not None
        ctx = PlanContext(
            new_id=self.ids,
            default_region=self.config.region,
            default_account=self.account,
            allow_deletes=allow_deletes,
        )
        plan = plan_commit(state, self._deployed, ctx)
        requested: list[str] = []
        for fn_stream, event in plan.function_events:
            await self._append(fn_stream, [event], commit=head)
            if isinstance(event, DeploymentRequested):
                requested.append(fn_stream)
        # Last: CommitPlanned closes the plan only once every decision in it is durable.
        await self._append(stream, plan.repo_events, commit=head)
        self._report.rejected.extend(
            e for e in plan.repo_events if isinstance(e, DefinitionRejected)
        )
        for action in plan.actions:
            if action.action != "nothing":
                log.info("%s: %s (%s)", action.prefix, action.action, action.reason)
        for fn_stream in requested:
            self._start_saga(fn_stream)

    async def _known(self, sha: str) -> bool:
        try:
            await self.source.run(lambda: self.source.commit_info(sha))
        except (KeyError, GlamError):
            return False
        return True

    async def _append(
        self, stream: str, events: Sequence[Event], *, commit: str | None = None
    ) -> None:
        if not events:
            return
        batch = stamped(events, iter(self.ids, None), commit=commit)
        # Shielded: once decided, a plan is recorded whole even while the engine stops.
        with anyio.CancelScope(shield=True):
            recorded = await self.store.append(stream, batch, expected_version=ANY_VERSION)
        # Folded by reading on from the last folded position, not record by record: the
        # sagas append meanwhile, and jumping past their events would leave a finished
        # deployment in flight for the planner.
        await self._catch_up()
        for record in recorded:
            self._saw(record)

    def _saw(self, record: RecordedEvent) -> None:
        if self.on_event is not None:
            self.on_event(record)

    # -- sagas ---------------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Start a saga for every function stream the log leaves with work in flight."""
        states: dict[str, SagaState] = {}
        position = 0
        while True:
            batch = await self.store.read_all(position + 1, limit=1_000)
            for record in batch:
                position = record.position
                if isinstance(record.event, OperatorRequested) and record.meta.causation_id:
                    self._handled_ops.add(record.meta.causation_id)
                if not record.stream.startswith(FUNCTION_PREFIX):
                    continue
                state = states.get(record.stream)
                if state is None:
                    state = initial_state(parse_function_stream(record.stream)[2])
                states[record.stream] = evolve(state, record.event)
            if len(batch) < 1_000:
                break
        for stream, state in sorted(states.items()):
            if not state.idle:
                log.info("%s: resuming the deployment in flight", stream)
                self._start_saga(stream)

    def _start_saga(self, stream: str) -> None:
        if stream in self._running:
            self._dirty.add(stream)  # the running saga looks again before it ends
            return
        assert self._tg is not None
        self._running.add(stream)
        self._tg.start_soon(self._saga, stream, name=f"glam saga {stream}")

    async def _saga(self, stream: str) -> None:
        try:
            async with self._capacity:
                ports = await self._ports_of(stream)
                while True:
                    self._dirty.discard(stream)
                    run = await run_saga(
                        stream,
                        self.store,
                        ports.lambda_api,
                        ports.alarms,
                        ports.sources,
                        self.clock,
                        self.ids,
                        policy=self.config.policy,
                        on_event=self._saw,
                    )
                    self._report.finished.extend((stream, f) for f in run.finished)
                    if stream not in self._dirty:
                        break
        except StoreError:
            raise  # the log itself failed: nothing can go on safely
        except (GlamError, InvariantViolation) as exc:
            # One function's trouble must not stop the others; its stream keeps the intent,
            # so the next start resumes it.
            text = exc.one_line() if isinstance(exc, GlamError) else f"invariant: {exc}"
            log.error("%s: saga stopped: %s", stream, text)
            self._report.errors.append(f"{stream}: {text}")
        except Exception as exc:
            # The runner records a port's unexpected error as a failed step; anything still
            # escaping is a bug in glam, and it must stop this function only, not the engine.
            log.exception("%s: saga stopped by an unexpected error", stream)
            self._report.errors.append(f"{stream}: unexpected {type(exc).__name__}: {exc}")
        finally:
            self._running.discard(stream)
            self._dirty.discard(stream)
            self._changed.set()

    async def _ports_of(self, stream: str) -> RegionPorts:
        account, region, _ = parse_function_stream(stream)
        if account != self.account:
            raise ConfigError(
                f"{stream} is in account {account}, the credentials are for {self.account}",
                hint="run one engine per account, with that account's credentials",
            )
        ports = await self.ports.region(region)
        fp = self.failpoints
        if not fp.active:
            return ports
        return RegionPorts(
            region=region,
            lambda_api=fp.guard(ports.lambda_api),
            alarms=ports.alarms,
            sources=fp.guard(ports.sources),
        )

    # -- operator commands ---------------------------------------------------------------------

    async def _operator_loop(self) -> None:
        while True:
            try:
                await self._operator_pass()
            except StoreError:
                raise
            except GlamError as exc:
                log.error("operator commands: %s", exc.one_line())
            await anyio.sleep(self.config.ops_poll)

    async def _operator_pass(self) -> None:
        """Hand every new command of the ``ops`` stream to its target, in order. A command that
        must wait (an allow-deletes while the branch is not known) is skipped for this pass
        only: the ones after it are still handed over, and the position stays before it."""
        async with self._plan_lock:
            deferred = False
            for record in await self.store.read_stream(OPS_STREAM, self._ops_version + 1):
                command = record.event
                if (
                    isinstance(command, OperatorCommandIssued)
                    and record.meta.event_id not in self._handled_ops
                ):
                    if not await self._hand_over(record, command):
                        deferred = True  # next pass starts from here again
                        continue
                    self._handled_ops.add(record.meta.event_id)
                if not deferred:
                    self._ops_version = record.version

    async def _hand_over(self, record: RecordedEvent, command: OperatorCommandIssued) -> bool:
        """Act on one command; False when it must wait for a later pass. A command that
        cannot apply (nothing in flight any more, or not the deployment the CLI checked it
        against) is recorded as ignored, with why: the CLI checked it when it was given, so
        only a race with the saga lands here, and it must never reach a later deployment."""
        actor = record.meta.actor
        what = f"{command.command} of {command.target} by {actor}"
        copy = OperatorRequested(
            command=command.command, target=command.target, actor=actor, reason=command.reason
        )
        if command.command == "allow_deletes":
            return await self._allow_deletes(record, copy)
        stream = command.target
        if not stream.startswith(FUNCTION_PREFIX):
            await self._ignore(OPS_STREAM, copy, record, "not a function stream", what)
            return True
        wanted = command.deployment_id
        if command.command == "retry":
            current = deployed_from_events(await self.store.read_stream(stream)).get(stream)
            current = current or DeployedState(stream=stream)
            assert self.account is not None
            ctx = PlanContext(
                new_id=self.ids, default_region=self.config.region, default_account=self.account
            )
            repo = self._repo_stream()
            planned = [] if repo is None else await self.store.read_stream(repo)
            head = head_action((r.event for r in planned), stream)
            refusal = retry_refusal(current, head)
            rolled_back = current.rolled_back.deployment_id if current.rolled_back else None
            if refusal is None and wanted is not None and wanted != rolled_back:
                refusal = f"deployment {wanted} is no longer the rolled-back one"
            request = plan_retry(current, ctx, head) if refusal is None else None
            if request is None:
                await self._ignore(stream, copy, record, refusal or "nothing to retry", what)
                return True
            # One append: the copy that marks the command handled and the request it makes.
            await self._append_handed(stream, [copy, request], record, commit=request.commit)
            log.info("%s: retrying deployment of commit %s", stream, request.commit[:12])
        else:
            state, _ = await load_saga(self.store, stream, self.config.policy)
            if state.active is None:
                await self._ignore(stream, copy, record, "no deployment in flight", what)
                return True
            did = state.active.deployment_id
            if wanted is not None and wanted != did:
                note = f"deployment {wanted} is no longer in flight ({did} is)"
                await self._ignore(stream, copy, record, note, what)
                return True
            copy = copy.model_copy(update={"deployment_id": did})
            await self._append_handed(stream, [copy], record, commit=state.active.request.commit)
            log.info("%s: %s requested by %s (%s)", stream, command.command, actor, did)
        self._start_saga(stream)
        return True

    async def _ignore(
        self, stream: str, copy: OperatorRequested, record: RecordedEvent, note: str, what: str
    ) -> None:
        """Record ``copy`` as handled but ignored: a restart does not hand it over again, and
        ``glam events`` shows why nothing happened."""
        log.warning("%s ignored: %s", what, note)
        ignored = copy.model_copy(update={"outcome": "ignored", "note": note})
        await self._append_handed(stream, [ignored], record, commit=None)

    async def _allow_deletes(self, record: RecordedEvent, copy: OperatorRequested) -> bool:
        stream = self._repo_stream()
        if stream is None:
            return False
        sha = copy.target
        held = held_deletes(r.event for r in await self.store.read_stream(stream))
        if sha not in held:
            what = f"allow-deletes of {sha[:12]} by {copy.actor}"
            await self._ignore(stream, copy, record, "no deletes held for it", what)
            return True
        await self._catch_up()
        # Planned again with the guard lifted. Deletes already requested are not requested
        # twice, so a crash before the copy below is recorded only plans this once more.
        await self._plan(stream, Fetched(head=sha, commits=()), allow_deletes=True)
        await self._append_handed(stream, [copy], record, commit=sha)
        log.info("deletes of %s allowed by %s", sha[:12], copy.actor)
        return True

    async def _append_handed(
        self,
        stream: str,
        events: Sequence[Event],
        command: RecordedEvent,
        *,
        commit: str | None,
    ) -> None:
        cause = command.meta.event_id
        # Ids made from the command's id: appending the same hand-over again (after a crash
        # right after it) stores nothing new.
        batch = stamped(
            events,
            (f"{cause}:handed:{index}" for index in itertools.count()),
            actor=command.meta.actor,
            commit=commit,
            causation_id=cause,
        )
        with anyio.CancelScope(shield=True):
            recorded = await self.store.append(stream, batch, expected_version=ANY_VERSION)
        for rec in recorded:
            self._saw(rec)  # folded by the next catch-up, in log order

    async def _wait_idle(self) -> None:
        while self._running:
            self._changed = anyio.Event()
            await self._changed.wait()

    # -- for callers and tests -----------------------------------------------------------------

    @property
    def running(self) -> frozenset[str]:
        """Function streams whose saga task is running or queued."""
        return frozenset(self._running)

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
