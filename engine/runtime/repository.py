"""One watched branch: poll it, record what is new, plan the head against what the log says is
deployed, and append the decisions.

Write-ahead: the planner's function events (``DeploymentRequested`` among them) are appended
before the ``CommitPlanned`` that closes the plan, so a crash between the two plans the head
again, which the planner answers with "already in progress"; a saga starts only once its
request is durable.

What the log says is folded once for all the branches an engine watches (``LogFold``): every
function's ``DeployedState``, with its owner, and every repository stream's ``RepoState``, as
far as ``position``; each look reads on from there, so events the sagas append meanwhile are
folded in log order. Branches plan one at a time (the fleet's lock), so each plan sees every
claim made before it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import anyio

from engine.errors import FencedOut, GlamError, StoreError
from engine.events import RecordedEvent, stamped
from engine.events.catalog import Event
from engine.events.function import DeploymentRequested
from engine.events.repo import DefinitionRejected, DeletesHeld
from engine.logs import get_logger
from engine.metrics import NO_METRICS, Metrics
from engine.observe import (
    Fetched,
    RepoState,
    Unavailable,
    decide_observation,
    evolve_repo,
    plan_base,
)
from engine.planner import (
    Claimant,
    DeployedState,
    Plan,
    PlanContext,
    fold_deployed,
    plan_commit,
    render_filter,
)
from engine.ports import ANY_VERSION, Clock, EventStore, RepoSource
from engine.redact import redact_url, repository_id
from engine.replan import held_deletes
from engine.runtime.report import EventHook, RunReport, read_log
from engine.runtime.wake import Wakeup
from engine.streams import REPO_PREFIX, repo_stream

log = get_logger("engine")


class LogFold:
    """What the log says, folded once for every branch the engine watches: ``deployed`` by
    function stream (owners included) and ``repos`` by repository stream."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self.position = 0
        self.deployed: dict[str, DeployedState] = {}
        self.repos: dict[str, RepoState] = {}

    async def catch_up(self) -> None:
        """Fold what the log gained since the last look."""
        async for record in read_log(self._store, self.position):
            self.apply(record)

    def apply(self, record: RecordedEvent) -> None:
        if record.position <= self.position:
            return
        self.position = record.position
        fold_deployed(self.deployed, record)
        if record.stream.startswith(REPO_PREFIX):
            current = self.repos.get(record.stream) or RepoState()
            self.repos[record.stream] = evolve_repo(current, record.event)


@dataclass(frozen=True, slots=True)
class PlanDefaults:
    """What every branch's plan shares: the region and account of definitions that name
    none, and the accounts a definition may name (id -> allowed regions, empty: any; None:
    any account, as ``glam plan`` without a configuration)."""

    region: str
    account: str
    accounts: Mapping[str, tuple[str, ...]] | None = None


