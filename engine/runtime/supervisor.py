"""The saga supervisor: one task per function stream with work to do, at most ``max_parallel``
running at a time, in the engine's task group.

A saga is started by recovery (a stream the log leaves with work in flight), by the planner
(a new request) and by an operator's hand-over. Asking for a stream whose saga already runs
marks it dirty instead: the running task looks at its stream once more before it ends, so a
request appended while it finished is never left without a saga.

One function's trouble never stops the others: a saga stopped by an error is logged and
reported, and its stream keeps the intent, so the next start resumes it. Only a failing event
store stops the engine, because then nothing can go on safely.

A function in an account the engine cannot act in (not its own and no configured role — the
planner refuses such definitions, but a log written before may hold one — or a role it may
not assume) never wedges the log: a deployment that has not made a single AWS call yet is
recorded ``failed`` with the reason, so the function is not in flight for ever; one that
already acted waits, in flight, until the account can be acted in again (finishing it
without AWS would leave its alias half-shifted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import anyio
from anyio.abc import TaskGroup

from engine.errors import ConcurrencyConflict, FencedOut, GlamError, StoreError
from engine.events import RecordedEvent, stamped
from engine.events.function import DeploymentFinished
from engine.logs import get_logger
from engine.ports import Clock, EventStore
from engine.runtime.failpoints import Failpoints
from engine.runtime.providers import PortsProvider, RegionPorts
from engine.runtime.report import EventHook, RunReport
from engine.runtime.saga_runner import load_saga, run_saga
from engine.saga import InvariantViolation, SagaPolicy, evolve, initial_state
from engine.saga.rollback import unreachable
from engine.saga.state import SagaState
from engine.streams import FUNCTION_PREFIX, parse_function_stream

log = get_logger("engine")


class Supervisor:
    """Runs sagas in ``task_group``, each with the ports of its function's account and
    region (``ports``): a stream of an account the engine cannot act in is never deployed
    with another account's credentials."""

    def __init__(
        self,
        task_group: TaskGroup,
        store: EventStore,
        ports: PortsProvider,
        *,
        clock: Clock,
        ids: Callable[[], str],
        policy: SagaPolicy,
        max_parallel: int,
        failpoints: Failpoints,
        report: RunReport,
        on_event: EventHook,
        store_of: Callable[[str], EventStore | None] | None = None,
    ) -> None:
        self._tg = task_group
        self._store = store
        self._ports = ports
        self._clock = clock
        self._ids = ids
        self._policy = policy
        self._failpoints = failpoints
        self._report = report
        self._on_event = on_event
        self._capacity = anyio.CapacityLimiter(max_parallel)
        self._running: set[str] = set()  # streams with a task, running or queued
        self._dirty: set[str] = set()  # streams asked to look again while their task runs
        self._changed = anyio.Event()
        self._recovered: dict[str, SagaState] = {}
        # With several engines on one log: the store a stream's saga appends through (fenced
        # by its shard's lease), None for a stream of a shard another engine holds.
        self.store_of = store_of
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._ended: dict[str, anyio.Event] = {}

    @property
    def running(self) -> frozenset[str]:
        return frozenset(self._running)

    # -- recovery ------------------------------------------------------------------------------

    def recovering(self, record: RecordedEvent) -> None:
        """Fold one event of the log read at start into the saga state of its stream."""
        if not record.stream.startswith(FUNCTION_PREFIX):
            return
        state = self._recovered.get(record.stream)
        if state is None:
            state = initial_state(parse_function_stream(record.stream)[2])
        self._recovered[record.stream] = evolve(state, record.event)

    def resume(self) -> None:
        """Start a saga for every stream the log read at start leaves with work in flight."""
        recovered, self._recovered = self._recovered, {}
        for stream, state in sorted(recovered.items()):
            if not state.idle:
                log.info("%s: resuming the deployment in flight", stream)
                self.start(stream)

    # -- sagas ---------------------------------------------------------------------------------

    def start(self, stream: str) -> None:
        """Run the saga of ``stream``, or have its running saga look again before it ends.
        A stream of a shard another engine leases is left to that engine."""
        if stream in self._running:
            self._dirty.add(stream)
            return
        store = self._store if self.store_of is None else self.store_of(stream)
        if store is None:
            return
        self._running.add(stream)
        self._scopes[stream] = scope = anyio.CancelScope()
        self._ended[stream] = anyio.Event()
        self._tg.start_soon(self._saga, stream, store, scope, name=f"glam saga {stream}")

    async def stop(self, streams: Iterable[str]) -> None:
        """Stop the sagas of ``streams`` now (their shard's lease is lost) and wait until they
        have: an append under way finishes (shielded) or is refused by its fence."""
        ended = [(self._scopes[s], self._ended[s]) for s in set(streams) & self._running]
        for scope, _ in ended:
            scope.cancel()
        for _, event in ended:
            await event.wait()

    async def wait_idle(self) -> None:
        """Return once no saga is running or queued."""
        while self._running:
            self._changed = anyio.Event()
            await self._changed.wait()

    async def _saga(self, stream: str, store: EventStore, scope: anyio.CancelScope) -> None:
        with scope:
            await self._saga_in(stream, store)
        if scope.cancelled_caught:
            log.info("%s: saga stopped: its shard's lease is lost", stream)

    async def _saga_in(self, stream: str, store: EventStore) -> None:
        try:
            async with self._capacity:
                try:
                    ports = await self._ports_of(stream)
                except StoreError:
                    raise
                except GlamError as exc:
                    if exc.retryable:
                        raise
                    # It will not clear by waiting: end what waits on this stream with why,
                    # so the log is not left with a deployment in flight for ever.
                    await self._unreachable(stream, store, exc.one_line())
                    return
                while True:
                    self._dirty.discard(stream)
                    run = await run_saga(
                        stream,
                        store,
                        ports.lambda_api,
                        ports.alarms,
                        ports.sources,
                        self._clock,
                        self._ids,
                        policy=self._policy,
                        on_event=self._on_event,
                        code_objects=ports.code,
                    )
                    self._report.finished.extend((stream, f) for f in run.finished)
                    if stream not in self._dirty:
                        break
        except FencedOut as exc:
            # Another engine owns the shard now and resumes this saga from the log.
            log.info("%s: saga stopped: %s", stream, exc.message)
        except StoreError:
            raise  # the log itself failed: nothing can go on safely
        except (GlamError, InvariantViolation) as exc:
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
            self._scopes.pop(stream, None)
            self._ended.pop(stream).set()
            self._changed.set()

    async def _unreachable(self, stream: str, store: EventStore, reason: str) -> None:
        """Record ``unreachable``'s events: the deployments this stream waits on end with the
        reason (one that has changed AWS already stays in flight unless an operator aborts
        it), and the run reports them."""
        log.error("%s: %s", stream, reason)
        while True:
            state, version = await load_saga(store, stream, self._policy)
            events = unreachable(state, reason)
            if not events:
                self._report.errors.append(f"{stream}: {reason}")
                return
            batch = stamped(events, iter(self._ids, None))
            try:
                with anyio.CancelScope(shield=True):
                    recorded = await store.append(stream, batch, expected_version=version)
            except ConcurrencyConflict:
                continue  # a request or command arrived: decide again
            for record in recorded:
                self._on_event(record)
                if isinstance(record.event, DeploymentFinished):
                    self._report.finished.append((stream, record.event))
            return

    async def _ports_of(self, stream: str) -> RegionPorts:
        account, region, _ = parse_function_stream(stream)
        ports = await self._ports.region(region, account)
        fp = self._failpoints
        if not fp.active:
            return ports
        return RegionPorts(
            region=region,
            lambda_api=fp.guard(ports.lambda_api),
            alarms=ports.alarms,
            sources=fp.guard(ports.sources),
            code=ports.code,
        )
