"""The files of an SQLite log: one name per log, private permissions, noticing a write-ahead
file deleted under a running store, and sqlite3's errors in words that say what to do.

Why each rule:

- **One name.** SQLite keeps a log's write-ahead file (``-wal``) and its index (``-shm``)
  beside the name the log was opened by. A symbolic link is resolved to the file it names, so
  every path reaches the same ``-wal``; a second hard link is refused, because two names of one
  file get two ``-wal`` files and two diverging histories.
- **Private.** The log holds every function's environment: a folder glam creates for it is
  0700, the file 0600 (SQLite gives ``-wal`` and ``-shm`` the file's permissions).
- **A deleted ``-wal``.** Deleting ``-wal`` and ``-shm`` of a database in use is an operator's
  error SQLite cannot notice: the open connections go on writing to the deleted file, and the
  next process starts a new, empty one, so everything not yet copied into the main file is lost
  when the store closes or dies. The store remembers the ``-wal`` it writes to (its inode) and
  checks it before every commit; once it is gone the store copies what it wrote into the main
  file (a checkpoint, which works through the deleted file) and refuses every further write.
  Another process refuses to open the log while an engine holds it and its ``-wal`` is missing.
- **Errors.** A full disk, an I/O error and a missing permission are not corruption: only
  SQLite's "malformed" and "not a database" say the file is damaged.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import time
from pathlib import Path

import anyio

from engine.errors import StoreCorrupt, StoreError

# Below this much free space a failed write or open is put down to a full disk.
LOW_SPACE_BYTES = 256 * 1024

DAMAGED_HINT = "restore it from a backup; glam never repairs a damaged log"
FULL_HINT = (
    "free space on that disk, then start again: every event acknowledged before this is stored"
)
WAL_HINT = (
    "never delete the -wal or -shm file of a log in use; the engine stops by itself at its next "
    "write, after copying what it wrote into the log: start it again then"
)


def resolve(path: str | Path) -> Path:
    """The log's own path: symbolic links resolved, so that every way of naming it reaches
    the same ``-wal`` and the same lock."""
    return Path(os.path.realpath(path))


def prepare(path: Path, *, create: bool) -> None:
    """Refuse a log with more than one name; make its folder (0700) and, with ``create``, an
    empty file (0600) that SQLite fills with a new log."""
    if not path.parent.exists() and create:
        _make_folder(path.parent)
    if create:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise open_error(exc, path) from None
    check_single_name(path)


def _make_folder(folder: Path) -> None:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for part in reversed(missing):
        try:
            part.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise open_error(exc, part) from None


def check_single_name(path: Path) -> None:
    try:
        links = path.stat().st_nlink
    except FileNotFoundError:
        return
    if links > 1:
        raise StoreError(
            f"{path} has {links} hard links: SQLite would keep a separate write-ahead file for "
            "each name, and the log would split into diverging histories",
            hint="remove the other links (`find / -samefile` lists them) and use one path, "
            "or a symbolic link",
        )


def open_error(exc: OSError, path: Path) -> StoreError:
    if exc.errno == errno.ENOSPC:
        return StoreError(f"the disk holding {path} is full", hint=FULL_HINT)
    return StoreError(
        f"cannot create {path} ({exc.strerror or exc})",
        hint="check the folder's permissions, or point --db / $GLAM_DB elsewhere",
    )


def low_on_space(path: Path) -> bool:
    folder = path if path.is_dir() else path.parent
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < LOW_SPACE_BYTES


async def described(exc: sqlite3.Error, path: Path, doing: str) -> StoreError:
    """``describe`` for async code, in a worker thread: it may ask the file system how much
    space is left."""
    return await anyio.to_thread.run_sync(describe, exc, path, doing)


def describe(exc: sqlite3.Error, path: Path, doing: str) -> StoreError:
    """``exc`` as a ``StoreError`` saying what happened to ``path`` while ``doing`` and what to
    do. ``doing`` is a verb phrase whose object is the file ("open", "write these events to"):
    every message names the file after it. Never sqlite3's own text where it may quote stored
    data."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if "Could not decode to UTF-8" in text:
        # sqlite3 quotes the text it could not decode: it is not repeated.
        return StoreCorrupt(
            f"{path} holds an event whose text is not valid UTF-8 (a damaged byte)",
            hint=DAMAGED_HINT,
        )
    if name == "SQLITE_FULL" or (
        (name.startswith("SQLITE_IOERR") or name == "SQLITE_CANTOPEN") and low_on_space(path)
    ):
        stored = "" if doing in ("open", "read") else "; nothing of it was stored"
        return StoreError(
            f"the disk holding {path} is full: could not {doing} {path.name}{stored}",
            hint=FULL_HINT,
        )
    if name in ("SQLITE_BUSY", "SQLITE_LOCKED") or "locked" in text:
        return StoreError(
            f"{path} is busy: {text}", hint="retry when the other writer is done", retryable=True
        )
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "malformed" in text:
        return StoreCorrupt(f"{path} is not a readable glam event log ({text})", hint=DAMAGED_HINT)
    if name in ("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_READONLY", "SQLITE_AUTH"):
        return StoreError(
            f"cannot {doing} {path} ({text})",
            hint="check the permissions of the file, its -wal and -shm, and its folder",
        )
    if name.startswith("SQLITE_IOERR"):
        return StoreError(
            f"I/O error on {path} while trying to {doing} it ({text})",
            hint="check the disk (dmesg, free space); nothing says the log itself is damaged",
            retryable=True,
        )
    return StoreError(
        f"could not {doing} {path} ({text})", hint="check the disk and the file's permissions"
    )


