"""Every read path meets a damaged log with one line naming the position and what to do:
``glam status``, ``glam events``, ``glam replay``, ``glam replay --verify`` and ``glam run``
(issue 17; redteam S6, S8, S19, S20). Never a traceback, never the damaged event's data (it
may hold a function's environment), and never exit 0."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import anyio
import pytest

import engine.runtime.engine
from engine.cli.main import main
from engine.store.sqlite import SqliteEventStore
from engine.testing import FakeProvider
from projections.runner import ProjectionRunner
from tests.store.helpers import new_event

DAMAGED = 9
SECRET = "CANARY-in-event-data-9"

DAMAGES = {
    "broken-json": "UPDATE events SET data = substr(data, 1, length(data) - 2) WHERE position = ?",
    "unknown-type": "UPDATE events SET type = 'FluxCapacitorCharged' WHERE position = ?",
    "schema-99": "UPDATE events SET schema_version = 99 WHERE position = ?",
    "not-utf8": "UPDATE events SET data = CAST(CAST(data AS BLOB) || X'FF' AS TEXT) "
    "WHERE position = ?",
    "flipped-byte": "UPDATE events SET data = replace(data, 'CANARY', 'CANARX') WHERE position = ?",
}


@pytest.fixture(params=sorted(DAMAGES))
def damaged_log(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Twelve events, the views folded to position 5, event 9 damaged behind glam's back."""
    db = tmp_path / "state" / "glam.db"

    async def build() -> None:
        async with SqliteEventStore(db) as store:
            for i in range(1, 13):
                await store.append("s", [new_event(reason=SECRET if i == DAMAGED else f"r{i}")])
                if i == 5:
                    await ProjectionRunner(store).catch_up()

    anyio.run(build)
    conn = sqlite3.connect(db)
    conn.execute(DAMAGES[request.param], (DAMAGED,))
    conn.commit()
    conn.close()
    return db


def glam(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["glam", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out + err


def assert_one_line(output: str) -> None:
    assert "Traceback" not in output
    assert "Error:" not in output  # no raw exception names either
    assert SECRET not in output
    assert "CANARX" not in output
    lines = [
        line for line in output.splitlines() if line.startswith(("glam: ", "hash chain: BROKEN"))
    ]
    assert len(lines) == 1, output
    assert f"position {DAMAGED}" in lines[0], output
    if lines[0].startswith("glam: "):
        assert "—" in lines[0]  # the what-to-do half


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["status"], id="status"),
        pytest.param(["events"], id="events"),
        pytest.param(["events", "--json", "--show-secrets"], id="events-json"),
        pytest.param(["replay"], id="replay"),
        pytest.param(["replay", "--verify"], id="verify"),
    ],
)
def test_a_damaged_event_is_one_line_naming_its_position(
    damaged_log: Path,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, output = glam(monkeypatch, capsys, *command, "--db", str(damaged_log))
    assert code == 1, output
    assert_one_line(output)


def test_the_engine_refuses_to_start_on_a_damaged_log(
    damaged_log: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``glam run`` stops before it reads the branch or calls AWS (once with "cannot start a
    transaction within a transaction", once with a traceback, or it acted on the event)."""
    monkeypatch.setattr(engine.runtime.engine, "AwsProvider", lambda _config, **_: FakeProvider())
    repo = tmp_path / "no-repo"
    code, output = glam(
        monkeypatch, capsys, "run", "--repo", str(repo), "--db", str(damaged_log), "--once"
    )
    assert code == 1, output
    assert_one_line(output)
    assert "transaction" not in output
    assert not repo.exists()


def test_plan_on_an_unreadable_log_is_not_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``glam plan --db`` on a log it cannot read exits 3 (could not read), never 1, which a
    CI gate reads as "changes"."""
    from tests.repo.gitrepo import GitRepo, function_files

    db = tmp_path / "glam.db"

    async def build() -> None:
        async with SqliteEventStore(db) as store:
            await store.append("s", [new_event()])

    anyio.run(build)
    conn = sqlite3.connect(db)
    conn.execute(DAMAGES["unknown-type"], (1,))
    conn.commit()
    conn.close()
    repo = GitRepo(tmp_path / "repo")
    function_files(repo, "fns/a/a", "fn-a")
    repo.commit("one function")
    code, output = glam(monkeypatch, capsys, "plan", "--repo", str(repo.path), "--db", str(db))
    assert code == 3, output
    assert "position 1" in output
    assert "Traceback" not in output
