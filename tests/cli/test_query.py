"""``glam events``, ``glam status`` and ``glam replay`` on a real (read-only) database."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from engine.cli.main import main
from engine.store.sqlite import SqliteEventStore
from projections.runner import ProjectionRunner
from tests.golden.generate import rows

ORDERS = "fn:111111111111:eu-west-1:orders"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The golden log in a database whose stored views are up to date."""
    path = tmp_path / "glam.db"

    async def build() -> None:
        async with SqliteEventStore(path) as store:
            await store.import_rows(rows())
            await ProjectionRunner(store).catch_up()

    anyio.run(build)
    return path


def glam(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["glam", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_events_filters_and_json(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = glam(
        monkeypatch,
        capsys,
        "events",
        "--db",
        str(db),
        "--stream",
        ORDERS,
        "--type",
        "TrafficShifted",
        "--json",
    )
    assert rc == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [e["data"]["weight"] for e in lines] == [0.2, 0.0]
    rc, out, _ = glam(
        monkeypatch, capsys, "events", "--db", str(db), "--since", "30", "--limit", "2"
    )
    assert rc == 0
    assert [line.split("\t")[0] for line in out.splitlines()] == ["30", "31"]


def test_status_lists_functions_and_one(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = glam(monkeypatch, capsys, "status", "--db", str(db))
    assert rc == 0
    header, *lines = out.splitlines()
    assert header.startswith("function\taccount")
    assert [line.split("\t")[0] for line in lines] == ["billing", "orders"]
    rc, out, _ = glam(monkeypatch, capsys, "status", "billing", "--db", str(db), "--json")
    assert rc == 0
    (row,) = json.loads(out)
    assert (row["state"], row["last_outcome"]) == ("failed", "failed")


def test_status_unknown_function_is_one_line_exit_1(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = glam(monkeypatch, capsys, "status", "nope", "--db", str(db))
    assert rc == 1
    assert err.count("\n") == 1
    assert "glam status" in err


def test_missing_database_says_how_to_create_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GLAM_DB", str(tmp_path / "none.db"))
    rc, _, err = glam(monkeypatch, capsys, "status")
    assert rc == 1
    assert "no event log at" in err
    assert "glam demo" in err
    assert not (tmp_path / "none.db").exists()


def test_bad_at_is_a_usage_error(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = glam(monkeypatch, capsys, "replay", "--db", str(db), "--at", "yesterday")
    assert rc == 2
    assert "ISO-8601" in err


@pytest.mark.parametrize(
    ("at", "state", "weight"),
    [
        pytest.param("18", "shifting", 0.2, id="position-mid-canary"),
        pytest.param("2025-03-01T09:02:06Z", "shifting", 0.2, id="time-mid-canary"),
        pytest.param("23", "rolled_back", 0.0, id="after-rollback"),
        pytest.param("8", "deploying", 0.0, id="first-create"),
    ],
)
def test_replay_at_shows_the_state_then(
    db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    at: str,
    state: str,
    weight: float,
) -> None:
    rc, out, _ = glam(monkeypatch, capsys, "replay", "--db", str(db), "--at", at, "--json")
    assert rc == 0
    orders = json.loads(out)["functions"][ORDERS]
    assert (orders["state"], orders["weight"]) == (state, weight)


def test_replay_verify_ok(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = glam(monkeypatch, capsys, "replay", "--db", str(db), "--verify")
    assert rc == 0
    assert "hash chain: ok" in out
    assert "stored views: equal" in out


def test_replay_verify_names_a_differing_view(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE view_rows SET data = json_set(data, '$.state', 'stable') WHERE key = ?",
        ("fn:111111111111:eu-west-1:billing",),
    )
    conn.commit()
    conn.close()
    rc, _, err = glam(monkeypatch, capsys, "replay", "--db", str(db), "--verify", "--json")
    assert rc == 1
    rc, _, err = glam(monkeypatch, capsys, "replay", "--db", str(db), "--verify")
    assert rc == 1
    assert "DIFFER from the replay from position 27" in err
    assert "functions/fn:111111111111:eu-west-1:billing" in err


@pytest.mark.integration
def test_acceptance_editing_one_event_breaks_verify_at_that_position(db: Path) -> None:
    """The untouched file verifies (exit 0); after editing event 13's data with the sqlite3
    module, `glam replay --verify` exits non-zero naming position 13."""
    glam_script = Path(sys.executable).parent / "glam"  # the installed console script
    command = [str(glam_script), "replay", "--verify", "--db", str(db)]
    clean = subprocess.run(command, capture_output=True, text=True, check=False)
    assert clean.returncode == 0, clean.stderr
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE events SET data = replace(data, '\"MemorySize\":256', '\"MemorySize\":512') "
        "WHERE position = 13"
    )
    assert conn.total_changes == 1
    conn.commit()
    conn.close()
    tampered = subprocess.run(command, capture_output=True, text=True, check=False)
    assert tampered.returncode == 1
    assert "BROKEN at position 13" in tampered.stderr


def test_events_stream_takes_a_bare_function_name(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = glam(monkeypatch, capsys, "events", "--db", str(db), "--stream", "billing")
    assert rc == 0
    assert [line.split("\t")[0] for line in out.splitlines()] == ["26", "27"]
    rc, _, err = glam(monkeypatch, capsys, "events", "--db", str(db), "--stream", "biling")
    assert rc == 1
    assert "did you mean 'billing'" in err


def test_events_type_is_checked_and_repeatable(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = glam(monkeypatch, capsys, "events", "--db", str(db), "--type", "TrafficShift")
    assert rc == 2
    assert "did you mean 'TrafficShifted'" in err
    rc, out, _ = glam(
        monkeypatch,
        capsys,
        "events",
        "--db",
        str(db),
        "--type",
        "RollbackStarted",
        "--type",
        "DeletesHeld,FunctionDeleted",
    )
    assert rc == 0
    assert [line.split("\t")[0] for line in out.splitlines()] == ["21", "31", "35"]


def test_events_since_takes_a_time(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = glam(
        monkeypatch, capsys, "events", "--db", str(db), "--since", "2025-03-01T09:04:00Z"
    )
    assert rc == 0
    assert [line.split("\t")[0] for line in out.splitlines()] == ["35", "36"]


def test_follow_starts_at_the_end_unless_since(db: Path) -> None:
    from engine.cli.query import start_position

    async def positions() -> tuple[int, int, int]:
        async with SqliteEventStore(db, readonly=True) as store:
            return (
                await start_position(store, None, follow=True),
                await start_position(store, None, follow=False),
                await start_position(store, "30", follow=True),
            )

    assert anyio.run(positions) == (37, 1, 30)


def test_status_shows_the_last_reason(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = glam(monkeypatch, capsys, "status", "--db", str(db))
    assert rc == 0
    header = out.splitlines()[0].split("\t")
    assert "last reason" in header


def test_status_fits_80_columns_on_a_terminal(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On an 80-column terminal every line fits and the rollback's reason is there (wrapped
    in the last column); --wide gives every column in full."""
    monkeypatch.setattr("engine.cli.output.is_terminal", lambda: True)
    monkeypatch.setattr("engine.cli.query.is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "80")
    rc, out, _ = glam(monkeypatch, capsys, "status", "--db", str(db))
    assert rc == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, out
    text = " ".join(line.strip("│ ") for line in lines)
    assert "function never became" in text  # billing's reason, wrapped but shown
    rc, out, _ = glam(monkeypatch, capsys, "status", "--db", str(db), "--wide")
    assert rc == 0
    assert "111111111111" in out  # the account column, only in the wide table
    assert max(len(line) for line in out.splitlines()) > 80
