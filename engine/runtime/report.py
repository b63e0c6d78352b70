"""What the engine's parts share while a run lasts: the report they fill in, the hook that sees
every event appended, and reading the whole log in batches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from engine.events import RecordedEvent
from engine.events.function import DeploymentFinished
from engine.events.repo import DefinitionRejected
from engine.ports import EventStore

EventHook = Callable[[RecordedEvent], None]

_BATCH = 1_000


@dataclass
class RunReport:
    """What one ``run`` saw finish, and what kept it from reconciling."""

    finished: list[tuple[str, DeploymentFinished]] = field(default_factory=list)
    rejected: list[DefinitionRejected] = field(default_factory=list)
    unavailable: str | None = None  # why the source could not be read, if it could not
    errors: list[str] = field(default_factory=list)  # sagas stopped by an error
    head: str | None = None  # the branch head last planned

    @property
    def ok(self) -> bool:
        """Everything finished as asked: no failure, rollback, rejection or outage."""
        bad = [f for _, f in self.finished if f.outcome in ("failed", "rolled_back")]
        return not bad and not self.rejected and self.unavailable is None and not self.errors

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


async def read_log(store: EventStore, after: int = 0) -> AsyncIterator[RecordedEvent]:
    """Every event after position ``after``, read in batches (the log may be large)."""
    while True:
        batch = await store.read_all(after + 1, limit=_BATCH)
        for record in batch:
            after = record.position
            yield record
        if len(batch) < _BATCH:
            return
