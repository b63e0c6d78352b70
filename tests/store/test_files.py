"""The SQLite log's files mean what they say: one engine per log whatever path reaches it,
private permissions, a deleted ``-wal`` noticed without losing what was acknowledged, and a
full disk called a full disk (redteam S3-S5, S24-S29, X9)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.cli.common import db_location
from engine.errors import StoreCorrupt, StoreError, StoreLocked
from engine.store import open_store
from engine.store.integrity import Integrity
from engine.store.sqlite import JOURNAL_SIZE_LIMIT, SqliteEventStore
from tests.store.helpers import new_event
from tests.support.disk import small_tmpfs

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


def _child(code: str) -> subprocess.Popen[str]:
    """A Python child running ``code`` from the project's root, its stdout piped."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _finish(child: subprocess.Popen[str]) -> int:
    child.kill()
    code = child.wait(timeout=30)
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            pipe.close()
    return code


def _remove_journal(db: Path) -> None:
    """What redteam S24/S25 did: ``rm glam.db-wal glam.db-shm`` under a running engine."""
    os.unlink(f"{db}-wal")
    os.unlink(f"{db}-shm")


def _wal_size(db: Path) -> int:
    return os.stat(f"{db}-wal").st_size


@contextlib.contextmanager
def engine_elsewhere(db: Path) -> Iterator[int]:
    """Another process running the engine's store on ``db`` (its lock held); its pid."""
    child = _child(
        f"""
        import anyio, sys
        from engine.store import open_store
        async def main():
            async with open_store({str(db)!r}, exclusive=True):
                print("open", flush=True)
                sys.stdin.read()
        anyio.run(main)
        """
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "open"
        yield child.pid
    finally:
        _finish(child)


# -- one engine per log -----------------------------------------------------------------------


async def test_one_engine_per_log_whatever_path_reaches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redteam S1-S5: the same path, a path through '..', a symbolic link and $GLAM_DB naming
    a link all meet the lock of the engine running on the file; a hard link is refused."""
    db = tmp_path / "state" / "glam.db"
    async with open_store(db, exclusive=True) as store:
        await store.append("s", [new_event()])
    (tmp_path / "link.db").symlink_to(db)
    monkeypatch.setenv("GLAM_DB", str(tmp_path / "link.db"))
    ways = {
        "same path": db,
        "through ..": tmp_path / "state" / ".." / "state" / "glam.db",
        "symlink": tmp_path / "link.db",
        "GLAM_DB symlink": db_location(None),
    }
    with engine_elsewhere(db) as pid:
        for way, path in ways.items():
            with pytest.raises(StoreLocked, match=f"pid {pid}"):
                async with open_store(path, exclusive=True):
                    pytest.fail(f"a second engine started through the {way}")
    os.link(db, tmp_path / "hard.db")
    for path in (tmp_path / "hard.db", db):  # two names for one file: neither is used
        with pytest.raises(StoreError, match="2 hard links"):
            async with open_store(path, exclusive=True):
                pass
        with pytest.raises(StoreError, match="2 hard links"):
            async with SqliteEventStore(path, readonly=True):
                pass


async def test_the_log_its_folder_and_its_journal_are_private(tmp_path: Path) -> None:
    """Redteam X9: the log holds every function's environment; it was 0644 in a 0755 folder."""
    os.umask(0o022)
    db = tmp_path / "a" / "b" / "glam.db"
    async with open_store(db, exclusive=True) as store:
        await store.append("s", [new_event()])
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in db.parent.iterdir()}
    assert modes == {"glam.db": "0o600", "glam.db-wal": "0o600", "glam.db-shm": "0o600"}
    assert oct((tmp_path / "a").stat().st_mode & 0o777) == "0o700"
    assert oct(db.parent.stat().st_mode & 0o777) == "0o700"


# -- a deleted -wal ---------------------------------------------------------------------------


