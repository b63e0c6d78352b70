"""Time travel: the views as they were at any position of the log.

``await views_at(store, position)`` starts from the nearest snapshot at or before the position
that the projection runner saved (``projections.runner``), or from a recent answer of its own
if one is nearer, and folds only the events after it, with the same ``Views.apply`` as every
fold. A log without snapshots (one written before them, or shorter than the snapshot
interval) is folded from position 0, as before. A snapshot this glam cannot read (another
version's format) is never used; a row of one that does not decode raises
``SnapshotUnreadable`` (a ``StoreCorrupt``) when it is read, never passing for a row.

The answers are facts about an append-only log, so they never go stale: each store keeps the
last few (``History``), for callers that ask about nearby positions again and again (the CLI
asks once; an API or a dashboard many times).
"""

from __future__ import annotations

import heapq
import weakref
from collections import OrderedDict
from collections.abc import Collection

from engine.events import RecordedEvent
from engine.ports import ProjectionStore, RowKey
from engine.store.records import gc_paused
from projections.runner import PROJECTION
from projections.views import VIEWS, SnapshotUnreadable, Views, snapshot_format, touched

READ_BATCH = 5_000
# The most events after a snapshot a partial read holds in memory (it must see them all to
# know which rows they change before it reads any): further from the snapshot, the views
# are read whole and the events folded batch by batch.
PARTIAL_TAIL = 20_000


class History:
    """The views at any position of one store's log; remembers the last ``size`` answers."""

    def __init__(self, store: ProjectionStore, *, size: int = 4) -> None:
        self.store = store
        self.size = max(1, size)
        self._answers: OrderedDict[int, Views] = OrderedDict()
        #: where the last answer started: "cache", "snapshot" or "log", and from which position
        self.last_start: tuple[str, int] = ("log", 0)

    async def at(
        self,
        position: int,
        *,
        snapshots: bool = True,
        whole: Collection[str] | None = None,
        recent: int = 0,
    ) -> Views:
        """The views after the event at ``position`` (the end of the log if it is past it;
        empty views at 0). The caller may change the result: it is a copy.

        Rows that came from a snapshot are decoded when first read, and one that does not
        decode raises ``SnapshotUnreadable`` then (the file was altered); ``snapshots=False``
        folds from position 0 instead, without using any snapshot or earlier answer.

        ``whole`` (default: every view) names the views the caller reads whole; of the
        others only the ``recent`` rows changed last are read from a snapshot (what
        ``glam replay --at`` prints): they are counted, and ``recent`` reads them, but
        reading any other of their rows raises ``RowsNotRead``."""
        end = max(0, min(position, await self.store.last_position()))
        if not snapshots:
            self.last_start = ("log", 0)
            with gc_paused():
                return await self._fold(Views(), end)
        known = self._answers.get(end)
        if known is not None:
            self._answers.move_to_end(end)
            self.last_start = ("cache", end)
            return known.copy()
        if whole is not None:
            try:
                with gc_paused():
                    partial = await self._read_for(end, whole, recent)
            except SnapshotUnreadable:
                partial = None  # read whole below, which folds from position 0
            if partial is not None:
                return partial
        with gc_paused():
            try:
                views = await self._fold(await self._start(end), end)
            except SnapshotUnreadable:
                self.last_start = ("log", 0)
                views = await self._fold(Views(), end)
        self._answers[end] = views
        while len(self._answers) > self.size:
            self._answers.popitem(last=False)
        return views.copy()

    async def _read_for(self, end: int, whole: Collection[str], recent: int) -> Views | None:
        """The views at ``end`` from the nearest snapshot, of which only the rows a caller
        reads are read: every row of the views in ``whole``, the ``recent`` rows of the
        others changed last, and the rows the events after the snapshot change. None when
        an earlier answer is nearer, there is no snapshot (or the runner dropped it while it
        was read), or more than ``PARTIAL_TAIL`` events follow it: the caller reads the
        views whole."""
        cached = max((p for p in self._answers if p <= end), default=-1)
        listed = await self.store.list_snapshot(PROJECTION, end, snapshot_format())
        if listed is None or listed[0] <= cached:
            return None
        at, listing = listed
        if end - at > PARTIAL_TAIL:
            return None
        tail = await self._read(at, end)
        wanted: set[RowKey] = {key for record in tail for key in touched(record)}
        for spec in VIEWS:
            rows = listing.get(spec.name, {})
            if spec.name in whole:
                wanted.update((spec.name, key) for key in rows)
            else:
                # Within a view no two rows have the same position (an event changes one).
                top = heapq.nlargest(recent, rows.values())
                if top:
                    wanted.update((spec.name, k) for k, p in rows.items() if p >= top[-1])
        listed_keys = {(view, key) for view, key in wanted if key in listing.get(view, {})}
        read = await self.store.load_snapshot_rows(PROJECTION, at, listed_keys)
        if read is None:
            return None
        views = Views.from_listing(at, listing, read)
        for record in tail:
            views.apply(record)
        self.last_start = ("snapshot", at)
        return views

    async def _read(self, after: int, end: int) -> list[RecordedEvent]:
        """The events after ``after`` up to ``end``."""
        records: list[RecordedEvent] = []
        while after < end:
            batch = await self.store.read_all(after + 1, limit=min(READ_BATCH, end - after))
            if not batch:
                break
            records += batch
            after = batch[-1].position
        return records

    async def _start(self, end: int) -> Views:
        """The nearest known views at or before ``end``: an earlier answer or a snapshot."""
        cached = max((p for p in self._answers if p <= end), default=-1)
        stored = await self.store.snapshots(PROJECTION)
        nearest = max((p for p, f in stored if p <= end and f == snapshot_format()), default=-1)
        snapshot = None
        if nearest > cached:
            snapshot = await self.store.load_snapshot(PROJECTION, end, snapshot_format())
        if snapshot is not None and snapshot[0] > cached:
            self.last_start = ("snapshot", snapshot[0])
            return Views.from_snapshot(*snapshot)
        if cached >= 0:
            self.last_start = ("cache", cached)
            return self._answers[cached].copy()
        self.last_start = ("log", 0)
        return Views()

    async def _fold(self, views: Views, end: int) -> Views:
        while views.position < end:
            batch = await self.store.read_all(
                views.position + 1, limit=min(READ_BATCH, end - views.position)
            )
            if not batch:
                break
            for record in batch:
                views.apply(record)
        return views


_histories: weakref.WeakKeyDictionary[ProjectionStore, History] = weakref.WeakKeyDictionary()


def history(store: ProjectionStore) -> History:
    """The store's ``History`` (one per store object, gone with it)."""
    found = _histories.get(store)
    if found is None:
        found = _histories[store] = History(store)
    return found


async def views_at(store: ProjectionStore, position: int) -> Views:
    """The views as they were after the event at ``position`` (see the module docstring)."""
    return await history(store).at(position)
