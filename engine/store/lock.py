"""The engine lock: at most one glam engine per SQLite log, whatever path reaches it.

An exclusive ``flock`` on the database file itself, held for the engine's lifetime: the lock
belongs to the file (its inode), not to a name, so a symbolic link, a path through ``..``,
``$GLAM_DB`` naming a link, or a second hard link all meet the same lock. The kernel releases
it when the process dies, however it dies, so a crash never leaves a stale lock behind.
SQLite's own locks are POSIX record locks, which ``flock`` neither sees nor disturbs; the
lock's descriptor stays open until the store is closed, because closing any descriptor of the
file would drop this process's POSIX locks on it.

A process that only reads may ask whether an engine holds the lock
(``engine.store.sqlite_files.engine_is_running``: from ``/proc/locks``, or where there is none
by taking a shared lock for an instant), so taking the engine lock tries again for a moment
before it calls the log taken.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from engine.errors import StoreLocked
from engine.store import sqlite_files

RETRY_FOR = 1.0  # seconds: a reader's shared probe holds the lock for microseconds


class EngineLock:
    """``with EngineLock(db_path):`` — raises ``StoreLocked`` if another engine holds it. The
    database file (and its folder) is created, private, if it does not exist yet."""

    def __init__(self, db_path: str | Path) -> None:
        self.given_path = Path(db_path)
        self.path = self.given_path  # its own name (links resolved) once acquired
        self._fd: int | None = None

    @property
    def fd(self) -> int | None:
        return self._fd

    def acquire(self) -> None:
        self.path = sqlite_files.resolve(self.given_path)
        sqlite_files.prepare(self.path, create=True)
        fd = os.open(self.path, os.O_RDWR)
        deadline = time.monotonic() + RETRY_FOR
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                owner = _lock_owner(fd)
                os.close(fd)
                raise StoreLocked(
                    f"another glam engine is running on this database (pid {owner})",
                    hint="stop it first, or use another --db",
                ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> EngineLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _lock_owner(fd: int) -> str:
    """The pid holding the lock on ``fd``'s file, or "unknown"."""
    try:
        return sqlite_files.flock_owner(os.fstat(fd)) or "unknown"
    except OSError:
        return "unknown"
