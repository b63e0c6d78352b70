"""Read-only commands that print only after they have read (``glam status``, ``glam replay``,
``glam plan --db``) run SQLite's integrity check beside their reads instead of before them: a
damaged file is still refused, in one line, before anything is printed, even damage no read
of theirs would meet and a check that ends after their reads."""

from __future__ import annotations

import sqlite3
import struct
import sys
import time
from pathlib import Path

import anyio
import pytest

from engine.cli.main import main
from engine.errors import StoreCorrupt
from engine.store import sqlite_log
from engine.store.sqlite import SqliteEventStore
from projections.runner import ProjectionRunner
from tests.repo.gitrepo import GitRepo, function_files
from tests.store.helpers import new_event

COMMANDS = {
    "status": ["status"],
    "replay": ["replay"],
    "replay-at": ["replay", "--at", "20"],
}


def _log(db: Path) -> None:
    async def build() -> None:
        async with SqliteEventStore(db) as store:
            for i in range(40):
                await store.append("s", [new_event(reason=f"r{i}")])
            await ProjectionRunner(store, snapshot_every=10).catch_up()

    anyio.run(build)


def _damage_the_freelist(db: Path) -> None:
    """Free pages (a scratch table dropped), then the first freelist page overwritten: no
    read of the log meets it, SQLite's integrity check does."""
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE scratch (x BLOB)")
    conn.executemany("INSERT INTO scratch VALUES (?)", [(b"x" * 3000,) for _ in range(50)])
    conn.commit()
    conn.execute("DROP TABLE scratch")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with db.open("r+b") as handle:
        handle.seek(32)
        (trunk,) = struct.unpack(">I", handle.read(4))
        assert trunk > 0, "the dropped table left free pages"
        handle.seek((trunk - 1) * page_size)
        handle.write(b"\xff" * 8)  # the next trunk page and the leaf count: out of range


def glam(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["glam", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def _plan_args(tmp_path: Path, db: Path) -> list[str]:
    repo = GitRepo(tmp_path / "repo")
    function_files(repo, "fns/a/a", "fn-a")
    repo.commit("one function")
    return ["plan", "--repo", str(repo.path), "--db", str(db), "--region", "us-east-1"]


@pytest.mark.parametrize("name", [*COMMANDS, "plan"])
def test_damage_no_read_meets_is_refused_before_anything_is_printed(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "glam.db"
    _log(db)
    args = _plan_args(tmp_path, db) if name == "plan" else [*COMMANDS[name], "--db", str(db)]
    code, _, err = glam(monkeypatch, capsys, *args)
    assert code in (0, 1), err  # as it reads before the damage (plan: 1, changes)
    _damage_the_freelist(db)
    code, out, err = glam(monkeypatch, capsys, *args)
    assert code == (3 if name == "plan" else 1)
    assert out == ""
    assert "failed SQLite's integrity_check" in err
    assert err.count("\n") == 1, err  # one line
    assert "Traceback" not in err


@pytest.mark.parametrize("name", [*COMMANDS, "plan"])
def test_a_check_that_ends_after_the_reads_still_refuses_before_printing(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "glam.db"
    _log(db)
    args = _plan_args(tmp_path, db) if name == "plan" else [*COMMANDS[name], "--db", str(db)]
    checked: list[Path] = []

    def slow_refusal(path: Path, where: Path) -> None:
        time.sleep(0.5)  # in the check's own thread: the command's reads are done by now
        checked.append(path)
        raise StoreCorrupt(f"{where} failed SQLite's quick_check: a test says so", hint="h")

    monkeypatch.setattr(sqlite_log, "check_file", slow_refusal)
    code, out, err = glam(monkeypatch, capsys, *args)
    assert checked == [db.resolve()]
    assert code == (3 if name == "plan" else 1)
    assert out == ""
    assert "a test says so" in err