async def test_a_deleted_wal_is_noticed_and_nothing_acknowledged_is_lost(tmp_path: Path) -> None:
    """Redteam S24: -wal and -shm deleted under a running engine. Another writer used to start
    a new journal and acknowledge an append that the engine's close then wiped out; now it is
    refused, the engine's next write stops it, and everything acknowledged is kept."""
    db = tmp_path / "glam.db"
    async with open_store(db, exclusive=True) as engine:
        for _ in range(5):
            await engine.append("s", [new_event()])
        _remove_journal(db)
        with pytest.raises(StoreCorrupt, match=r"running engine's .*-wal is missing"):
            async with SqliteEventStore(db) as cli:  # `glam promote` while it runs
                await cli.append("ops", [new_event()])
        with pytest.raises(StoreCorrupt, match="-wal was deleted or replaced") as lost:
            await engine.append("s", [new_event()])
        assert "never delete the -wal" in lost.value.one_line()
        with pytest.raises(StoreCorrupt, match="writes nothing more"):
            await engine.append("s", [new_event()])
    async with SqliteEventStore(db, readonly=True) as reader:
        assert [r.position for r in await reader.read_all()] == [1, 2, 3, 4, 5]
        assert await reader.verify() is None


def test_a_deleted_wal_then_kill_9_keeps_what_was_acknowledged(tmp_path: Path) -> None:
    """Redteam S25: after the -wal was deleted the engine was SIGKILLed, and what it had
    written since the last checkpoint (in the deleted file) was gone. Its next write now puts
    it into the main file first."""
    db = tmp_path / "glam.db"
    child = _child(
        f"""
        import anyio, os, signal
        from engine.store import open_store
        from tests.store.helpers import new_event
        async def main():
            async with open_store({str(db)!r}, exclusive=True) as store:
                for _ in range(7):
                    await store.append("s", [new_event()])
                print("written", flush=True)
                while os.path.exists({str(db) + "-wal"!r}):
                    await anyio.sleep(0.01)
                try:
                    await store.append("s", [new_event()])
                except Exception as exc:
                    print(type(exc).__name__, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        anyio.run(main)
        """
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "written"
    _remove_journal(db)
    assert child.stdout.readline().strip() == "StoreCorrupt"
    assert child.wait(timeout=30) == -signal.SIGKILL
    _finish(child)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (7,)
    finally:
        conn.close()


# -- a full disk ------------------------------------------------------------------------------


async def test_an_injected_full_disk_is_called_so_and_stops_the_writes(tmp_path: Path) -> None:
    """SQLITE_FULL at commit (here from a page cap; the tmpfs test below fills a real disk):
    "disk full", not "cannot rollback - no transaction is active", naming what could not be
    written and where ("could not write to; ..." named nothing); nothing of that append is
    stored, every earlier one is, and the store refuses further writes."""
    db = tmp_path / "glam.db"
    async with SqliteEventStore(db) as store:
        await store.append("s", [new_event()])
        assert store._writer is not None
        pages = (await store._writer.execute_fetchall("PRAGMA page_count"))[0][0]  # type: ignore[index]
        await store._writer.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StoreError) as full:
            await store.append("s", [new_event(reason="x" * 200_000)])
        assert full.value.message.startswith(
            f"the disk holding {db} is full: could not write these events to glam.db; "
            "nothing of it was stored;"
        )
        assert "rollback" not in full.value.one_line()
        assert "backup" not in full.value.one_line()
        assert not isinstance(full.value, StoreCorrupt)
        with pytest.raises(StoreError, match="writes nothing more until it is started again"):
            await store.append("s", [new_event()])
    async with SqliteEventStore(db, readonly=True) as reader:
        assert [r.position for r in await reader.read_all()] == [1]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root only; skipped where it cannot be mounted)."""
    with small_tmpfs(tmp_path / "small", "2m") as disk:
        yield disk


async def test_a_disk_filled_by_appends(small_disk: Path) -> None:
    """Redteam S26/S28: the log on a 2 MiB disk, appended to until it is full. The -wal stays
    small (it was what filled the disk), the failing append is reported as a full disk, every
    acknowledged event is there afterwards, and further work is refused."""
    db = small_disk / "state" / "glam.db"
    acknowledged = 0
    biggest_wal = 0
    async with open_store(db, exclusive=True, integrity=Integrity()) as store:
        failure: StoreError | None = None
        while failure is None:
            try:
                await store.append("s", [new_event(reason="x" * 8_000)])
            except StoreError as exc:
                failure = exc
            else:
                acknowledged += 1
                biggest_wal = max(biggest_wal, _wal_size(db))
        assert "disk holding" in failure.message
        assert "is full" in failure.message
        assert "rollback" not in failure.one_line()
        assert not isinstance(failure, StoreCorrupt)
        with pytest.raises(StoreError, match="writes nothing more"):
            await store.append("s", [new_event()])
    assert biggest_wal <= JOURNAL_SIZE_LIMIT + 512 * 1024
    assert acknowledged * 8_000 > 0.4 * 2 * 1024 * 1024  # the log, not its -wal, used the disk
    async with SqliteEventStore(db, readonly=True) as reader:
        assert await reader.last_position() == acknowledged
        assert await reader.verify() is None


async def test_a_full_disk_at_open_is_not_called_corruption(small_disk: Path) -> None:
    """Redteam S27: starting with a few KiB free said "not a readable glam event log ... restore
    it from a backup", advice that would throw away a healthy log."""
    db = small_disk / "glam.db"
    async with open_store(db, exclusive=True) as store:
        for _ in range(20):
            await store.append("s", [new_event(reason="x" * 2_000)])
    filler = small_disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 65536)
    with contextlib.suppress(OSError), (small_disk / "filler2").open("wb") as out:
        while True:
            out.write(b"\0" * 512)
    with pytest.raises(StoreError) as full:
        async with open_store(db, exclusive=True) as store:
            await store.append("s", [new_event(reason="x" * 20_000)])
    assert not isinstance(full.value, StoreCorrupt), full.value.one_line()
    assert "full" in full.value.message
    assert "backup" not in full.value.one_line()
    os.unlink(filler)
    async with SqliteEventStore(db, readonly=True) as reader:
        assert await reader.last_position() == 20
        assert await reader.verify() is None


