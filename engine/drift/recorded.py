"""The drift the log holds open: per function stream, each path a ``DriftDetected`` recorded
and no ``DriftResolved`` (nor a deletion of the function) closed since. Pure.

Read with ``store.read_selected(DRIFT_EVENT_TYPES)``: ``glam status`` marks the functions,
``glam drift`` lists what the engine's last sweeps found, the server can serve it.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.events import RecordedEvent
from engine.events.function import DriftDetected, DriftResolved, FunctionDeleted

DRIFT_EVENT_TYPES = frozenset({"DriftDetected", "DriftResolved", "FunctionDeleted"})


def open_drift(records: Iterable[RecordedEvent]) -> dict[str, dict[str, DriftDetected]]:
    """stream -> path -> the DriftDetected still open (streams with none are left out)."""
    found: dict[str, dict[str, DriftDetected]] = {}
    for record in records:
        match record.event:
            case DriftDetected() as event:
                found.setdefault(record.stream, {})[event.path] = event
            case DriftResolved(path=path):
                found.get(record.stream, {}).pop(path, None)
            case FunctionDeleted():
                found.pop(record.stream, None)
            case _:
                pass
    return {stream: paths for stream, paths in found.items() if paths}
