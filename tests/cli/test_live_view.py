"""The live ``glam run`` view on a real pseudo-terminal: log lines printed while the table is
live come out whole, above the table (rich redraws the table below them), never written
into the middle of it; a finished deployment shows its stable version, not the last weight."""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.cli.progress import LiveProgress
from engine.events import Metadata, RecordedEvent
from engine.events.function import DeploymentFinished, TrafficShifted
from engine.testing import AutojumpClock

ROOT = Path(__file__).resolve().parents[2]
ORDERS = "fn:111111111111:eu-west-1:orders"

CHILD = r"""
import logging, time
from datetime import UTC, datetime
from engine.cli.progress import LiveProgress
from engine.events import Metadata, RecordedEvent
from engine.events.function import StepStarted
from engine.logs import setup_logging
from engine.runtime.clock import SystemClock

setup_logging()
log = logging.getLogger("glam.test")
with LiveProgress(SystemClock()) as live:
    for i in range(12):
        live(RecordedEvent(position=i + 1, stream="fn:111111111111:eu-west-1:orders", version=i + 1,
            event=StepStarted(deployment_id="d", step="publish"), meta=Metadata(event_id=str(i)),
            recorded_at=datetime.now(UTC), hash=""))
        log.info("log line %02d " + "x" * 40 + " end", i)
        time.sleep(0.06)
"""

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _run_in_pty() -> bytes:
    pid, fd = pty.fork()
    if pid == 0:  # the child: glam's live view on the pseudo-terminal
        os.chdir(ROOT)
        os.environ["COLUMNS"], os.environ["LINES"] = "100", "30"
        os.environ.pop("NO_COLOR", None)
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-c", CHILD])  # noqa: S606 - our own interpreter
    out = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out.decode(errors="replace")
    return out


@pytest.mark.integration
def test_log_lines_come_out_whole_above_the_live_table() -> None:
    raw = _run_in_pty()
    for i in range(12):
        line = f"log line {i:02d} " + "x" * 40 + " end"
        at = raw.find(line.encode())
        assert at >= 0, f"{line!r} missing or torn"
        assert raw.count(line.encode()) == 1
        # Printed through the live console: the table was cleared just before the line (an
        # erase-line sequence), so the line cannot land inside the table being drawn.
        before = raw[max(0, at - 120) : at]
        assert b"\x1b[2K" in before, before
    plain = _ANSI.sub(b"", raw).decode(errors="replace")
    assert plain.count("function") > 2  # the table's header, drawn again after each line
    tail = [line for line in plain.splitlines() if line.strip()][-4:]
    assert any("publish" in line for line in tail), tail  # the table last, below every line


def _record(position: int, event: object, at: datetime) -> RecordedEvent:
    return RecordedEvent(
        position=position,
        stream=ORDERS,
        version=position,
        event=event,  # type: ignore[arg-type]
        meta=Metadata(event_id=str(position)),
        recorded_at=at,
        hash="",
    )


def test_a_finished_deployment_shows_its_stable_version_not_the_last_weight() -> None:
    clock = AutojumpClock()
    progress = LiveProgress(clock)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    shifted = TrafficShifted(
        deployment_id="d", alias="live", stable_version="1", new_version="2", weight=0.5
    )
    progress(_record(1, shifted, now))
    (row,) = progress.rows.values()
    assert row.cells(now)[1] == "50% → v2"
    finished = DeploymentFinished(deployment_id="d", outcome="succeeded", stable_version="2")
    progress(_record(2, finished, now + timedelta(seconds=5)))
    step, traffic, left, outcome = row.cells(now)
    assert (step, traffic, left, outcome) == ("done", "v2", "", "succeeded")
