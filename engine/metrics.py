"""The metrics port: what the adapters and the runtime report as they work, for ``/metrics``.

    metrics.aws_call("lambda", "UpdateAlias", "200", 0.041)   every AWS call, with its status
    metrics.throttled("lambda", "UpdateAlias")                  AWS said "slow down"
    metrics.rate_wait("lambda", 0.25)                           a call waited for its limiter
    metrics.appended(3, 0.004)                                  an append to the log, its latency
    metrics.fetched("repo:…#main")                              a repository fetch succeeded

Only ``engine.server.metrics`` turns these into Prometheus series (prometheus-client is
imported nowhere else); everything that counts calls ``Metrics`` and never knows whether
anyone listens. Without a server the engine runs with ``NO_METRICS``, which does nothing.
What the log already says (deployments, weights, bakes, positions) is not reported here: the
server folds it from the log itself.

``MeteredStore`` wraps the engine's store so every append is timed, whatever the backend.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from engine.events import NewEvent, RecordedEvent
from engine.ports import (
    ANY_VERSION,
    ProjectionStore,
    RowKey,
    SnapshotListing,
    SnapshotRows,
    ViewSnapshot,
)
from engine.store.forwarding import ReadThrough


class Metrics(Protocol):
    """Where the engine's parts report what no event records. Each method must be cheap and
    must never raise: it runs inside AWS calls and appends."""

    def aws_call(self, service: str, operation: str, status: str, seconds: float) -> None:
        """One AWS request answered: ``status`` is the HTTP status, or ``error`` when no
        answer came (a dropped connection, a timeout)."""
        ...

    def throttled(self, service: str, operation: str) -> None:
        """AWS refused a request as throttled (429 or a throttling error code)."""
        ...

    def rate_wait(self, service: str, seconds: float) -> None:
        """A call waited ``seconds`` for the shared rate limiter of its account and region."""
        ...

    def appended(self, count: int, seconds: float) -> None:
        """``count`` events appended in one call that took ``seconds``."""
        ...

    def fetched(self, stream: str) -> None:
        """The branch of repository stream ``stream`` was fetched and read."""
        ...


class NullMetrics:
    """Metrics nobody reads: the engine without a server."""

    def aws_call(self, service: str, operation: str, status: str, seconds: float) -> None:
        pass

    def throttled(self, service: str, operation: str) -> None:
        pass

    def rate_wait(self, service: str, seconds: float) -> None:
        pass

    def appended(self, count: int, seconds: float) -> None:
        pass

    def fetched(self, stream: str) -> None:
        pass


NO_METRICS: Metrics = NullMetrics()


class MeteredStore(ReadThrough):
    """``store`` with each ``append`` timed into ``metrics``; everything else passes through
    (attributes the ports do not name, such as SQLite's ``read_selected``, too). A method the
    ports gain is added here as well: mypy checks this is a ``ProjectionStore``."""

    _store: ProjectionStore

    def __init__(self, store: ProjectionStore, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    @property
    def inner(self) -> ProjectionStore:
        return self._store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> list[RecordedEvent]:
        started = time.perf_counter()
        recorded = await self._store.append(stream, events, expected_version)
        self._metrics.appended(len(recorded), time.perf_counter() - started)
        return recorded

    async def aclose(self) -> None:
        await self._store.aclose()

    async def load_views(self, projection: str) -> tuple[int, dict[tuple[str, str], str]]:
        return await self._store.load_views(projection)

    async def load_rows(
        self, projection: str, view: str, keys: Collection[str] | None = None
    ) -> tuple[int, dict[str, str]]:
        return await self._store.load_rows(projection, view, keys)

    async def save_views(
        self,
        projection: str,
        checkpoint: int,
        rows: Mapping[tuple[str, str], str | None],
        *,
        reset: bool = False,
        snapshot: ViewSnapshot | None = None,
    ) -> None:
        await self._store.save_views(projection, checkpoint, rows, reset=reset, snapshot=snapshot)

    async def snapshots(self, projection: str) -> list[tuple[int, str]]:
        return await self._store.snapshots(projection)

    async def load_snapshot(
        self, projection: str, position: int, format: str
    ) -> tuple[int, SnapshotRows] | None:
        return await self._store.load_snapshot(projection, position, format)

    async def list_snapshot(
        self, projection: str, position: int, format: str
    ) -> tuple[int, SnapshotListing] | None:
        return await self._store.list_snapshot(projection, position, format)

    async def load_snapshot_rows(
        self, projection: str, at: int, keys: Collection[RowKey]
    ) -> dict[RowKey, tuple[int, bytes]] | None:
        return await self._store.load_snapshot_rows(projection, at, keys)
