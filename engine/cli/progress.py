"""What the engine shows while it runs: one line per step, or a live table on a terminal.

Both reporters are ``Engine(on_event=...)`` hooks fed with every event the engine appends;
they only read the event, so nothing they print can hold more than the log does (and the log
never holds credentials: definitions stay inside DeploymentRequested, which is not printed).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from rich.console import Console
from rich.live import Live
from rich.table import Table

from engine.events import RecordedEvent
from engine.events.function import (
    AlarmObserved,
    DeploymentFinished,
    DeploymentRequested,
    RollbackStarted,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerStarted,
    TrafficShifted,
)
from engine.events.repo import CommitObserved, DefinitionRejected, SourceUnavailable
from engine.logs import get_logger, redact
from engine.ports import Clock
from engine.streams import FUNCTION_PREFIX, parse_function_stream


def describe(record: RecordedEvent) -> str | None:
    """One human line for an event worth a line, else None."""
    event = record.event
    match event:
        case CommitObserved():
            return f"commit {event.sha[:12]} {event.summary}"
        case SourceUnavailable():
            return f"repository unavailable: {event.reason}"
        case DefinitionRejected():
            return f"{event.file}: rejected: {event.reason}"
        case DeploymentRequested():
            return f"{event.action} requested (deployment {event.deployment_id[:8]})"
        case StepStarted():
            step = str(event.step)
            return f"{step} (attempt {event.attempt})" if event.attempt > 1 else step
        case StepFailed():
            return f"{event.step} failed: {event.error_code}: {event.message}"
        case TrafficShifted():
            return f"alias {event.alias}: {event.weight:.0%} to version {event.new_version}"
        case TimerStarted():
            return f"waiting ({event.purpose}) until {event.until:%H:%M:%S}"
        case AlarmObserved():
            return f"alarm {event.alarm} is {event.state}"
        case RollbackStarted():
            return f"rolling back: {event.reason}"
        case DeploymentFinished():
            stable = f", stable version {event.stable_version}" if event.stable_version else ""
            reason = f" ({event.reason})" if event.reason else ""
            return f"deployment {event.outcome}{stable}{reason}"
        case _:
            return None


def _who(record: RecordedEvent) -> str:
    if record.stream.startswith(FUNCTION_PREFIX):
        _, region, name = parse_function_stream(record.stream)
        return f"{name} ({region})"
    return "repository"


class LineProgress:
    """One plain log line per step (for logs and pipes)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or get_logger("run")

    def __call__(self, record: RecordedEvent) -> None:
        line = describe(record)
        if line is not None:
            self.log.info("%s: %s", _who(record), redact(line))


@dataclass
class _Row:
    step: str = ""
    weight: float | None = None
    version: str = ""
    bake_until: datetime | None = None
    outcome: str = ""


class LiveProgress:
    """A rich Live table, one row per function: step, weight, time left in the bake."""

    def __init__(self, clock: Clock, console: Console | None = None) -> None:
        self.clock = clock
        self.rows: dict[str, _Row] = {}
        self.last = ""
        # Live renders from its own thread while the engine updates rows from the loop.
        self._lock = threading.Lock()
        self.live = Live(self, console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveProgress:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def __call__(self, record: RecordedEvent) -> None:
        with self._lock:
            self._update(record)

    def _update(self, record: RecordedEvent) -> None:
        line = describe(record)
        if not record.stream.startswith(FUNCTION_PREFIX):
            if line:
                self.last = redact(line)
            return
        row = self.rows.setdefault(_who(record), _Row())
        event = record.event
        match event:
            case DeploymentRequested():
                self.rows[_who(record)] = row = _Row(step=f"{event.action} requested")
            case StepStarted() | StepSucceeded():
                row.step = str(event.step)
                row.bake_until = None
            case TimerStarted():
                row.step = f"wait:{event.purpose}"
                row.bake_until = event.until
            case TrafficShifted():
                row.weight, row.version = event.weight, event.new_version
            case RollbackStarted():
                row.step = "rolling back"
            case DeploymentFinished():
                row.outcome, row.step, row.bake_until = event.outcome, "done", None
            case _:
                pass

    def __rich__(self) -> Table:
        table = Table(title=self.last or None, expand=False)
        for column in ("function", "step", "weight", "wait left", "outcome"):
            table.add_column(column)
        now = self.clock.now()
        with self._lock:
            rows = sorted(self.rows.items())
        for name, row in rows:
            weight = f"{row.weight:.0%} → v{row.version}" if row.weight is not None else ""
            left = ""
            if row.bake_until is not None:
                left = f"{max(0.0, (row.bake_until - now).total_seconds()):.0f}s"
            table.add_row(name, row.step, weight, left, row.outcome)
        return table
