"""What the dashboard reads: the log's views now or at a position, and the few facts about the
log that no view keeps (bake timers, open drift, each branch's latest plan, repository heads),
indexed as the server folds the log so that a page never scans it.

    board = Board.of(ctx)                        # inside the engine's server
    board = Board(store, state, clock, auth=auth)       # ``glam dashboard --db``: no engine
    at = await board.moment(request)             # None (now) or a position of the log
    views = await board.views(at)                # the same fold as ``glam replay --at``

Time travel starts from the nearest snapshot the projection runner saved, or from an earlier
answer (``projections.history.History``, the same code as ``glam replay --at``), and
remembers the last answers by position, so moving a slider back and forth folds a stretch of
the log once. The board keeps those answers itself, uncopied (pages only read them), so that
a snapshot's rows a page decoded stay decoded for the next request at that position. The
index keeps every fact with its position, so a fact at a position is the
last one at or before it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from aiohttp import web
from markupsafe import Markup

from engine.branch_plans import PLAN_EVENT_TYPES, BranchPlan, latest_plans
from engine.cli.output import parse_moment
from engine.drift.recorded import DRIFT_EVENT_TYPES, open_drift
from engine.errors import GlamError, UsageError
from engine.events import RecordedEvent
from engine.events.function import (
    DeploymentFinished,
    DriftDetected,
    RollbackStarted,
    TimerStarted,
    TrafficShifted,
)
from engine.events.repo import CommitObserved
from engine.ports import Clock, ProjectionStore
from engine.runtime.engine_config import WatchedBranch
from engine.server.auth import Auth
from engine.server.state import LogState
from engine.streams import REPO_PREFIX
from projections.history import History
from projections.views import Views

if TYPE_CHECKING:
    from engine.runtime.engine import Engine
    from engine.server.app import Context

CACHED_MOMENTS = 16  # time-travel answers remembered: a slider dragged back and forth
CACHED_ROWS = 8192  # rendered overview rows remembered: a few versions of 1,000 functions


@runtime_checkable
class _Timed(Protocol):
    """A log that finds the last position recorded at or before a time (every store does)."""

    async def position_at(self, moment: datetime) -> int: ...


@dataclass(frozen=True, slots=True)
class Head:
    """The last commit glam saw on a branch, at ``position``."""

    position: int
    sha: str
    summary: str
    author: str
    recorded_at: datetime


@dataclass
class BoardIndex:
    """Facts of the log no view keeps, each with its position (see the module docstring)."""

    # function stream -> [(position, end of the bake then, or None when none runs)]
    bakes: dict[str, list[tuple[int, datetime | None]]] = field(default_factory=dict)
    drift: list[RecordedEvent] = field(default_factory=list)
    plans: list[RecordedEvent] = field(default_factory=list)
    heads: dict[str, list[Head]] = field(default_factory=dict)  # repository stream -> heads

    def observe(self, record: RecordedEvent) -> None:
        event = record.event
        if record.type in DRIFT_EVENT_TYPES:
            self.drift.append(record)
        if record.type in PLAN_EVENT_TYPES and record.stream.startswith(REPO_PREFIX):
            self.plans.append(record)
        match event:
            case TimerStarted(purpose="bake"):
                self.bakes.setdefault(record.stream, []).append((record.position, event.until))
            case TrafficShifted() | RollbackStarted() | DeploymentFinished():
                if record.stream in self.bakes:
                    self.bakes[record.stream].append((record.position, None))
            case CommitObserved() if record.stream.startswith(REPO_PREFIX):
                head = Head(
                    record.position, event.sha, event.summary, event.author, record.recorded_at
                )
                self.heads.setdefault(record.stream, []).append(head)
            case _:
                pass

    def bake_end(self, stream: str, at: int) -> datetime | None:
        """When the bake running at position ``at`` ends (None: no bake runs)."""
        changes = self.bakes.get(stream)
        if not changes:
            return None
        i = bisect_right(changes, at, key=lambda c: c[0])
        return changes[i - 1][1] if i else None

    def open_drift(self, at: int) -> dict[str, dict[str, DriftDetected]]:
        return open_drift(_until(self.drift, at))

    def latest_plans(self, at: int) -> list[BranchPlan]:
        return latest_plans(_until(self.plans, at))

    def head(self, stream: str, at: int) -> Head | None:
        heads = self.heads.get(stream)
        if not heads:
            return None
        i = bisect_right(heads, at, key=lambda h: h.position)
        return heads[i - 1] if i else None


def _until(records: list[RecordedEvent], at: int) -> Iterable[RecordedEvent]:
    end = bisect_right(records, at, key=lambda r: r.position)
    return records[:end]


class Board:
    """The dashboard's view of one log (see the module docstring). ``engine`` is None for
    ``glam dashboard --db``, which only reads."""

    def __init__(
        self,
        store: ProjectionStore,
        state: LogState,
        clock: Clock,
        *,
        auth: Auth,
        engine: Engine | None = None,
        heartbeat: float = 15.0,
        writable: bool = False,
    ) -> None:
        self.store = store
        self.state = state
        self.clock = clock
        self.auth = auth
        self.engine = engine
        self.heartbeat = heartbeat
        self.writable = writable  # a write token is configured: operator actions can be given
        self.index = BoardIndex()
        self.history = History(store, size=CACHED_MOMENTS)
        self._moments: OrderedDict[int, Views] = OrderedDict()
        # Rendered rows by what they show (pages.overview): a page of a thousand rows renders
        # only those that changed since it was last asked for.
        self._rows: OrderedDict[tuple[object, ...], Markup] = OrderedDict()
        state.observers.append(self.index.observe)

    @classmethod
    def of(cls, ctx: Context) -> Board:
        """The board of the engine's server."""
        return cls(
            ctx.engine.store,
            ctx.state,
            ctx.engine.clock,
            auth=ctx.auth,
            engine=ctx.engine,
            heartbeat=ctx.settings.heartbeat,
            writable=ctx.settings.api_token is not None,
        )

    @property
    def position(self) -> int:
        return self.state.position

    async def moment(self, request: web.Request) -> int | None:
        """The position ``?at=`` asks for (a position, or an ISO-8601 time: the last event
        recorded at or before it); None for now, or a position at or past the live fold's."""
        text = request.query.get("at", "").strip()
        if not text:
            return None
        try:
            wanted = parse_moment(text, option="at")
        except GlamError:
            raise UsageError(
                f"at={text!r} is neither a log position nor an ISO-8601 time",
                hint="e.g. at=120 or at=2026-03-01T10:00:00Z",
            ) from None
        if isinstance(wanted, datetime):
            if not isinstance(self.store, _Timed):
                raise UsageError("this log cannot be searched by time", hint="give a position")
            wanted = await self.store.position_at(wanted)
        position = max(0, wanted)
        return None if position >= self.position else position

    async def views(self, at: int | None) -> Views:
        """The views now (the live fold), or after the event at ``at``."""
        if at is None:
            return self.state.views
        views = self._moments.get(at)
        if views is None:
            views = self._moments[at] = await self.history.at(at)
            while len(self._moments) > CACHED_MOMENTS:
                self._moments.popitem(last=False)
        self._moments.move_to_end(at)
        return views

    def rendered(self, key: tuple[object, ...], make: Callable[[], Markup]) -> Markup:
        """The HTML rendered for ``key``, made by ``make`` the first time it is asked for."""
        found = self._rows.get(key)
        if found is None:
            found = self._rows[key] = make()
            if len(self._rows) > CACHED_ROWS:
                self._rows.popitem(last=False)
        else:
            self._rows.move_to_end(key)
        return found

    def branches(self) -> list[WatchedBranch]:
        """The branches the engine watches, or, without an engine, those the log names."""
        if self.engine is not None:
            return self.engine.watched()
        return [
            WatchedBranch(_url_of(stream), _branch_of(stream), stream, False, None)
            for stream in sorted(self.index.heads)
        ]


def _url_of(stream: str) -> str:
    return stream[len(REPO_PREFIX) :].rpartition("#")[0]


def _branch_of(stream: str) -> str:
    return stream.rpartition("#")[2]
