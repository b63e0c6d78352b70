"""What the engine's parts share while a run lasts: the report they fill in, the hook that sees
every event appended, and reading the whole log in batches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from engine.events import RecordedEvent
from engine.events.function import DeploymentFinished
from engine.events.repo import DefinitionRejected, DeletesHeld
from engine.ports import EventStore

EventHook = Callable[[RecordedEvent], None]

_BATCH = 1_000


@dataclass
class RunReport:
    """What one ``run`` saw finish, and what kept it from reconciling. Per watched branch
    (keyed by its repository stream, or its redacted URL while the branch is not known):
    why it could not be read (``unavailable_by``) and the head last planned (``heads``)."""

    finished: list[tuple[str, DeploymentFinished]] = field(default_factory=list)
    rejected: list[DefinitionRejected] = field(default_factory=list)
    unavailable_by: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # sagas stopped by an error
    heads: dict[str, str] = field(default_factory=dict)
    held: list[DeletesHeld] = field(default_factory=list)  # removals waiting for an operator

    @property
    def unavailable(self) -> str | None:
        """Why a source could not be read (each, when several could not), or None."""
        if not self.unavailable_by:
            return None
        if len(self.unavailable_by) == 1:
            return next(iter(self.unavailable_by.values()))
        return "; ".join(f"{k}: {v}" for k, v in sorted(self.unavailable_by.items()))

    @property
    def head(self) -> str | None:
        """The head last planned, when one branch is watched."""
        return next(iter(self.heads.values())) if len(self.heads) == 1 else None

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
