"""A drift sweep on a deployed function of the embedded AWS, with its real SQLite log."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from engine.drift.compare import Difference
from engine.events import RecordedEvent
from engine.events.function import DeploymentRequested, DriftDetected, DriftResolved
from engine.local import LocalAwsThread
from engine.local.clients import aws_client
from engine.ports import EventStore
from engine.runtime.drift import DriftSweep
from tests.runtime.support import NAME, PREFIX, Setup

STREAM_NAME = NAME
DEPDEF = f"{PREFIX}_lambdadepdef.json"
SOURCES = f"{PREFIX}_lambdaeventsourcedef.json"


@dataclass
class Sweeper:
    """A sweep over the engine's log and ports; ``healed`` the streams handed to a saga."""

    sweep: DriftSweep
    store: EventStore
    healed: list[str] = field(default_factory=list)

    async def once(self) -> dict[str, tuple[Difference, ...]]:
        for record in await self.store.read_all():
            self.sweep.saw(record)
        return await self.sweep.sweep()

    async def drift_events(self) -> list[Any]:
        """The drift recorded, and the deployments asked for to heal it."""
        return [
            r.event
            for r in await self.store.read_all()
            if isinstance(r.event, DriftDetected | DriftResolved)
            or (isinstance(r.event, DeploymentRequested) and r.event.reason)
        ]


@asynccontextmanager
async def sweeper(setup: Setup) -> AsyncIterator[Sweeper]:
    """A sweep of ``setup``'s log through an engine's own ports (background lanes)."""
    ids = (f"drift-{n}" for n in itertools.count(1))
    async with setup.engine() as engine:
        healed: list[str] = []

        def saw(record: RecordedEvent) -> None:
            pass

        sweep = DriftSweep(
            engine.store,
            engine.ports,
            clock=setup.clock,
            ids=lambda: next(ids),
            start_saga=healed.append,
            on_event=saw,
        )
        yield Sweeper(sweep, engine.store, healed)


async def lambda_call(local_aws: LocalAwsThread, method: str, **kwargs: Any) -> Any:
    """One Lambda call straight on moto (a change made outside glam)."""
    async with aws_client("lambda", local_aws.moto_url, region=local_aws.region) as lam:
        return await getattr(lam, method)(**kwargs)


def paths(found: dict[str, tuple[Difference, ...]]) -> list[str]:
    return sorted(d.path for differences in found.values() for d in differences)
