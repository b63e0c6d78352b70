"""The query commands read a PostgreSQL log as they read an SQLite file: the golden log
copied with ``glam db copy`` answers ``glam status``, ``events``, ``deployments``,
``commits``, ``wait``, ``replay`` and ``whatif`` exactly as its SQLite original does, and
``glam wait`` on PostgreSQL sees the end another process appends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.store.postgres import PostgresEventStore
from tests.cli.test_history_wait import build, wait_while_appended
from tests.golden.generate import rows
from tests.support.cli import run_glam
from tests.support.postgres import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]  # the fixtures of a real PostgreSQL server

pytestmark = pytest.mark.integration


@pytest.fixture
def logs(
    tmp_path: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[str, str]:
    """The golden log as an SQLite file, and copied to PostgreSQL with ``glam db copy``."""
    for name in ("GLAM_DB", "GLAM_CHAIN_KEY_FILE", "GLAM_WITNESS"):
        monkeypatch.delenv(name, raising=False)
    sqlite = str(build(tmp_path / "glam.db"))
    copy = ["db", "copy", "--from", sqlite, "--to", postgres_url]
    code, _, err = run_glam(monkeypatch, capsys, *copy)
    assert code == 0, err
    return sqlite, postgres_url


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["status"], id="status"),
        pytest.param(["status", "--json"], id="status-json"),
        pytest.param(["status", "orders", "--wide"], id="status-one"),
        pytest.param(["events", "--json"], id="events-json"),
        pytest.param(["events", "--stream", "orders", "--type", "TrafficShifted"], id="events"),
        pytest.param(["deployments", "--json"], id="deployments"),
        pytest.param(["deployments", "orders", "--outcome", "rolled_back"], id="deployments-one"),
        pytest.param(["commits", "--json"], id="commits"),
        pytest.param(["wait", "--commit", "1111111"], id="wait-succeeded"),
        pytest.param(["wait", "--commit", "2222", "--json"], id="wait-rolled-back"),
        pytest.param(["wait", "--commit", "3333", "--timeout", "1s"], id="wait-timeout"),
        pytest.param(["replay", "--at", "10", "--json"], id="replay-at"),
        pytest.param(["whatif", "dep-2", "--percent", "50"], id="whatif"),
    ],
)
def test_a_postgresql_log_answers_as_its_sqlite_original(
    logs: tuple[str, str],
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sqlite, url = logs
    on_file = run_glam(monkeypatch, capsys, *command, "--db", sqlite)
    on_pg = run_glam(monkeypatch, capsys, *command, "--db", url)
    assert on_file[1] or on_file[2]  # the command says something
    assert on_pg[:2] == on_file[:2]
    assert on_pg[2].replace(sqlite, "LOG") == on_file[2].replace(sqlite, "LOG")


def test_replay_verify_walks_the_copied_chain(
    logs: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The chain is whole on PostgreSQL, and the copy's stored views, folded by the copy, are
    at its end and equal to a replay from position 0."""
    _, url = logs
    code, out, err = run_glam(monkeypatch, capsys, "replay", "--db", url, "--verify")
    assert code == 0, err
    assert "hash chain: ok (position 36" in out
    assert "stored views: equal to the replay (checkpoint 36)" in out


def test_the_url_can_come_from_glam_db(
    logs: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``$GLAM_DB`` holding a URL keeps its ``//`` (a path would fold it)."""
    _, url = logs
    monkeypatch.setenv("GLAM_DB", url)
    code, out, err = run_glam(monkeypatch, capsys, "status", "--json")
    assert code == 0, err
    assert {f["name"] for f in json.loads(out)} >= {"orders"}


def test_wait_on_postgresql_sees_the_end_another_process_appends(
    tmp_path: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Started mid-deployment on a PostgreSQL log, ``glam wait`` returns 1 once the rollback
    is appended by another process (woken by NOTIFY or its poll)."""
    monkeypatch.delenv("GLAM_DB", raising=False)
    half = str(build(tmp_path / "glam.db", upto=20))  # dep-2 is baking
    code, _, err = run_glam(monkeypatch, capsys, "db", "copy", "--from", half, "--to", postgres_url)
    assert code == 0, err

    async def append_rest() -> None:
        async with PostgresEventStore(postgres_url) as store:
            await store.import_rows(rows()[20:23])

    out = wait_while_appended(postgres_url, append_rest)
    assert "orders: rolled_back (alarm orders-errors is in ALARM)" in out


def test_an_operator_command_is_recorded_on_postgresql_as_on_sqlite(
    tmp_path: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``glam abort`` (as every operator command) checks and appends on a PostgreSQL log as
    on a file: the same answer, the same command in the ``ops`` stream; a refused one says
    why in one line on both."""
    import anyio

    from engine.events.operator import OPS_STREAM, OperatorCommandIssued

    for name in ("GLAM_DB", "GLAM_CHAIN_KEY_FILE", "GLAM_WITNESS"):
        monkeypatch.delenv(name, raising=False)
    sqlite = str(build(tmp_path / "glam.db", upto=20))  # dep-2 is baking
    url = postgres_url
    code, _, err = run_glam(monkeypatch, capsys, "db", "copy", "--from", sqlite, "--to", url)
    assert code == 0, err
    abort = ["abort", "orders", "--reason", "p99 doubled", "--actor", "ci"]
    on_file = run_glam(monkeypatch, capsys, *abort, "--db", sqlite)
    on_pg = run_glam(monkeypatch, capsys, *abort, "--db", url)
    assert on_file[0] == 0, on_file[2]
    assert on_pg[:2] == on_file[:2]

    async def recorded() -> list[tuple[str, str, str]]:
        async with PostgresEventStore(url, readonly=True) as store:
            ops = await store.read_stream(OPS_STREAM)
        return [
            (r.event.command, r.meta.actor, r.event.reason)
            for r in ops
            if isinstance(r.event, OperatorCommandIssued)
        ]

    assert anyio.run(recorded) == [("abort", "ci", "p99 doubled")]
    retry = ["retry", "orders", "--reason", "nothing rolled back", "--db"]
    refused_file = run_glam(monkeypatch, capsys, *retry, sqlite)
    refused_pg = run_glam(monkeypatch, capsys, *retry, url)
    assert refused_file[0] == 1
    assert refused_pg[:2] == refused_file[:2]
    assert refused_pg[2] == refused_file[2]
    assert len(refused_pg[2].strip().splitlines()) == 1
