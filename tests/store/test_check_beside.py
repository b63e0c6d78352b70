"""Read-only commands that print only after they have read (``glam status``, ``glam replay``,
``glam plan --db``) run SQLite's integrity check beside their reads instead of before them: a
damaged file is still refused, in one line, before anything is printed, even damage no read
of theirs would meet and a check that ends after their reads. A command that leaves early
(Ctrl-C, an error of its own) stops the check instead of waiting for it to read every page."""

from __future__ import annotations

import os
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest

from engine.cli.common import read_log
from engine.cli.main import main
from engine.errors import StoreCorrupt, StoreError
from engine.store import file_check
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

    def slow_refusal(check: file_check.FileCheck) -> None:
        time.sleep(0.5)  # in the check's own thread: the command's reads are done by now
        checked.append(check.path)
        raise StoreCorrupt(f"{check.where} failed SQLite's quick_check: a test says so", hint="h")

    monkeypatch.setattr(file_check.FileCheck, "run", slow_refusal)
    code, out, err = glam(monkeypatch, capsys, *args)
    assert checked == [db.resolve()]
    assert code == (3 if name == "plan" else 1)
    assert out == ""
    assert "a test says so" in err


def test_a_damaged_file_with_an_unreadable_snapshot_prints_only_the_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`replay --at` warns when a snapshot does not decode and folds from 0 instead: on a
    damaged file that warning waits for the check, which refuses the file (one line)."""
    db = tmp_path / "glam.db"
    _log(db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE snapshot_rows SET data = x'00ff'")
    code, _, err = glam(monkeypatch, capsys, "replay", "--at", "20", "--db", str(db))
    assert code == 0
    assert "does not decode" in err  # the warning, on an undamaged file
    _damage_the_freelist(db)
    run = file_check.FileCheck.run

    def slow(check: file_check.FileCheck) -> None:
        time.sleep(0.5)  # as on a large file: the reads, and the warning, come first
        run(check)

    monkeypatch.setattr(file_check.FileCheck, "run", slow)
    code, out, err = glam(monkeypatch, capsys, "replay", "--at", "20", "--db", str(db))
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1, err  # the refusal alone
    assert "failed SQLite's integrity_check" in err


# A check that never ends by itself (SQLite counts forever): only a stop ends it.
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
ROOT = Path(__file__).resolve().parents[2]


def test_an_error_of_the_reader_stops_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "glam.db"
    _log(db)
    began, ended = threading.Event(), threading.Event()
    run = file_check.FileCheck.run

    def endless(check: file_check.FileCheck) -> None:
        began.set()
        try:
            run(check)
        finally:
            ended.set()  # the check's thread returns: its connection is closed

    monkeypatch.setattr(file_check.FileCheck, "_statement", lambda self, pragma: ENDLESS)
    monkeypatch.setattr(file_check.FileCheck, "run", endless)

    async def fail_while_checking() -> None:
        async with read_log(db, check_beside=True):
            await anyio.to_thread.run_sync(began.wait, 10)
            await anyio.sleep(0.2)
            raise StoreError("the reader's own error")

    async def read() -> bool:
        with pytest.raises(StoreError, match="the reader's own error"):
            await fail_while_checking()
        # Before the fix: never (the check went on to its end, here endless).
        return await anyio.to_thread.run_sync(ended.wait, 5)

    assert anyio.run(read)
    assert began.is_set()


@pytest.mark.integration  # a glam process
def test_ctrl_c_stops_a_long_check_at_once(tmp_path: Path) -> None:
    """`glam status` interrupted while SQLite checks a file (seconds on a large log) exits
    130 at once, without waiting for the check to end."""
    db = tmp_path / "glam.db"
    _log(db)
    began = tmp_path / "began"
    code = (
        "import signal, sys\n"
        # As a terminal starts a command: SIGINT handled by Python and not blocked, whatever
        # this test process inherited (a child started with SIGINT ignored keeps ignoring it).
        "print('SIGINT at start:', signal.getsignal(signal.SIGINT),"
        " sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])), file=sys.stderr)\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})\n"
        "from pathlib import Path\n"
        "from engine.store import file_check\n"
        f"file_check.FileCheck._statement = lambda self, pragma: {ENDLESS!r}\n"
        "run = file_check.FileCheck.run\n"
        "def run_marked(check):\n"
        f"    Path({str(began)!r}).touch()\n"
        "    run(check)\n"
        "file_check.FileCheck.run = run_marked\n"
        "from engine.cli.main import main\n"
        f"sys.argv = ['glam', 'status', '--db', {str(db)!r}]\n"
        "main()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as child:
        try:
            deadline = time.monotonic() + 30
            while not began.exists():
                assert child.poll() is None, child.communicate()
                assert time.monotonic() < deadline, "the check never began"
                time.sleep(0.02)
            time.sleep(0.2)
            child.send_signal(signal.SIGINT)
            # Before the fix: never (the check is endless). Seconds under load, not less.
            out, err = child.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            _, err = child.communicate()
            pytest.fail(f"glam status went on after SIGINT; its stderr: {err.decode()[-3000:]}")
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
    assert child.returncode == 130, err
    assert b"Traceback" not in err
    assert out == b""


@pytest.mark.parametrize(
    ("child", "message"),
    [
        pytest.param(
            "import os, signal; os.kill(os.getpid(), signal.SIGBUS)",
            "I/O error on .* while trying to check it",
            id="a-page-the-disk-cannot-read",
        ),
        pytest.param(
            "import json; print(json.dumps({'error': ['OperationalError', 'SQLITE_IOERR_READ',"
            " 266, 'disk I/O error']}))",
            "I/O error on .* while trying to check it",
            id="sqlites-io-error",
        ),
        pytest.param(
            "import json; print(json.dumps({'error': ['DatabaseError', 'SQLITE_NOTADB', 26,"
            " 'file is not a database']}))",
            "is not a readable glam event log",
            id="not-a-database",
        ),
        pytest.param("raise SystemExit(3)", "ended with status 3", id="the-child-failed"),
    ],
)
def test_what_stops_the_checks_process_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, child: str, message: str
) -> None:
    """The check runs in a child process, reading the file through a memory map: a disk's
    read error there is a SIGBUS that ends the child only; it, SQLite's own errors and a
    child that failed reach the command as one line naming the file."""
    db = tmp_path / "glam.db"
    _log(db)
    monkeypatch.setattr(file_check, "CHILD", child)
    with pytest.raises(StoreError, match=message) as refused:
        file_check.FileCheck(db, db).run()
    assert "\n" not in refused.value.one_line()


def test_the_check_runs_apart_from_the_reader(tmp_path: Path) -> None:
    """The check is a process of its own (it takes no GIL from the reader's thread, and
    stopping it kills it): while it runs, its child is there, and stopping it ends it."""
    db = tmp_path / "glam.db"
    _log(db)
    check = file_check.FileCheck(db, db)
    check._statement = lambda pragma: ENDLESS  # type: ignore[method-assign]
    thread = threading.Thread(target=check.run)
    thread.start()
    deadline = time.monotonic() + 20
    while check._child is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child = check._child
    assert child.pid != os.getpid()
    assert child.poll() is None
    check.stop()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert child.wait(timeout=20) == -signal.SIGKILL


def test_the_default_relative_log_is_checked_beside_the_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`glam status` and `glam replay` with no --db read ./.glam/glam.db, a relative path:
    the check beside them must take it as the store does (it once failed with a traceback,
    "relative path can't be expressed as a file URI")."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GLAM_DB", raising=False)
    (tmp_path / ".glam").mkdir()
    _log(Path(".glam/glam.db"))
    for command in (["status"], ["replay", "--at", "20"]):
        code, _, err = glam(monkeypatch, capsys, *command)
        assert code == 0, err
        assert "Traceback" not in err


def _function_log(db: Path) -> None:
    """Deployments of two functions, a snapshot every 10 events."""
    from engine.events import Metadata, NewEvent
    from engine.events.function import DeploymentFinished, DeploymentRequested
    from tests.projections.strategies import desired_function

    async def build() -> None:
        async with SqliteEventStore(db) as store:
            for n in range(15):
                name = ("orders", "pay")[n % 2]
                d = f"d{n}"
                requested = DeploymentRequested(
                    deployment_id=d, commit=f"{n:040x}", action="update",
                    desired=desired_function(name),
                )  # fmt: skip
                await store.append(
                    f"fn:1:eu-west-1:{name}",
                    [
                        NewEvent(requested, Metadata(event_id=f"r{n}", deployment_id=d)),
                        NewEvent(
                            DeploymentFinished(deployment_id=d, outcome="succeeded"),
                            Metadata(event_id=f"f{n}", deployment_id=d),
                        ),
                    ],
                )
            await ProjectionRunner(store, snapshot_every=10).catch_up()

    anyio.run(build)


def test_status_reads_the_stored_views_when_a_snapshot_row_does_not_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`glam status` reads the views from the newest snapshot; snapshots and the planner's
    rows are derived data, so an altered one (SQLite's check does not see it) makes it read
    the stored views and fold the log instead: the same table, as before."""
    db = tmp_path / "glam.db"
    _function_log(db)
    code, before, err = glam(monkeypatch, capsys, "status", "--db", str(db))
    assert code == 0, err
    assert "orders" in before
    assert "pay" in before
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE snapshot_rows SET data = x'00ff'")
        conn.execute(
            "UPDATE view_rows SET data = '[1' WHERE projection = 'planner' AND view = 'state'"
        )
    code, after, err = glam(monkeypatch, capsys, "status", "--db", str(db))
    assert (code, after) == (0, before), err


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie not yet reaped by its new parent has too)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_the_checks_process_ends_with_the_command(tmp_path: Path) -> None:
    """A command killed while its check runs (SIGKILL: nothing of it runs after) leaves no
    check behind reading the file: the child ends when the command's end of its stdin
    closes."""
    db = tmp_path / "glam.db"
    _log(db)
    code = (
        "import threading, time\n"
        "from pathlib import Path\n"
        "from engine.store import file_check\n"
        f"check = file_check.FileCheck(Path({str(db)!r}), Path({str(db)!r}))\n"
        f"check._statement = lambda pragma: {ENDLESS!r}\n"
        "threading.Thread(target=check.run, daemon=True).start()\n"
        "while check._child is None:\n"
        "    time.sleep(0.01)\n"
        "print(check._child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    ) as command:
        assert command.stdout is not None
        child = int(command.stdout.readline())
        assert not _gone(child)
        command.kill()
        command.wait(timeout=20)
    deadline = time.monotonic() + 20
    while not _gone(child):
        assert time.monotonic() < deadline, "the check outlived the command"
        time.sleep(0.05)
