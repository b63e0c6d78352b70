"""SQLite's integrity check of a log file, on a connection of its own, that another thread can
stop; and the same check started in a thread of its own before a command has imported what
it reads with (``BackgroundCheck``).

Light on purpose: the standard library and glam's errors only. ``glam replay`` and
``glam status`` start the check first and import pydantic, the events and the views while it
reads the file's pages (the check is most of their time on a large log).

    check = BackgroundCheck.start(path)     # a daemon thread: ``FileCheck(path).run()``
    ...                                     # open the store, read
    await check.wait()                      # StoreCorrupt (or a StoreError) when it failed
    check.stop()                            # leaving early: not a page more
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from engine.errors import StoreCorrupt, StoreError
from engine.store import sqlite_files

# Above this size the full integrity check at open takes too long; quick_check still reads
# every page and catches torn or truncated files.
FULL_CHECK_MAX_BYTES = 256 * 1024 * 1024
CHECK_BUSY_TIMEOUT_MS = 10_000  # the store's own connections wait as long for a busy file
# SQLite instructions between two looks at the stop flag (a few milliseconds of the check).
POLL_INSTRUCTIONS = 1_000_000


def check_pragma(size: int) -> str:
    return "integrity_check" if size <= FULL_CHECK_MAX_BYTES else "quick_check"


def refuse_problems(where: Path, pragma: str, rows: Iterable[Sequence[Any]]) -> None:
    """``StoreCorrupt`` in one line when SQLite's check found problems: the first, and how
    many more (a row can hold several lines, under a "*** in database main ***" header)."""
    problems = [
        line.strip()
        for row in rows
        if row[0] != "ok"
        for line in str(row[0]).splitlines()
        if line.strip() and not line.startswith("***")
    ]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise StoreCorrupt(
            f"{where} failed SQLite's {pragma}: {problems[0]}{more}",
            hint=sqlite_files.DAMAGED_HINT,
        )


class FileCheck:
    """SQLite's integrity check of the log at ``path`` (``check_format``'s, on a read-only
    connection of its own, in the calling thread of ``run``), for a reader that checks the
    file beside its work (``cli.common``): ``StoreCorrupt`` naming ``where`` when it finds a
    problem. Another thread can ``stop`` it: a reader that leaves before the check ends
    (Ctrl-C, an error of its own) does not wait for it to read every page."""

    def __init__(self, path: Path, where: Path) -> None:
        self.path = path
        self.where = where
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._stopped = False

    def run(self) -> None:
        """The check; nothing when it was stopped."""
        try:
            pragma = check_pragma(self.path.stat().st_size)
        except OSError as exc:  # gone or unreadable since the caller looked
            raise StoreError(
                f"cannot check {self.where}: {exc.strerror or exc}",
                hint="check that the file exists and that this user may read it",
            ) from None
        try:
            conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True)
            try:
                conn.execute(f"PRAGMA busy_timeout = {CHECK_BUSY_TIMEOUT_MS}")
                # SQLite's interrupt stops a statement that runs; one sent before the check
                # begins would be cleared when it does, so this handler looks at the flag
                # too. Rarely: each call takes the GIL from the reader's thread (every 100
                # instructions made a 1 s check take minutes beside a busy reader).
                conn.set_progress_handler(self._poll, POLL_INSTRUCTIONS)
                with self._lock:
                    if self._stopped:
                        return
                    self._conn = conn
                rows = conn.execute(self._statement(pragma)).fetchall()
            finally:
                with self._lock:
                    self._conn = None
                conn.close()
        except sqlite3.Error as exc:
            if self._stopped:
                return  # interrupted: nobody waits for the answer
            raise sqlite_files.describe(exc, self.where, "check") from None
        refuse_problems(self.where, pragma, rows)

    def _poll(self) -> int:
        """SQLite's progress handler: non-zero stops the statement."""
        return int(self._stopped)

    def stop(self) -> None:
        """Interrupt the check (from any thread); a check not begun yet does not begin."""
        with self._lock:
            self._stopped = True
            if self._conn is not None:
                self._conn.interrupt()

    def _statement(self, pragma: str) -> str:
        return f"PRAGMA {pragma}"


class BackgroundCheck:
    """A ``FileCheck`` running in a daemon thread from the moment it is started: a process
    that exits without waiting for it (an error, Ctrl-C) is not held up by it."""

    def __init__(self, check: FileCheck) -> None:
        self.check = check
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="glam-file-check", daemon=True)

    @classmethod
    def start(cls, path: Path, where: Path | None = None) -> BackgroundCheck:
        started = cls(FileCheck(path, where or path))
        started._thread.start()
        return started

    def _run(self) -> None:
        try:
            self.check.run()
        except BaseException as exc:
            self.error = exc

    async def wait(self) -> None:
        """Until the check has ended; its error, if it failed. Cancelling the wait stops it."""
        import anyio
        import anyio.to_thread

        try:
            await anyio.to_thread.run_sync(self._thread.join, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            self.check.stop()  # the caller left (Ctrl-C, an error): not a page more
            raise
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self.check.stop()
