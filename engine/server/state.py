"""What the server knows of the log: the views, folded in memory as the log grows, and the
few indexes the API and the metrics need that no view keeps.

    state = LogState(store, clock)
    tg.start_soon(state.run)          # folds the whole log, then every event appended
    state.views.functions             # what /api/v1/functions answers
    await state.wait_beyond(position) # an event stream waits here for the next event

Its waits are slept on the engine's clock (``Clock``), as the engine's own loops are.

One task follows the store (``EventStore.follow``), so events appended by the engine and by
other processes (``glam promote`` on the same log) are seen alike. The fold is the one the
projections use (``projections.views.Views.apply``), so the API answers what ``glam status``
and ``glam replay`` would. Starting reads the whole log once; until it has, ``loaded`` is
False and ``/readyz`` says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import anyio

from engine.events import RecordedEvent
from engine.events.function import (
    DeploymentFinished,
    DeploymentRequested,
    DriftDetected,
    DriftResolved,
    FunctionDeleted,
    RollbackStarted,
    TimerStarted,
    TrafficShifted,
)
from engine.events.operator import OperatorCommandIssued
from engine.events.repo import CommitObserved, CommitPlanned
from engine.ports import Clock, EventStore
from engine.streams import REPO_PREFIX
from projections.views import Views


@dataclass
class Tally:
    """Counts folded from the log, for ``/metrics``: they are the log's, so they can be
    checked against it."""

    started: Counter[str] = field(default_factory=Counter)  # by action
    finished: Counter[str] = field(default_factory=Counter)  # by outcome
    commands: Counter[str] = field(default_factory=Counter)  # operator commands by command
    bakes: dict[str, datetime] = field(default_factory=dict)  # function stream -> bake end
    # Function stream -> the paths found drifted and not resolved since (DriftDetected and
    # DriftResolved); a deleted function drifts no more.
    drift: dict[str, set[str]] = field(default_factory=dict)
    drift_found: int = 0  # DriftDetected events


class LogState:
    """See the module docstring."""

    def __init__(self, store: EventStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self.views = Views()
        self.tally = Tally()
        self.loaded = False
        self.closed = False
        # The repository stream each commit was seen on, and the one that last planned each
        # function: the views keep neither, and the API filters deployments by repository.
        self.commit_repos: dict[str, str] = {}
        self.function_repos: dict[str, str] = {}
        self.commit_seen: dict[str, int] = {}  # sha -> position of its first event: list order
        self.commit_seen_at: dict[str, datetime] = {}  # sha -> when glam first recorded it
        self.planned: set[str] = set()  # shas a CommitPlanned was recorded for
        self._planned_at: dict[str, int] = {}  # repository stream -> position of its last plan
        # Per deployment in flight: when it last showed life (its last event, or the end of
        # the timer it waits on), for /readyz's stuck check.
        self.last_activity: dict[str, datetime] = {}
        self._changed = anyio.Event()
        # Told of every event after the fold has it (the dashboard keeps its own indexes).
        self.observers: list[Callable[[RecordedEvent], None]] = []

    @property
    def position(self) -> int:
        return self.views.position

    async def run(self) -> None:
        """Fold the log, then follow it, until cancelled."""
        target = await self._store.last_position()
        if target == 0:
            self._loaded()
        async for record in self._store.follow(self.views.position + 1):
            self.apply(record)
            if not self.loaded and record.position >= target:
                self._loaded()

    def _loaded(self) -> None:
        self.loaded = True
        self._notify()

    def stopping(self) -> bool:
        """Whether the server is stopping (``close`` was called)."""
        return self.closed

    def close(self) -> None:
        """Tell every waiter the server is stopping."""
        self.closed = True
        self._notify()

    def apply(self, record: RecordedEvent) -> None:
        """Fold one event (in position order)."""
        for view, key in self.views.apply(record):
            if view == "commits" and key not in self.commit_seen:
                self.commit_seen[key] = record.position
                self.commit_seen_at[key] = record.recorded_at
        self._index(record)
        for observe in self.observers:
            observe(record)
        if self.loaded:
            self._notify()
        elif record.position % 1000 == 0:
            self._notify()  # waiters see a long load make progress

    async def wait_beyond(self, position: int, within: float) -> bool:
        """Wait until the log passes ``position`` (True), or ``within`` seconds (False), or
        the server stops (False)."""
        return await self._within(within, lambda: self.position > position) and not self.closed

    async def caught_up(self, position: int, within: float = 5.0) -> None:
        """Wait (at most ``within`` seconds) until the fold reaches ``position``."""
        await self._within(within, lambda: self.position >= position)

    async def until_loaded(self, within: float) -> bool:
        """Wait (at most ``within`` seconds) until the log has been read once (True)."""
        return self.loaded or (await self._within(within, lambda: self.loaded) and self.loaded)

    async def _within(self, seconds: float, reached: Callable[[], bool]) -> bool:
        """Wait until ``reached()`` or the server stops (True), or ``seconds`` pass on the
        engine's clock (False)."""
        expired = False
        async with anyio.create_task_group() as tg:

            async def expire() -> None:
                nonlocal expired
                await self._clock.sleep(seconds)
                expired = True
                tg.cancel_scope.cancel()

            async def wait() -> None:
                while not reached() and not self.closed:
                    await self._changed.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(expire)
            tg.start_soon(wait)
        return not expired

    def last_planned(self, stream: str) -> str | None:
        """The commit repository stream ``stream`` planned last."""
        best: tuple[int, str] | None = None
        for sha, repo in self.commit_repos.items():
            if repo == stream and sha in self.planned:
                seen = self.commit_seen.get(sha, 0)
                if best is None or seen > best[0]:
                    best = (seen, sha)
        return best[1] if best else None

    def planned_after(self, sha: str) -> bool:
        """Whether the branch of ``sha`` planned a commit recorded after it."""
        stream = self.commit_repos.get(sha)
        seen = self.commit_seen.get(sha)
        return stream is not None and seen is not None and self._planned_at.get(stream, 0) > seen

    def _notify(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def _index(self, record: RecordedEvent) -> None:
        event = record.event
        tally = self.tally
        match event:
            case CommitObserved() | CommitPlanned() if record.stream.startswith(REPO_PREFIX):
                self.commit_repos.setdefault(event.sha, record.stream)
                if isinstance(event, CommitPlanned):
                    self.planned.add(event.sha)
                    self._planned_at[record.stream] = record.position
                    for action in event.actions:
                        if action.action != "nothing":
                            self.function_repos[action.function] = record.stream
            case DeploymentRequested():
                tally.started[event.action] += 1
                self.last_activity[event.deployment_id] = record.recorded_at
            case DeploymentFinished():
                tally.finished[event.outcome] += 1
                tally.bakes.pop(record.stream, None)
                self.last_activity.pop(event.deployment_id, None)
            case TimerStarted():
                if event.purpose == "bake":
                    tally.bakes[record.stream] = event.until
                self.last_activity[event.deployment_id] = max(event.until, record.recorded_at)
            case TrafficShifted() | RollbackStarted():
                tally.bakes.pop(record.stream, None)
                self._touch(event.deployment_id, record.recorded_at)
            case OperatorCommandIssued():
                tally.commands[event.command] += 1
            case DriftDetected():
                tally.drift.setdefault(record.stream, set()).add(event.path)
                tally.drift_found += 1
            case DriftResolved():
                paths = tally.drift.get(record.stream, set())
                paths.discard(event.path)
                if not paths:
                    tally.drift.pop(record.stream, None)
            case FunctionDeleted():
                tally.drift.pop(record.stream, None)
                self._touch(event.deployment_id, record.recorded_at)
            case _:
                deployment_id = getattr(event, "deployment_id", None)
                if isinstance(deployment_id, str):
                    self._touch(deployment_id, record.recorded_at)

    def _touch(self, deployment_id: str, at: datetime) -> None:
        if deployment_id in self.last_activity:
            self.last_activity[deployment_id] = max(self.last_activity[deployment_id], at)

    def repository_of(self, deployment_commit: str | None, function: str) -> str | None:
        """The repository stream a deployment came from: its commit's, else the last that
        planned its function."""
        if deployment_commit is not None and deployment_commit in self.commit_repos:
            return self.commit_repos[deployment_commit]
        return self.function_repos.get(function)
