"""The projection runner: keeps the stored views equal to the fold of the log.

It reads the log from its checkpoint, folds the events into the views with ``Views.apply`` and
writes the changed rows and the new checkpoint in ONE transaction, so a crash leaves the views
either before or after a batch, never half way. ``rebuild`` resets to position 0 and runs the
very same code, which is why a rebuilt view equals an incrementally built one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.ports import ProjectionStore
from engine.store.records import gc_paused
from projections.views import RowKey, Views

if TYPE_CHECKING:
    from engine.store.memory import MemoryEventStore
    from engine.store.sqlite import SqliteEventStore

PROJECTION = "views"


class ProjectionRunner:
    """Folds the log into the stored views. ``batch`` events per transaction."""

    def __init__(self, store: ProjectionStore, *, batch: int = 1_000) -> None:
        self.store = store
        self.batch = batch
        self.views: Views | None = None
        self._stale = False  # the stored rows are in an older shape: replace them all

    async def load(self) -> Views:
        """The stored views and their checkpoint (empty views at 0 when an earlier glam
        stored them in a shape this one does not read: the next catch-up rebuilds them)."""
        checkpoint, rows = await self.store.load_views(PROJECTION)
        self.views = Views.from_rows(checkpoint, rows)
        self._stale = self.views.position != checkpoint
        return self.views

    async def catch_up(self) -> int:
        """Fold everything after the checkpoint; the new checkpoint."""
        views = self.views or await self.load()
        stale, self._stale = self._stale, False
        return await self._fold_from(views, reset=stale)

    async def rebuild(self) -> int:
        """Drop the stored views and fold the whole log again (same code path)."""
        self.views = Views()
        return await self._fold_from(self.views, reset=True)

    async def run(self) -> None:
        """Catch up, then fold each new event as it is appended (for the engine's task
        group). Writes when the log has nothing more to give, so bursts share a transaction."""
        views = self.views or await self.load()
        await self.catch_up()
        dirty: set[RowKey] = set()
        async for record in self.store.follow(views.position + 1):
            dirty.update(views.apply(record))
            if len(dirty) >= self.batch or record.position >= await self.store.last_position():
                await self._save(views, dirty, reset=False)
                dirty = set()

    async def _fold_from(self, views: Views, *, reset: bool) -> int:
        # The whole catch-up, awaits included: it ends when the log does (see gc_paused).
        with gc_paused():
            while True:
                records = await self.store.read_all(views.position + 1, limit=self.batch)
                dirty: set[RowKey] = set()
                for record in records:
                    dirty.update(views.apply(record))
                if records or reset:
                    await self._save(views, dirty, reset=reset)
                    reset = False
                if len(records) < self.batch:
                    return views.position

    async def _save(self, views: Views, dirty: set[RowKey], *, reset: bool) -> None:
        rows = {row_key: views.row_text(*row_key) for row_key in dirty}
        await self.store.save_views(PROJECTION, views.position, rows, reset=reset)


if TYPE_CHECKING:  # both stores must satisfy the ports; mypy checks it here

    def _conforms(sqlite: SqliteEventStore, memory: MemoryEventStore) -> list[ProjectionStore]:
        return [sqlite, memory]
