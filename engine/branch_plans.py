"""What each branch's latest plan refused and holds, folded from the log: what ``glam status``
lists under its functions and the dashboard's overview shows.

    plans = latest_plans(await store.read_selected(PLAN_EVENT_TYPES))

Pure: the caller reads the events (``PLAN_EVENT_TYPES``, in position order).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.events import RecordedEvent
from engine.events.function import OperatorRequested
from engine.events.repo import CommitPlanned, DefinitionRejected, DeletesHeld
from engine.streams import REPO_PREFIX

PLAN_EVENT_TYPES = frozenset(
    {"CommitPlanned", "DefinitionRejected", "DeletesHeld", "OperatorRequested"}
)


@dataclass
class BranchPlan:
    """A branch's latest plan: what it refused and holds."""

    stream: str
    sha: str
    rejected: list[DefinitionRejected] = field(default_factory=list)
    held: DeletesHeld | None = None


def latest_plans(records: Iterable[RecordedEvent]) -> list[BranchPlan]:
    """Each repository stream's latest plan, sorted by stream."""
    plans: dict[str, BranchPlan] = {}
    for record in records:
        if not record.stream.startswith(REPO_PREFIX):
            continue
        event = record.event
        current = plans.get(record.stream)
        match event:
            case CommitPlanned():
                plans[record.stream] = BranchPlan(record.stream, event.sha, [])
            case DefinitionRejected() if current is not None and event.sha == current.sha:
                current.rejected.append(event)
            case DeletesHeld() if current is not None and event.sha == current.sha:
                current.held = event
            case OperatorRequested(command="allow_deletes", outcome="applied") if (
                current is not None and event.target == current.sha
            ):
                current.held = None
            case _:
                pass
    return [plans[k] for k in sorted(plans)]