async def test_the_wal_stays_small(tmp_path: Path) -> None:
    """journal_size_limit and an earlier checkpoint: thousands of appends leave a -wal of about
    a MiB, not SQLite's default 4 MiB and more."""
    db = tmp_path / "glam.db"
    async with SqliteEventStore(db) as store:
        for _ in range(400):
            await store.append("s", [new_event(reason="x" * 10_000)])
        size = _wal_size(db)
    assert size <= JOURNAL_SIZE_LIMIT + 256 * 1024


async def test_a_reader_refuses_a_running_engines_lost_wal_and_makes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`glam status` beside an engine whose -wal was deleted: refused in one line, as the
    store refuses it, before its integrity check opens the file (a read-only connection
    would make a new -wal, and the history would split from the engine's)."""
    import anyio

    from tests.support.cli import run_glam

    db = tmp_path / "glam.db"
    async with open_store(db, exclusive=True) as engine:
        for _ in range(3):
            await engine.append("s", [new_event()])
        _remove_journal(db)
        code, out, err = await anyio.to_thread.run_sync(
            lambda: run_glam(monkeypatch, capsys, "status", "--db", str(db))
        )
        assert not os.path.exists(f"{db}-wal")  # noqa: ASYNC240 - one stat, in a test
        with pytest.raises(StoreCorrupt):
            await engine.append("s", [new_event()])  # the engine notices, and stops
    assert (code, out) == (1, "")
    assert "running engine's" in err
    assert err.count("\n") == 1, err
