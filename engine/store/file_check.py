"""SQLite's integrity check of a log file, in a process of its own that the caller can stop
at once; and the same check started before a command has imported what it reads with
(``BackgroundCheck``).

The check reads every page of the file: seconds on a log of gigabytes, beside the reads of
``glam replay``, ``glam status`` and ``glam plan --db``. In a child process it shares no GIL
with the reader (a progress handler in the reader's own process took the GIL from it every
few instructions), it can read through a memory map (a disk's read error there is a SIGBUS,
which ends the child only, and is reported as an I/O error), and stopping it is killing it.

Light on purpose (the standard library, glam's errors and ``sqlite_files``), so that a command
starts the check before it imports pydantic, the events and the views. The child ends with
the command: it reads its stdin, a pipe the command holds, and exits when that closes, however
the command ended (an error, a signal, SIGKILL).

    check = BackgroundCheck.start(path)     # a daemon thread: ``FileCheck(path).run()``
    ...                                     # open the store, read
    await check.wait()                      # StoreCorrupt (or a StoreError) when it failed
    check.stop()                            # leaving early: the child is killed
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
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
# As much of the file as SQLite maps (its build caps it, here at 2 GiB; the rest is read as
# usual): a quarter less time than copying each page into its cache.
CHECK_MMAP_BYTES = 1 << 40

# The child: the check on a read-only connection, its rows (or SQLite's error) as JSON; it
# leaves as soon as its stdin closes (the command that started it is gone).
CHILD = f"""
import json, os, sqlite3, sys, threading
def orphaned():
    sys.stdin.buffer.read()
    os._exit(1)
threading.Thread(target=orphaned, daemon=True).start()
try:
    conn = sqlite3.connect(sys.argv[1], uri=True)
    conn.execute("PRAGMA busy_timeout = {CHECK_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA mmap_size = {CHECK_MMAP_BYTES}").fetchall()
    answer = {{"rows": [list(row) for row in conn.execute(sys.argv[2]).fetchall()]}}
except sqlite3.Error as exc:
    answer = {{"error": [type(exc).__name__, getattr(exc, "sqlite_errorname", "") or "",
                         getattr(exc, "sqlite_errorcode", None), str(exc)]}}
print(json.dumps(answer), flush=True)
os._exit(0)  # not a normal exit: the thread still reads stdin
"""


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
    """SQLite's integrity check of the log at ``path`` (``check_format``'s), run by ``run`` in
    a child process of its own, for a reader that checks the file beside its work
    (``cli.common``): ``StoreCorrupt`` naming ``where`` when it finds a problem. Another
    thread can ``stop`` it: a reader that leaves before the check ends (Ctrl-C, an error of
    its own) does not wait for it to read every page."""

    def __init__(self, path: Path, where: Path) -> None:
        self.path = path
        self.where = where
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._stopped = False

    def run(self) -> None:
        """The check, until it ends; nothing when it was stopped."""
        try:
            pragma = check_pragma(self.path.stat().st_size)
        except OSError as exc:  # gone or unreadable since the caller looked
            raise StoreError(
                f"cannot check {self.where}: {exc.strerror or exc}",
                hint="check that the file exists and that this user may read it",
            ) from None
        uri = f"{self.path.as_uri()}?mode=ro"
        with self._lock:
            if self._stopped:
                return
            # Its own process group: a Ctrl-C at the terminal reaches the command, which stops
            # it; its stdin stays open (never written) for as long as the command lives.
            try:
                self._child = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", CHILD, uri, self._statement(pragma)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    process_group=0,
                )
            except OSError as exc:
                raise StoreError(
                    f"cannot check {self.where}: the check's process did not start "
                    f"({exc.strerror or exc})",
                    hint="check the machine's free memory and process limits",
                ) from None
        child = self._child
        out = child.stdout.read() if child.stdout is not None else b""
        child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
        if self.stopped:
            return  # killed: nobody waits for the answer
        self._refuse(pragma, child.returncode, out)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def _refuse(self, pragma: str, code: int, out: bytes) -> None:
        if code == -signal.SIGBUS:
            raise StoreError(
                f"I/O error on {self.where} while trying to check it (a page could not be read)",
                hint="check the disk (dmesg) and that nothing truncated the file; restore the "
                "log from a backup if it persists",
                retryable=True,
            )
        try:
            answer = json.loads(out) if code == 0 else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise StoreError(
                f"could not check {self.where}: SQLite's {pragma} ended with status {code}",
                hint="check the disk and the file's permissions",
            )
        if "error" in answer:
            kind, name, number, text = answer["error"]
            error = getattr(sqlite3, str(kind), None)
            if not (isinstance(error, type) and issubclass(error, sqlite3.Error)):
                error = sqlite3.Error
            exc = error(text)
            exc.sqlite_errorname, exc.sqlite_errorcode = name, number
            raise sqlite_files.describe(exc, self.where, "check")
        refuse_problems(self.where, pragma, answer["rows"])

    def stop(self) -> None:
        """Stop the check (from any thread); a check not begun yet does not begin."""
        with self._lock:
            self._stopped = True
            if self._child is not None and self._child.poll() is None:
                self._child.kill()

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
