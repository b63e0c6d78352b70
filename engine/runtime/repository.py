"""The watched branch: poll it, record what is new, plan the head against what the log says is
deployed, and append the decisions.

Write-ahead: the planner's function events (``DeploymentRequested`` among them) are appended
before the ``CommitPlanned`` that closes the plan, so a crash between the two plans the head
again, which the planner answers with "already in progress"; a saga starts only once its
request is durable.

The repository's state and every function's ``DeployedState`` are folded from the log, as far
as ``position``; each look reads on from there, so events the sagas append meanwhile are
folded in log order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio

from engine.errors import GlamError, StoreError
from engine.events import stamped
from engine.events.catalog import Event
from engine.events.function import DeploymentRequested
from engine.events.repo import DefinitionRejected
from engine.logs import get_logger
from engine.observe import (
    Fetched,
    RepoState,
    Unavailable,
    decide_observation,
    evolve_repo,
    plan_base,
)
from engine.planner import DeployedState, PlanContext, evolve_deployed, plan_commit, render_filter
from engine.ports import ANY_VERSION, Clock, EventStore, RepoSource
from engine.runtime.report import EventHook, RunReport, read_log
from engine.streams import FUNCTION_PREFIX, repo_stream

log = get_logger("engine")


class Repository:
    """One branch of ``url`` read through ``source``, planned into ``store``.

    ``start_saga`` is called for each function stream a plan requests a deployment for;
    ``on_event`` sees every event appended here. ``lock`` is held while the branch is planned:
    an operator's allow-deletes plans too, and the two must not interleave.
    """

    def __init__(
        self,
        source: RepoSource,
        store: EventStore,
        *,
        url: str,
        region: str,
        account: str,
        ids: Callable[[], str],
        report: RunReport,
        on_event: EventHook,
        start_saga: Callable[[str], None],
    ) -> None:
        self._source = source
        self._store = store
        self._url = url
        self._region = region
        self._account = account
        self._ids = ids
        self._report = report
        self._on_event = on_event
        self._start_saga = start_saga
        self.lock = anyio.Lock()
        # Folded from the log as far as ``_position``: the repository and every function.
        self._position = 0
        self._repo = RepoState()
        self._deployed: dict[str, DeployedState] = {}

    @property
    def stream(self) -> str | None:
        """The branch's stream, or None while the default branch is not known yet."""
        branch = self._source.branch
        return repo_stream(self._url, branch) if branch else None

    async def loop(self, interval: float, clock: Clock) -> None:
        """Poll every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.poll()
            except StoreError:
                raise
            except GlamError as exc:
                # A bad poll (a broken mirror, an unreadable commit) is retried at the next.
                log.error("repository poll failed: %s", exc.one_line())
            await clock.sleep(interval)

    async def poll(self) -> None:
        """One look at the branch: record what is new, plan the head if not yet planned."""
        async with self.lock:
            await self._poll_locked()

    async def _poll_locked(self) -> None:
        if self._source.branch is None:
            # The default branch is learnt from the first fetch; the repository stream is
            # named after it, so nothing can be recorded before.
            first = await self._source.observe(None)
            if isinstance(first, Unavailable):
                self._unavailable(first.reason)
                return
            self._position, self._repo, self._deployed = 0, RepoState(), {}
        await self.catch_up()
        observation = await self._source.observe(self._repo.last_sha)
        stream, branch = self.stream, self._source.branch
        # Observed once already: the branch is known.
        assert stream is not None
        assert branch is not None
        events = decide_observation(self._repo, observation, url=self._url, branch=branch)
        await self.append(stream, events)
        if isinstance(observation, Unavailable):
            self._unavailable(observation.reason)
            return
        self._report.unavailable = None
        if self._repo.last_planned != observation.head:
            await self.plan(stream, observation)
        self._report.head = observation.head

    def _unavailable(self, reason: str) -> None:
        if self._report.unavailable is None:
            log.warning("repository unavailable: %s", reason)
        self._report.unavailable = reason

    async def plan(self, stream: str, observation: Fetched, *, allow_deletes: bool = False) -> None:
        """Plan ``observation.head`` and append the plan (call with ``lock`` held)."""
        head = observation.head
        base = plan_base(self._repo, observation)
        if base is not None and not await self._source.has_commit(base):
            base = None  # the mirror lost it: count every prefix as changed
        state = await self._source.commit_state(
            head, base=base, select=render_filter(self._deployed)
        )
        ctx = PlanContext(
            new_id=self._ids,
            default_region=self._region,
            default_account=self._account,
            allow_deletes=allow_deletes,
        )
        plan = plan_commit(state, self._deployed, ctx)
        requested: list[str] = []
        for fn_stream, event in plan.function_events:
            await self.append(fn_stream, [event], commit=head)
            if isinstance(event, DeploymentRequested):
                requested.append(fn_stream)
        # Last: CommitPlanned closes the plan only once every decision in it is durable.
        await self.append(stream, plan.repo_events, commit=head)
        self._report.rejected.extend(
            e for e in plan.repo_events if isinstance(e, DefinitionRejected)
        )
        for action in plan.actions:
            if action.action != "nothing":
                log.info("%s: %s (%s)", action.prefix, action.action, action.reason)
        for fn_stream in requested:
            self._start_saga(fn_stream)

    async def catch_up(self) -> None:
        """Fold what the log gained since the last look into the repository and functions."""
        stream = self.stream
        async for record in read_log(self._store, self._position):
            self._position = max(self._position, record.position)
            if record.stream.startswith(FUNCTION_PREFIX):
                current = self._deployed.get(record.stream) or DeployedState(stream=record.stream)
                self._deployed[record.stream] = evolve_deployed(current, record.event)
            elif record.stream == stream:
                self._repo = evolve_repo(self._repo, record.event)

    async def append(
        self, stream: str, events: Sequence[Event], *, commit: str | None = None
    ) -> None:
        """Append ``events`` (ids from ``ids``), shielded: once decided, a plan is recorded
        whole even while the engine stops."""
        if not events:
            return
        batch = stamped(events, iter(self._ids, None), commit=commit)
        with anyio.CancelScope(shield=True):
            recorded = await self._store.append(stream, batch, expected_version=ANY_VERSION)
        # Folded by reading on from the last folded position, not record by record: the
        # sagas append meanwhile, and jumping past their events would leave a finished
        # deployment in flight for the planner.
        await self.catch_up()
        for record in recorded:
            self._on_event(record)
