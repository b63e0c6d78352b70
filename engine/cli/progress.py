"""What the engine shows while it runs: one line per step, or a live table on a terminal.

Both reporters are ``Engine(on_event=...)`` hooks fed with every event the engine appends;
they only read the event, so nothing they print can hold more than the log does (and the log
never holds credentials: definitions stay inside DeploymentRequested, which is not printed).
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
from engine.saga.schedule import weights
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
    shifts: int = 0  # traffic steps taken so far (the promote is the last one)
    of: int | None = None  # how many the schedule has

    def cells(self, now: datetime) -> tuple[str, str, str, str]:
        """The step (with its place in the schedule), traffic, wait left and outcome."""
        step = self.step
        if self.of is not None and self.shifts and self.outcome == "":
            step = f"{step} {min(self.shifts, self.of)}/{self.of}"
        if self.weight is not None:
            traffic = f"{self.weight:.0%} → v{self.version}"
        elif self.version:
            traffic = f"v{self.version}"
        else:
            traffic = ""
        left = ""
        if self.bake_until is not None:
            left = f"{max(0.0, (self.bake_until - now).total_seconds()):.0f}s"
        return step, traffic, left, self.outcome


def _schedule_length(event: DeploymentRequested) -> int | None:
    """The traffic steps of a deployment: each weight of its schedule, then the promote."""
    if event.desired is None:
        return None
    return len(weights(event.desired.settings.traffic)) + 1


class LiveProgress:
    """A rich Live table, one row per function: step, weight, time left in the bake."""

    def __init__(self, clock: Clock, console: Console | None = None) -> None:
        self.clock = clock
        self.rows: dict[str, _Row] = {}
        self.last = ""
        # Live renders from its own thread while the engine updates rows from the loop.
        self._lock = threading.Lock()
        self.live = Live(self, console=console, refresh_per_second=4, transient=False)
        self._moved: list[logging.StreamHandler[Any]] = []
        self._stderr: Any = sys.stderr

    def __enter__(self) -> LiveProgress:
        before = sys.stderr
        self.live.__enter__()
        # Live redirects sys.stderr through its console so that what is written there prints
        # above the table; a logging handler made earlier still holds the real stderr and
        # would tear the table. Point those handlers at the redirected stream while it runs.
        self._moved = [
            h
            for h in logging.getLogger().handlers
            if isinstance(h, logging.StreamHandler) and h.stream is before
        ]
        for handler in self._moved:
            handler.setStream(sys.stderr)
        self._stderr = before
        return self

    def __exit__(self, *exc: object) -> None:
        for handler in self._moved:
            handler.setStream(self._stderr)
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
                self.rows[_who(record)] = row = _Row(
                    step=f"{event.action} requested", of=_schedule_length(event)
                )
            case StepStarted() | StepSucceeded():
                row.step = str(event.step)
                row.bake_until = None
            case TimerStarted():
                row.step = f"wait:{event.purpose}"
                row.bake_until = event.until
            case TrafficShifted():
                row.weight, row.version = event.weight, event.new_version
                if not row.step.startswith("rolling back"):
                    row.shifts += 1
            case RollbackStarted():
                row.step = "rolling back"
            case DeploymentFinished():
                # What the alias serves now, not the last weight of the canary.
                row.outcome, row.step, row.bake_until = event.outcome, "done", None
                row.weight, row.version = None, event.stable_version or ""
            case _:
                pass

    def __rich__(self) -> Table:
        table = Table(title=self.last or None, expand=False)
        for column in ("function", "step", "traffic", "wait left", "outcome"):
            table.add_column(column)
        now = self.clock.now()
        with self._lock:
            rows = sorted(self.rows.items())
        for name, row in rows:
            table.add_row(name, *row.cells(now))
        return table
