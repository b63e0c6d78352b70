"""The drift sweep: every ``interval`` seconds, each function glam deployed is read from AWS
and compared with what the log says it deployed (engine.drift), one function at a time.

The reads go through the background lane of the rate limiters (``RegionPorts.background``):
they take at most a share of each account's budget and only slots no deployment reserved, so
a deployment is never slowed by more than a slot per read. A function with a deployment in
flight is skipped (its saga reads AWS itself), and so is one whose stream grew while it was
being read (its events are appended with the version the read started from; a conflict
drops the findings, the next sweep reads again). A heal request is handed to the
supervisor like the planner's.

With several engines on one log (``engine.runtime.shared``) each sweeps only the functions of
the shards it leases: ``store_of`` gives the fenced store of a stream's shard, None for a
shard another engine holds (skipped), and a sweep whose lease moved on under it writes
nothing (``FencedOut``) and leaves that function to the shard's new owner.

``current()`` gives the drift the log holds open, per function stream, for ``glam status``,
the HTTP server and tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import anyio

from engine.definitions.lambdadef import lambda_model
from engine.drift.compare import Difference, compare
from engine.drift.read import read_live
from engine.drift.watch import Watched, expected, sweep_events, watched
from engine.errors import ConcurrencyConflict, FencedOut, GlamError, StoreError
from engine.events import RecordedEvent, stamped
from engine.events.function import DeploymentRequested, DriftDetected
from engine.logs import get_logger
from engine.ports import Clock, EventStore
from engine.runtime.providers import PortsProvider
from engine.streams import FUNCTION_PREFIX, parse_function_stream

log = get_logger("engine")

DEFAULT_DRIFT_INTERVAL = 300.0  # seconds between the starts of two sweeps


class DriftSweep:
    """The sweep of one engine (module docstring). Feed it every event the engine reads or
    writes (``saw``) so it knows the function streams."""

    def __init__(
        self,
        store: EventStore,
        ports: PortsProvider,
        *,
        clock: Clock,
        ids: Callable[[], str],
        start_saga: Callable[[str], None],
        on_event: Callable[[RecordedEvent], None],
        interval: float = DEFAULT_DRIFT_INTERVAL,
    ) -> None:
        self._store = store
        self._ports = ports
        self._clock = clock
        self._ids = ids
        self._start_saga = start_saga
        self._on_event = on_event
        self.interval = interval
        self._streams: set[str] = set()
        self._open: dict[str, dict[str, DriftDetected]] = {}
        # Shared mode: the store a stream's findings are appended through (fenced by its
        # shard's lease), None for a stream of a shard another engine holds.
        self.store_of: Callable[[str], EventStore | None] | None = None

    def saw(self, record: RecordedEvent) -> None:
        """Learn a function stream from one of its events."""
        if record.stream.startswith(FUNCTION_PREFIX):
            self._streams.add(record.stream)

    def current(self) -> Mapping[str, Mapping[str, DriftDetected]]:
        """The drift open after the last sweep: stream -> path -> the event recording it."""
        return {s: dict(paths) for s, paths in self._open.items() if paths}

    async def loop(self) -> None:
        """Every ``interval`` seconds from the start of the one before, a sweep, for ever."""
        while True:
            started = self._clock.monotonic()
            await self._clock.sleep(self.interval)
            await self.sweep()
            spent = self._clock.monotonic() - started - self.interval
            if spent > self.interval:
                log.warning("a drift sweep took %.0f s, more than its interval", spent)

    async def sweep(self) -> dict[str, tuple[Difference, ...]]:
        """Read and compare every known function once; what each differs in (checked ones)."""
        found: dict[str, tuple[Difference, ...]] = {}
        # Lambda's service model (the comparison's defaults) is read from disk once per
        # process: in a worker thread, not on the loop.
        await anyio.to_thread.run_sync(lambda_model)
        for stream in sorted(self._streams):
            try:
                differences = await self.check(stream)
            except FencedOut:
                log.info("%s: drift not recorded: its shard moved to another engine", stream)
                continue
            except StoreError:
                raise
            except GlamError as exc:
                log.warning("%s: drift not read: %s", stream, exc.one_line())
                continue
            if differences is not None:
                found[stream] = differences
        return found

    async def check(self, stream: str) -> tuple[Difference, ...] | None:
        """Read one function and record what changed; None when it is skipped (no
        deployment of it yet, or, in shared mode, a shard this engine does not hold)."""
        store = self._store if self.store_of is None else self.store_of(stream)
        if store is None:
            return None
        records = await self._store.read_stream(stream)
        if not records:
            return None
        account, region, name = parse_function_stream(stream)
        w = watched(name, (r.event for r in records))
        self._open[stream] = dict(w.open)
        want = expected(w)
        if want is None:
            return None
        ports = await self._ports.region(region, account)
        lane = ports.background or ports
        live = await read_live(lane.lambda_api, lane.sources, want)
        found = compare(want, live)
        await self._record(store, stream, w, found, records[-1].version)
        return found

    async def _record(
        self,
        store: EventStore,
        stream: str,
        w: Watched,
        found: tuple[Difference, ...],
        version: int,
    ) -> None:
        events = sweep_events(w, found, self._clock.now(), self._ids)
        if not events:
            return
        batch = stamped(events, iter(self._ids, None))
        try:
            with anyio.CancelScope(shield=True):
                recorded = await store.append(stream, batch, expected_version=version)
        except ConcurrencyConflict:
            return  # the stream moved on while AWS was read: the next sweep reads again
        opened = self._open.setdefault(stream, {})
        heal = False
        for record in recorded:
            self._on_event(record)
            match record.event:
                case DriftDetected(path=path) as event:
                    opened[path] = event
                    text = Difference(path, event.desired, event.live).text()
                    log.warning("%s: drift %s", stream, text)
                case DeploymentRequested():
                    heal = True
                case _:
                    pass
        for path in set(opened) - {d.path for d in found}:
            del opened[path]  # resolved
        if heal:
            log.info("%s: deploying again to heal drift", stream)
            self._start_saga(stream)