class WalWatch:
    """Notices the log's files deleted or replaced under a store that writes to them: the
    main file (compared with the inode it was opened as) and the ``-wal`` (remembered once it
    exists). Each call reads the file system: run it in a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.wal = Path(f"{path}-wal")
        self._inode = _inode(path)
        self._wal_inode: int | None = None

    @property
    def remembered(self) -> bool:
        """Whether the ``-wal`` is known (``remember`` has nothing more to do)."""
        return self._wal_inode is not None

    def remember(self) -> None:
        """Call after a commit: from the first one on, the ``-wal`` exists."""
        if self._wal_inode is None:
            self._wal_inode = _inode(self.wal)

    def problem(self) -> str | None:
        """What is wrong with the files, or None."""
        if _inode(self.path) != self._inode:
            return f"{self.path} was deleted or replaced while glam had it open"
        if self._wal_inode is not None and _inode(self.wal) != self._wal_inode:
            return f"{self.wal} was deleted or replaced while glam was writing to it"
        return None


def _inode(path: Path) -> int | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino


def wal_lost_error(problem: str) -> StoreCorrupt:
    return StoreCorrupt(f"{problem}: glam writes nothing more to this log", hint=WAL_HINT)


def engine_is_running(path: Path) -> bool:
    """Whether an engine holds the log's lock (``engine.store.lock``). Read from
    ``/proc/locks`` where there is one: opening the file to ask would mean closing a descriptor
    of it afterwards, which drops every POSIX lock this process's SQLite connections hold on
    it. Elsewhere a shared lock is taken for an instant."""
    try:
        owner = flock_owner(path.stat())
    except FileNotFoundError:
        return False
    except OSError:
        return _probe(path)
    return owner is not None


def flock_owner(stat: os.stat_result) -> str | None:
    """The pid holding an exclusive ``flock`` on the file ``stat`` describes, from
    ``/proc/locks`` (Linux; ``OSError`` elsewhere), or None."""
    inode = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 12345 08:01:1234 0 EOF"
        if len(fields) >= 6 and fields[1:4:2] == ["FLOCK", "WRITE"] and fields[5] == inode:
            return fields[4]
    return None


def _probe(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def check_wal_present(path: Path, *, wait: float = 2.0) -> None:
    """Refuse to open a log whose running engine lost its ``-wal``: another connection would
    start a new one, and the history the engine holds would split from it. An engine that is
    just starting has no ``-wal`` for a moment, so this waits ``wait`` seconds for one."""
    wal = Path(f"{path}-wal")
    deadline = time.monotonic() + wait
    while not wal.exists() and engine_is_running(path):
        if time.monotonic() >= deadline:
            raise wal_lost_error(f"the running engine's {wal} is missing (it was deleted)")
        time.sleep(0.1)
