"""The files of a repository's copy (the bare mirror under the data folder) when the disk
holding them is full.

Why each rule:

- **One line, retryable.** "No space left on device" anywhere in the copy (making it, a fetch
  writing a pack, the branch's ref) is ``SourceUnreachable`` naming the copy's folder: the poll
  is Unavailable, every other repository and deployment goes on, and the next poll fetches
  again once there is space.
- **Dulwich's lock files.** Dulwich writes a file (a ref, ``HEAD``) to ``NAME.lock`` and renames
  it over ``NAME`` when it is closed. When the last write of that close fails (a full disk),
  it raises before it removes the lock file, and keeps the file object open: the lock file then
  refuses every later update of ``NAME`` ("locked") even once there is space again, and the
  object prints a traceback ("Exception ignored in ... __del__") whenever it is collected.
  ``release_locks`` closes such objects and removes their lock files; the mirror is glam's
  own and its writes run one at a time, so a lock file left by a failed write is never another
  writer's.
- **A copy made whole or not at all.** A new copy is made in a folder beside its place and
  renamed into it: one that could not be finished leaves no half-made folder that every later
  attempt would fail on ("File exists").
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import traceback
from pathlib import Path
from typing import Any

from dulwich.file import _GitFile  # noqa: TID251
from dulwich.repo import Repo  # noqa: TID251

_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from, is a full disk (or a full quota)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno in _FULL:
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def release_locks(exc: BaseException) -> None:
    """Close the dulwich files ``exc`` left open part-written, and remove their lock files
    (see the module docstring). Call it while handling ``exc``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for frame, _ in traceback.walk_tb(current.__traceback__):
            for value in list(frame.f_locals.values()):
                if isinstance(value, _GitFile):
                    _release(value)
        current = current.__cause__ or current.__context__


def _release(file: Any) -> None:
    if file._closed:
        return
    # Closing flushes what could not be written and fails again; the descriptor is closed
    # all the same.
    with contextlib.suppress(OSError):
        file._file.close()
    with contextlib.suppress(OSError):
        os.remove(file._lockfilename)
    file._closed = True


def init_bare(folder: Path) -> Any:
    """A new bare repository at ``folder`` (made whole or not at all), opened."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(folder.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    if folder.exists():  # made by an attempt that stopped before its HEAD was written
        shutil.rmtree(folder)
    try:
        staging.mkdir(mode=0o700)
        Repo.init_bare(str(staging)).close()
        staging.rename(folder)
    except BaseException as exc:
        release_locks(exc)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Repo(str(folder))
