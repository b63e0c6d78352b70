"""``glam events --follow`` in a process of its own, while this process appends to the log."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import anyio
import pytest

from engine.events import Metadata, NewEvent
from engine.events.function import AlarmObserved
from engine.store.sqlite import SqliteEventStore

pytestmark = pytest.mark.integration

ORDERS = "fn:111111111111:eu-west-1:orders"
ROOT = Path(__file__).resolve().parents[2]
# The store polls for appends by another process every 0.5 s; the rest is slack for a busy
# machine.
SEEN_WITHIN = 2.0
STARTUP = 60.0  # the first line waits for the interpreter to import glam


def append(path: Path, index: int) -> int:
    """Append one event from this process; its global position."""

    async def go() -> int:
        async with SqliteEventStore(path) as store:
            event = AlarmObserved(deployment_id="d1", alarm=f"alarm-{index}", state="OK")
            recorded = await store.append(ORDERS, [NewEvent(event, Metadata(event_id=f"e{index}"))])
            return recorded[0].position

    return anyio.run(go)


def pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    """Hand the follower's stdout over line by line; None once it is closed."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def next_event(lines: queue.Queue[str | None], timeout: float, stderr: Path) -> dict[str, Any]:
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"no event on stdout within {timeout}s; stderr: {stderr.read_text()!r}")
    if line is None:
        pytest.fail(f"glam events --follow exited; stderr: {stderr.read_text()!r}")
    event: dict[str, Any] = json.loads(line)
    return event


def test_follow_prints_events_appended_by_another_process(tmp_path: Path) -> None:
    """Each event appended while ``glam events --follow --json`` runs is printed within ~2 s."""
    db = tmp_path / "glam.db"
    assert append(db, 0) == 1  # the log must exist before a read-only command opens it
    stderr_path = tmp_path / "stderr.txt"
    command = [
        sys.executable,
        "-c",
        "from engine.cli.main import main; main()",
        "events",
        "--follow",
        "--since",
        "1",
        "--db",
        str(db),
        "--json",
    ]
    with (
        stderr_path.open("w") as stderr,
        subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True
        ) as follower,
    ):
        assert follower.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=pump, args=(follower.stdout, lines), daemon=True)
        reader.start()
        try:
            first = next_event(lines, STARTUP, stderr_path)
            assert (first["position"], first["data"]["alarm"]) == (1, "alarm-0")
            for index in range(1, 4):
                position = append(db, index)
                appended = time.monotonic()
                shown = next_event(lines, SEEN_WITHIN, stderr_path)
                assert time.monotonic() - appended <= SEEN_WITHIN
                assert shown["position"] == position
                assert shown["stream"] == ORDERS
                assert shown["type"] == "AlarmObserved"
                assert shown["data"]["alarm"] == f"alarm-{index}"
                assert shown["meta"]["event_id"] == f"e{index}"
            assert lines.empty()  # nothing printed twice or out of nowhere
            assert follower.poll() is None  # following, not finished
        finally:
            follower.terminate()
            try:
                follower.wait(timeout=5)
            except subprocess.TimeoutExpired:
                follower.kill()
                follower.wait()
        reader.join(timeout=5)
        assert not reader.is_alive()