class Repository:
    """One branch of ``url`` read through ``source``, planned into ``store``.

    ``start_saga`` is called for each function stream a plan requests a deployment for;
    ``on_event`` sees every event appended here. ``lock`` is held while the branch is planned
    (the fleet's, shared by every branch): an operator's allow-deletes plans too, and no two
    plans interleave. ``paths`` limits the functions this branch owns to those folders.
    ``wake`` cuts the loop's wait short (a push); ``metrics`` hears of each successful fetch.
    """

    def __init__(
        self,
        source: RepoSource,
        store: EventStore,
        *,
        url: str,
        defaults: Callable[[], PlanDefaults],
        ids: Callable[[], str],
        report: RunReport,
        on_event: EventHook,
        start_saga: Callable[[str], None],
        lock: anyio.Lock | None = None,
        fold: LogFold | None = None,
        paths: tuple[str, ...] = (),
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._source = source
        self._store = store
        self._url = url
        self._defaults = defaults
        self._ids = ids
        self._report = report
        self._on_event = on_event
        self._start_saga = start_saga
        self._paths = paths
        self.lock = lock or anyio.Lock()
        self.fold = fold or LogFold(store)
        self._stopped = False
        self.wake = Wakeup()
        self._metrics = metrics
        self.url = url
        self.fetched = False  # read at least once since the engine started
        self.unavailable: str | None = None  # why the last look could not read the branch

    @property
    def stream(self) -> str | None:
        """The branch's stream, or None while the default branch is not known yet."""
        branch = self._source.branch
        return repo_stream(self._url, branch) if branch else None

    @property
    def branch(self) -> str | None:
        """The branch read, or None while the default branch is not known yet."""
        return self._source.branch

    @property
    def _repo(self) -> RepoState:
        stream = self.stream
        return self.fold.repos.get(stream, RepoState()) if stream else RepoState()

    @property
    def _deployed(self) -> dict[str, DeployedState]:
        return self.fold.deployed

    @property
    def _report_key(self) -> str:
        return self.stream or redact_url(self._url)

    async def loop(self, interval: float, clock: Clock) -> None:
        """Poll every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.poll()
            except FencedOut:
                # Shared mode: the plan shard went to another engine, which stops this loop.
                log.info("%s: the plan shard's lease is lost", self._report_key)
            except StoreError:
                raise
            except GlamError as exc:
                # A bad poll (a broken mirror, an unreadable commit) is retried at the next.
                log.error("%s: repository poll failed: %s", self._report_key, exc.one_line())
            await self.wake.nap(interval, clock.sleep)

    async def poll(self, *, force: bool = False) -> str | None:
        """One look at the branch: record what is new, plan the head if not yet planned (or
        again, with ``force``). The head it saw (None when the branch could not be read, or
        is no longer watched)."""
        async with self.lock:
            if self._stopped:
                return None
            return await self._poll_locked(force=force)

    async def preview(self) -> tuple[Fetched, str | None, Plan] | None:
        """What planning the head would do now, recording nothing: the observation, the base
        the changes are measured from, and the plan (a dry run). None when the branch cannot
        be read."""
        async with self.lock:
            if self._source.branch is None:
                first = await self._source.observe(None)
                if isinstance(first, Unavailable):
                    return None
            await self.catch_up()
            observation = await self._source.observe(self._repo.last_sha)
            if isinstance(observation, Unavailable):
                return None
            base, plan = await self._plan_of(observation, allow_deletes=False)
            return observation, base, plan

    def stop(self) -> None:
        """No longer watched: no later look records or plans anything, also one that was
        already waiting for the lock when the configuration changed."""
        self._stopped = True

    async def aclose(self) -> None:
        """Release the source (the loop is stopped first)."""
        with anyio.CancelScope(shield=True):
            await self._source.aclose()

    async def _poll_locked(self, *, force: bool = False) -> str | None:
        if self._source.branch is None:
            # The default branch is learnt from the first fetch; the repository stream is
            # named after it, so nothing can be recorded before.
            first = await self._source.observe(None)
            if isinstance(first, Unavailable):
                self._unavailable(first.reason)
                return None
        await self.catch_up()
        observation = await self._source.observe(self._repo.last_sha)
        if self._stopped:
            return None  # no longer watched since this look began: record and plan nothing
        stream, branch = self.stream, self._source.branch
        # Observed once already: the branch is known.
        assert stream is not None
        assert branch is not None
        events = decide_observation(self._repo, observation, url=self._url, branch=branch)
        await self.append(stream, events)
        if isinstance(observation, Unavailable):
            self._unavailable(observation.reason)
            return None
        self._report.unavailable_by.pop(self._report_key, None)
        self._report.unavailable_by.pop(redact_url(self._url), None)
        self.unavailable = None
        self.fetched = True
        self._metrics.fetched(stream)
        # A plan that ran out of render time is made again, new commit or not.
        if force or self._repo.last_planned != observation.head or self._repo.unrendered:
            await self.plan(stream, observation)
        elif stream not in self._report.heads:
            await self._report_held(stream, observation.head)
        self._report.heads[stream] = observation.head
        return observation.head

    async def _report_held(self, stream: str, head: str) -> None:
        """The head was planned by an earlier run: its deletes still held for an operator
        belong in this run's report too (``glam run --once`` must not say all is done)."""
        records = await self._store.read_stream(stream)
        still = held_deletes(r.event for r in records).get(head)
        if still is not None and still not in self._report.held:
            self._report.held.append(still)

    def _unavailable(self, reason: str) -> None:
        if self._report_key not in self._report.unavailable_by:
            log.warning("%s: repository unavailable: %s", self._report_key, reason)
        self._report.unavailable_by[self._report_key] = reason
        self.unavailable = reason

    async def plan(self, stream: str, observation: Fetched, *, allow_deletes: bool = False) -> None:
        """Plan ``observation.head`` and append the plan (call with ``lock`` held)."""
        head = observation.head
        if allow_deletes:  # an operator released them: no longer held in this run's report
            self._report.held = [h for h in self._report.held if h.sha != head]
        _, plan = await self._plan_of(observation, allow_deletes=allow_deletes)
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
        for event in plan.repo_events:
            if isinstance(event, DeletesHeld):
                self._report.held.append(event)
                log.warning(
                    "%s: %d removals held for an operator (glam allow-deletes %s)",
                    stream,
                    len(event.removals) or len(event.prefixes),
                    head[:12],
                )
        for action in plan.actions:
            if action.action != "nothing":
                log.info("%s: %s (%s)", action.prefix, action.action, action.reason)
        for fn_stream in requested:
            self._start_saga(fn_stream)

    async def _plan_of(
        self, observation: Fetched, *, allow_deletes: bool
    ) -> tuple[str | None, Plan]:
        """The base and the plan of ``observation.head`` against the log as folded."""
        # None on the first plan of this stream: every prefix is rendered and compared with
        # what is deployed, so a new branch or another URL of a known repository never
        # skips a change the log has not deployed.
        base = plan_base(self._repo, observation)
        if base is not None and not await self._source.has_commit(base):
            base = None  # the mirror lost it: count every prefix as changed
        branch = self._source.branch
        assert branch is not None  # a stream is named after a known branch
        claimant = Claimant(repository=repository_id(self._url), branch=branch)
        known_select = render_filter(self._deployed, claimant, self._paths)
        unrendered = self._repo.unrendered if base is not None else ()

        def select(prefix: str) -> bool:
            return prefix in unrendered or known_select(prefix)

        state = await self._source.commit_state(
            observation.head, base=base, select=select, known=self._repo.known, first=unrendered
        )
        defaults = self._defaults()
        ctx = PlanContext(
            new_id=self._ids,
            default_region=defaults.region,
            default_account=defaults.account,
            allow_deletes=allow_deletes,
            claimant=claimant,
            paths=self._paths,
            accounts=defaults.accounts,
            unrendered=unrendered,
        )
        return base, plan_commit(state, self._deployed, ctx)

    async def catch_up(self) -> None:
        """Fold what the log gained since the last look into the repository and functions."""
        await self.fold.catch_up()

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
