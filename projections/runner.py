"""The projection runner: keeps the stored views equal to the fold of the log.

It reads the log from its checkpoint, folds the events into the views with ``Views.apply`` and
writes the changed rows and the new checkpoint in ONE transaction, so a crash leaves the views
either before or after a batch, never half way. ``rebuild`` resets to position 0 and runs the
very same code, which is why a rebuilt view equals an incrementally built one.

Every ``snapshot_every`` events the same transaction also saves a snapshot of the views
(``engine.ports.ViewSnapshot``: the rows changed since the previous snapshot), from which
``projections.history`` answers "the views at position P" by folding only what follows the
snapshot. Older snapshots are thinned out (``kept_snapshots``) so that their number grows with
the logarithm of the log, each position keeping one near it. Snapshots are derived data, like
the views: stored in a format this glam does not read (another version wrote them), they are
replaced, never used; a rebuild starts them again.

Each save also writes the planner's inputs (``projections.planner``: each function's deployed
state and each repository's, what ``glam plan`` reads instead of folding the log), in a
transaction of their own right after the views', under their own checkpoint: a log whose views
an earlier glam wrote without them (or a stop between the two) has them folded up to the views
first. Views in an older shape are folded again without touching them; ``rebuild`` folds both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.ports import ProjectionStore, RowKey, ViewSnapshot
from engine.store.records import gc_paused
from projections.planner import PlannerFold
from projections.views import Payload, Views, encode_row, snapshot_format

if TYPE_CHECKING:
    from engine.store.memory import MemoryEventStore
    from engine.store.postgres import PostgresEventStore
    from engine.store.sqlite import SqliteEventStore

PROJECTION = "views"
SNAPSHOT_EVERY = 2_000  # events between snapshots: the most a time travel near the end folds
SNAPSHOT_DENSITY = 16  # snapshots kept at full density at the end, and per doubling of age


def kept_snapshots(positions: Sequence[int], *, every: int, density: int) -> list[int]:
    """The snapshots to keep, oldest first: the latest one, and of the others the first in
    each slot of the log, where a slot is ``every`` events long for the ``density * every``
    events before the latest and doubles each time the age doubles. So the end of the log
    keeps a snapshot every ``every`` events, a position of age A has one within about A *
    2 / density events before it, and the count grows with the logarithm of the log (about
    ``density / 2 + 1`` per doubling)."""
    if not positions:
        return []
    latest = max(positions)
    kept: list[int] = []
    slots: set[tuple[int, int]] = set()
    for position in sorted(set(positions)):
        level = ((latest - position) // (every * density)).bit_length()
        slot = (level, position // (every << level))
        if position == latest or slot not in slots:
            slots.add(slot)
            kept.append(position)
    return kept


class ProjectionRunner:
    """Folds the log into the stored views. ``batch`` events per transaction; a snapshot of
    the views every ``snapshot_every`` events (0: none)."""

    def __init__(
        self,
        store: ProjectionStore,
        *,
        batch: int = 1_000,
        snapshot_every: int = SNAPSHOT_EVERY,
        snapshot_density: int = SNAPSHOT_DENSITY,
    ) -> None:
        self.store = store
        self.batch = batch
        self.snapshot_every = max(0, snapshot_every)
        self.snapshot_density = max(2, snapshot_density)
        self.views: Views | None = None
        self._stale = False  # the stored rows are in an older shape: replace them all
        self._snapshots: list[int] = []  # positions of the stored snapshots in our format
        self._clear = False  # snapshots of another format are stored: replace them
        # Rows changed since the last snapshot: their text when a save has it, else the key.
        self._texts: dict[RowKey, str | None] = {}
        self._keys: set[RowKey] = set()
        self.planner = PlannerFold(store)

    async def load(self) -> Views:
        """The stored views and their checkpoint (empty views at 0 when an earlier glam
        stored them in a shape this one does not read: the next catch-up rebuilds them)."""
        checkpoint, rows = await self.store.load_views(PROJECTION)
        self.views = Views.from_rows(checkpoint, rows)
        self._stale = self.views.position != checkpoint
        stored = await self.store.snapshots(PROJECTION) if self.snapshot_every else []
        ours = [position for position, format_ in stored if format_ == snapshot_format()]
        self._clear = len(ours) < len(stored) or any(p > checkpoint for p in ours)
        self._snapshots = [] if self._clear else ours
        self._texts = {}
        if self._snapshots:  # what changed since the last snapshot
            self._keys = set(self.views.changed_after(self._snapshots[-1]))
        else:  # the first snapshot holds every row
            self._keys = set(self.views.row_keys())
        await self.planner.load()
        return self.views

    async def catch_up(self) -> int:
        """Fold everything after the checkpoint; the new checkpoint."""
        views = self.views or await self.load()
        stale, self._stale = self._stale, False
        return await self._fold_from(views, reset=stale)

    async def rebuild(self) -> int:
        """Drop the stored views (and snapshots) and fold the whole log again (same code
        path)."""
        self.views = Views()
        self.planner.restart()
        return await self._fold_from(self.views, reset=True)

    async def run(self) -> None:
        """Catch up, then fold each new event as it is appended (for the engine's task
        group). Writes when the log has nothing more to give, so bursts share a transaction."""
        views = self.views or await self.load()
        await self.catch_up()
        dirty: set[RowKey] = set()
        async for record in self.store.follow(views.position + 1):
            dirty.update(views.apply(record))
            self.planner.add(record)
            at_end = record.position >= await self.store.last_position()
            if len(dirty) >= self.batch or record.position >= self._next_snapshot() or at_end:
                await self._save(views, dirty, reset=False, at_end=at_end)
                dirty = set()

    async def _fold_from(self, views: Views, *, reset: bool) -> int:
        if reset:  # the first save drops every snapshot with the rows
            self._snapshots, self._clear, self._texts, self._keys = [], False, {}, set()
        # The whole catch-up, awaits included: it ends when the log does (see gc_paused).
        with gc_paused():
            await self._planner_catch_up(views.position)
            while True:
                # A batch ends where a snapshot is due, so snapshots fall every N events.
                limit = min(self.batch, max(1, self._next_snapshot() - views.position))
                records = await self.store.read_all(views.position + 1, limit=limit)
                dirty: set[RowKey] = set()
                for record in records:
                    dirty.update(views.apply(record))
                    self.planner.add(record)
                at_end = len(records) < limit
                if records or reset:
                    await self._save(views, dirty, reset=reset, at_end=at_end)
                    reset = False
                if at_end:
                    if self.planner.position == views.position and self.planner.due(at_end=True):
                        await self.planner.save()  # an earlier batch's, left for the end
                    return views.position

    async def _planner_catch_up(self, position: int) -> None:
        """Bring the planner's inputs up to the views' ``position`` (they lag after an
        upgrade, or a stop between the two saves)."""
        planner = self.planner
        while planner.position < position:
            limit = min(self.batch * 10, position - planner.position)
            records = await self.store.read_all(planner.position + 1, limit=limit)
            if not records:
                return
            for record in records:
                planner.add(record)
            await planner.save()

    def _next_snapshot(self) -> int:
        """The position at which the next snapshot is due (never, without snapshots)."""
        if not self.snapshot_every:
            return 2**62
        last = self._snapshots[-1] if self._snapshots else 0
        return last + self.snapshot_every

    async def _save(
        self, views: Views, dirty: set[RowKey], *, reset: bool, at_end: bool = True
    ) -> None:
        rows = {row_key: views.row_text(*row_key) for row_key in dirty}
        snapshot = None
        if self.snapshot_every:
            self._texts.update(rows)
            if views.position >= self._next_snapshot():
                snapshot = self._snapshot(views)
        await self.store.save_views(
            PROJECTION, views.position, rows, reset=reset, snapshot=snapshot
        )
        if self.planner.position == views.position and self.planner.due(at_end=at_end):
            await self.planner.save()
        if snapshot is not None:
            dropped = set(snapshot.drop)
            self._snapshots = [p for p in self._snapshots if p not in dropped]
            self._snapshots.append(snapshot.position)
            self._clear, self._texts, self._keys = False, {}, set()

    def _snapshot(self, views: Views) -> ViewSnapshot:
        rows: dict[RowKey, Payload | None] = {}
        for row_key, text in self._texts.items():
            row = views.row(*row_key)
            if row is None or text is None:
                rows[row_key] = None
            else:
                rows[row_key] = (row.position, encode_row(text))
        for row_key in self._keys - self._texts.keys():
            rows[row_key] = views.payload(*row_key)
        positions = [*self._snapshots, views.position]
        kept = set(
            kept_snapshots(positions, every=self.snapshot_every, density=self.snapshot_density)
        )
        return ViewSnapshot(
            position=views.position,
            format=snapshot_format(),
            rows=rows,
            drop=[p for p in self._snapshots if p not in kept],
            clear=self._clear,
        )


if TYPE_CHECKING:  # every store must satisfy the ports; mypy checks it here

    def _conforms(
        sqlite: SqliteEventStore, memory: MemoryEventStore, pg: PostgresEventStore
    ) -> list[ProjectionStore]:
        return [sqlite, memory, pg]
