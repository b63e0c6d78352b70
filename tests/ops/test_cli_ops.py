"""The operator commands' checks and exit codes, on a real SQLite log; and the store's
safety when a second writer (the CLI) appends next to the engine's."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

from engine.cli.main import main
from engine.cli.ops import default_actor
from engine.events import Metadata, NewEvent
from engine.events.catalog import Event
from engine.events.function import DeploymentFinished
from engine.events.operator import OPS_STREAM, OperatorCommandIssued
from engine.store.sqlite import SqliteEventStore
from tests.saga.support import desired, requested

EAST = "fn:123456789012:us-east-1:orders"
WEST = "fn:123456789012:eu-west-1:orders"
BILLING = "fn:123456789012:us-east-1:billing"


def glam(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["glam", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out + err


async def _append(path: Path, stream: str, events: list[Event]) -> None:
    async with SqliteEventStore(path) as store:
        batch = [NewEvent(e, Metadata(event_id=f"{stream}-{i}")) for i, e in enumerate(events)]
        await store.append(stream, batch)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """orders in flight in two regions; billing rolled back."""
    path = tmp_path / "glam.db"

    async def build() -> None:
        for stream in (EAST, WEST):
            await _append(path, stream, [requested("d1", desired("v1"), action="create")])
        await _append(
            path,
            BILLING,
            [
                requested("b1", desired("v1"), action="create"),
                DeploymentFinished(deployment_id="b1", outcome="succeeded", stable_version="1"),
                requested("b2", desired("v2")),
                DeploymentFinished(deployment_id="b2", outcome="rolled_back", stable_version="1"),
            ],
        )

    anyio.run(build)
    return path


async def _ops(path: Path) -> list[tuple[str, str, str, str]]:
    async with SqliteEventStore(path, readonly=True) as store:
        records = await store.read_stream(OPS_STREAM)
    out: list[tuple[str, str, str, str]] = []
    for r in records:
        assert isinstance(r.event, OperatorCommandIssued)
        out.append((r.event.command, r.event.target, r.event.reason, r.meta.actor))
    return out


async def _deployments(path: Path) -> list[str | None]:
    async with SqliteEventStore(path, readonly=True) as store:
        records = await store.read_stream(OPS_STREAM)
    return [getattr(r.event, "deployment_id", None) for r in records]


def test_commands_are_appended_with_actor_and_reason(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full stream, or a unique name, is recorded as the command's target."""
    rc, out = glam(monkeypatch, capsys, "abort", EAST, "--reason", "slow", "--db", str(db))
    assert rc == 0, out
    rc, out = glam(
        monkeypatch, capsys, "promote", WEST, "--reason", "ok", "--actor", "bob", "--db", str(db)
    )
    assert rc == 0, out
    rc, out = glam(monkeypatch, capsys, "retry", "billing", "--reason", "fixed", "--db", str(db))
    assert rc == 0, out
    assert out.startswith(f"retry {BILLING} recorded by {default_actor()}")
    assert anyio.run(_ops, db) == [
        ("abort", EAST, "slow", default_actor()),
        ("promote", WEST, "ok", "bob"),
        ("retry", BILLING, "fixed", default_actor()),
    ]
    # Each names the deployment it was checked against: in flight, or rolled back for retry.
    assert anyio.run(_deployments, db) == ["d1", "d1", "b2"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(("abort", "orders"), 1, f"ambiguous: {WEST}, {EAST}", id="ambiguous"),
        pytest.param(("abort", "stock"), 1, "unknown function 'stock'", id="unknown"),
        pytest.param(
            ("abort", "fn:123456789012:us-east-1:stock"), 1, "unknown function", id="unknown-fn"
        ),
        pytest.param(("promote", "billing"), 1, "nothing in flight", id="nothing-in-flight"),
        pytest.param(("retry", EAST), 1, "deployment in progress", id="retry-in-flight"),
        pytest.param(("allow-deletes", "abcdef0123"), 1, "no deletes are held", id="not-held"),
        pytest.param(("allow-deletes", "main"), 2, "not a commit sha", id="not-a-sha"),
    ],
)
def test_refused_with_one_line(
    db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    """A command that cannot apply says why in one line, records nothing and exits 1 (2 for
    a malformed argument)."""
    rc, out = glam(monkeypatch, capsys, *args, "--reason", "r", "--db", str(db))
    assert (rc, out.count("\n")) == (code, 1), out
    assert message in out
    assert anyio.run(_ops, db) == []


def test_usage_errors_exit_2(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--reason is required and must say something."""
    rc, out = glam(monkeypatch, capsys, "abort", EAST, "--db", str(db))
    assert rc == 2
    assert "--reason" in out
    rc, out = glam(monkeypatch, capsys, "abort", EAST, "--reason", " ", "--db", str(db))
    assert rc == 2
    assert "must not be empty" in out


def test_no_database_is_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong --db is refused, never turned into a new empty log."""
    missing = tmp_path / "nope.db"
    rc, out = glam(monkeypatch, capsys, "abort", EAST, "--reason", "r", "--db", str(missing))
    assert rc == 1
    assert "no event log" in out
    assert not missing.exists()


@pytest.mark.anyio
async def test_two_writers_keep_one_hash_chain(tmp_path: Path) -> None:
    """Two stores on one file (the engine and a CLI) appending at the same time: every append
    lands, positions stay gapless and the hash chain verifies."""
    path = tmp_path / "glam.db"
    async with SqliteEventStore(path) as engine, SqliteEventStore(path) as cli:

        async def write(store: SqliteEventStore, who: str) -> None:
            for i in range(40):
                event = OperatorCommandIssued(command="abort", target=EAST, reason=f"{who}{i}")
                await store.append(OPS_STREAM, [NewEvent(event, Metadata(event_id=f"{who}{i}"))])

        async with anyio.create_task_group() as tg:
            tg.start_soon(write, engine, "a")
            tg.start_soon(write, cli, "b")
        records = await engine.read_all()
        assert [r.position for r in records] == list(range(1, 81))
        assert [r.version for r in records] == list(range(1, 81))
        assert await cli.verify() is None
