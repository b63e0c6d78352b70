"""Rendering a commit's functions in worker processes: the hard boundary around templates.

The engine never runs a user's template itself. Each function prefix is read and rendered by a
worker process (``engine.git.render_worker``) under the ``RenderLimits``:

    memory      the worker's address space is capped (RLIMIT_AS): a template that grabs memory
                gets a MemoryError in the worker, never in the engine
    time        the worker's timer interrupts a file at ``file_seconds``; if the worker does
                not answer soon after, it is killed and replaced; at ``commit_seconds`` every
                function not rendered yet is rejected
    crashes     a worker that dies (a segfault, the kernel's OOM killer) rejects the function it
                was rendering, and is replaced
    cancel      cancelling the caller (``glam run`` stopping) kills the busy workers at once

Each of these rejects only the function concerned (``DefinitionRejected`` naming the file and
the limit). Workers are few (``RenderLimits.workers``), started once per process and kept
between commits, so 5,000 functions do not pay 5,000 process starts; the first plan pays one
start, overlapped with listing the tree.

The blocking part (``RenderPool.render``) runs in a worker thread and multiplexes the workers'
pipes with ``select``, so the event loop is never held; ``render_listing`` is the async face.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import mmap
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.to_thread

from engine.definitions.commit import Listing, PrefixOutcome, Rejection
from engine.definitions.limits import NOT_RENDERED, RenderLimits, seconds, size
from engine.errors import SourceError
from engine.events.desired import DesiredFunction
from engine.events.repo import DefinitionWarning
from engine.logs import get_logger

log = get_logger("render")

STARTUP_SECONDS = 60.0  # a cold start (no bytecode cache, a busy machine) takes a few seconds
_GRACE = 1.0  # after the worker's own timer, before the worker is killed
# The page a worker writes what it is on into (job id, when the file started, its path), so
# that the engine can time each file and name it without a message per file.
BOARD_SIZE = 8192
BOARD_HEAD = struct.Struct("<Qd")
# Environment a worker keeps: how to find Python and glam, nothing else (no credentials).
_KEEP_ENV = (
    "PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONPYCACHEPREFIX",
    "PYTHONDONTWRITEBYTECODE",
    "VIRTUAL_ENV",
    "AWS_DATA_PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "SYSTEMROOT",
)


@dataclass(frozen=True, slots=True)
class Job:
    """One prefix to render: its files as (path, mode, blob id)."""

    prefix: str
    files: Mapping[str, tuple[str, int, str]]


class Cancel:
    """Set from any thread; wakes the render loop that waits on the workers."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        self._set = False
        self._closed = False
        self._lock = threading.Lock()

    def set(self) -> None:
        with self._lock:
            if not self._set and not self._closed:
                os.write(self._write, b"x")
            self._set = True

    @property
    def is_set(self) -> bool:
        return self._set

    def fileno(self) -> int:
        return self._read

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._read)
                os.close(self._write)


class _Worker:
    """One worker process and what it is doing."""

    def __init__(self, limits: RenderLimits):
        package_root = str(Path(__file__).resolve().parents[2])
        env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._board_file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._board_file.truncate(BOARD_SIZE)
        self.board = mmap.mmap(self._board_file.fileno(), BOARD_SIZE)
        board_fd = self._board_file.fileno()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine.git.render_worker",
                json.dumps(asdict(limits)),
                str(board_fd),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
            pass_fds=(board_fd,),
            # Its own session: a Ctrl-C at the terminal is the engine's to handle.
            start_new_session=True,
        )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.stdin: IO[bytes] = self.proc.stdin
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buffer = bytearray()
        self.ready = False
        self.leaving = False
        self.started = time.monotonic()
        self.job: Job | None = None
        self.job_id = 0
        self.sent = 0.0

    def deadline(self, file_seconds: float) -> float:
        """When this worker must have answered: a start has its own time; a job has the
        per-file limit (and a grace) from when the file it is on began."""
        if not self.ready:
            return self.started + STARTUP_SECONDS
        if self.job is None:
            return float("inf")
        job_id, began, _ = self.progress()
        return (began if job_id == self.job_id else self.sent) + file_seconds * 1.5 + _GRACE

    def progress(self) -> tuple[int, float, str | None]:
        """(job id, when its current file began, that file) as the worker last wrote them."""
        if self.board.closed:
            return 0, 0.0, None
        job_id, began = BOARD_HEAD.unpack_from(self.board, 0)
        raw = self.board[BOARD_HEAD.size :].split(b"\0", 1)[0]
        return int(job_id), float(began), raw.decode("utf-8", errors="replace") or None

    @property
    def file(self) -> str | None:
        """The file the current job is on (its definition until the worker says otherwise)."""
        if self.job is None:
            return None
        job_id, _, path = self.progress()
        if job_id == self.job_id and path:
            return path
        return self.job.files["def"][0] if "def" in self.job.files else None

    def send(self, job: Job, repo: str, sha: str, keep: bool) -> None:
        self.job_id += 1
        self.job = job
        self.sent = time.monotonic()
        line = {
            "id": self.job_id,
            "repo": repo,
            "sha": sha,
            "prefix": job.prefix,
            "files": job.files,
            "keep": keep,
        }
        self.stdin.write(json.dumps(line).encode() + b"\n")
        self.stdin.flush()

    def read(self, max_line: int) -> list[dict[str, Any]] | None:
        """The complete messages available; None once the worker is gone (or misbehaves)."""
        try:
            chunk = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        except OSError:
            return None
        if not chunk:
            return None
        self.buffer += chunk
        messages = []
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                break
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 1]
            try:
                messages.append(json.loads(line))
            except ValueError:
                return None
        if len(self.buffer) > max_line:
            return None
        return messages

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.close()

    def close(self) -> None:
        """Ask it to leave (end of input), wait a little, then make sure. One still starting
        has nothing to finish: it is stopped at once."""
        with contextlib.suppress(OSError, ValueError):
            self.stdin.close()
        try:
            self.proc.wait(timeout=0.5 if self.ready else 0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.board.close()
        self._board_file.close()

    def ended(self) -> str:
        """How the process ended, for a message."""
        code = self.proc.poll()
        if code is None:
            self.kill()
            code = self.proc.poll()
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                return f"was stopped by signal {signal.Signals(-code).name}"
        return f"exited with code {code}"


class RenderPool:
    """A few worker processes that render function prefixes; thread-safe, reused by every
    commit of this process. Use ``pool_for(limits)``."""

    def __init__(self, limits: RenderLimits):
        self.limits = limits
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self._rendering = 0  # render calls in progress (their workers are not idle)
        self.killed: list[int] = []  # pids of workers stopped mid-file, oldest first

    def prestart(self) -> None:
        """Start one worker now if none is waiting or working, so its start overlaps other
        work."""
        with self._lock:
            if not self._idle and not self._rendering and not self._closed:
                self._idle.append(_Worker(self.limits))

    def _take(self, n: int) -> list[_Worker]:
        with self._lock:
            if self._closed:
                raise SourceError("the render workers are shut down", hint="restart glam")
            self._rendering += 1
            taken, self._idle = self._idle[:n], self._idle[n:]
        try:
            taken += [_Worker(self.limits) for _ in range(n - len(taken))]
        except OSError as exc:
            self._give_back(taken)
            raise SourceError(
                f"cannot start a render worker ({exc})", hint="check the machine's limits"
            ) from None
        return taken

    def _give_back(self, workers: Sequence[_Worker]) -> None:
        surplus = []
        with self._lock:
            self._rendering -= 1
            for worker in workers:
                if self._closed or len(self._idle) >= self.limits.workers:
                    surplus.append(worker)
                else:
                    self._idle.append(worker)
        for worker in surplus:
            worker.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()

    def render(
        self,
        repo: str,
        sha: str,
        jobs: Sequence[Job],
        *,
        keep_rendered: bool = False,
        cancel: Cancel | None = None,
    ) -> list[PrefixOutcome]:
        """Render ``jobs`` (blocking: run it in a worker thread). Every job gets an outcome,
        unless ``cancel`` is set, which ends it early with the busy workers killed."""
        limits = self.limits
        outcomes: dict[str, PrefixOutcome] = {}
        pending = deque(jobs)
        # One worker renders about 1,000 small functions a second: more only for big commits.
        workers = self._take(min(limits.workers, 1 + len(jobs) // 200))
        # The commit's time runs from when a worker can take work: starting one is not
        # rendering (and a cold start on a busy machine takes seconds).
        commit_deadline = float("inf")
        max_line = 8 * limits.output_bytes + (1 << 20)
        try:
            while pending or any(w.job is not None for w in workers):
                if cancel is not None and cancel.is_set:
                    return []
                now = time.monotonic()
                if commit_deadline == float("inf") and any(w.ready for w in workers):
                    commit_deadline = now + limits.commit_seconds
                if now > commit_deadline:
                    self._out_of_time(workers, pending, outcomes)
                    break
                for worker in list(workers):
                    if worker.ready and worker.job is None and not worker.leaving and pending:
                        job = pending.popleft()
                        try:
                            worker.send(job, repo, sha, keep_rendered)
                        except OSError:  # it died while idle: not this job's doing
                            pending.appendleft(job)
                            worker.job = None
                            self._lost(worker, workers, outcomes, replace=True)
                deadlines = {w: w.deadline(limits.file_seconds) for w in workers}
                wait = min([*deadlines.values(), commit_deadline]) - now
                fds: list[Any] = [w.fd for w in workers]
                if cancel is not None:
                    fds.append(cancel)
                readable, _, _ = select.select(fds, [], [], max(0.0, wait))
                now = time.monotonic()
                for worker in list(workers):
                    if worker.fd in readable:
                        messages = worker.read(max_line)
                        if messages is None:
                            self._lost(worker, workers, outcomes, bool(pending))
                            continue
                        for message in messages:
                            self._handle(worker, message, outcomes)
                        if worker.leaving and worker.job is None:
                            workers.remove(worker)
                            worker.close()
                            if pending:
                                workers.append(_Worker(limits))
                    elif now > worker.deadline(limits.file_seconds):
                        self._overran(worker, workers, outcomes, bool(pending))
        finally:
            keep = []
            for worker in workers:
                if worker.job is not None:
                    worker.kill()  # cancelled, or out of time: it is mid-file
                    self.killed.append(worker.proc.pid)
                elif worker.leaving:
                    worker.close()
                else:
                    keep.append(worker)  # idle, or still starting: the next commit's
            self._give_back(keep)
        return [outcomes[job.prefix] for job in jobs if job.prefix in outcomes]

    def _handle(
        self, worker: _Worker, message: dict[str, Any], outcomes: dict[str, PrefixOutcome]
    ) -> None:
        if "ready" in message:
            worker.ready = True
            return
        if worker.job is None or message.get("id") != worker.job_id:
            return
        if "outcome" in message:
            job = worker.job
            outcomes[job.prefix] = _outcome(message["outcome"], job.prefix, worker.file)
            worker.job = None
            worker.leaving = bool(message.get("exit"))

    def _lost(
        self,
        worker: _Worker,
        workers: list[_Worker],
        outcomes: dict[str, PrefixOutcome],
        replace: bool,
    ) -> None:
        """The worker's pipe closed (it died) or it sent something that is not a message."""
        workers.remove(worker)
        file = worker.file
        how = worker.ended()
        worker.close()
        if worker.job is None and not worker.ready:
            # Never became ready: an installation problem, not a template's doing.
            raise SourceError(
                f"the render worker could not start (it {how})",
                hint="check that glam is installed completely; its error is above",
            )
        if worker.job is not None:
            prefix = worker.job.prefix
            outcomes[prefix] = _failed(
                prefix,
                file or prefix,
                f"the render worker {how} while reading it (it may have passed the memory "
                f"limit of {size(self.limits.memory_bytes)})",
            )
        if replace:
            workers.append(_Worker(self.limits))

    def _overran(
        self,
        worker: _Worker,
        workers: list[_Worker],
        outcomes: dict[str, PrefixOutcome],
        replace: bool,
    ) -> None:
        workers.remove(worker)
        file = worker.file
        worker.kill()
        self.killed.append(worker.proc.pid)
        if worker.job is None:
            raise SourceError(
                f"the render worker did not start within {seconds(STARTUP_SECONDS)}",
                hint="the machine may be overloaded; glam tries again at the next poll",
            )
        prefix = worker.job.prefix
        outcomes[prefix] = _failed(
            prefix,
            file or prefix,
            f"reading and rendering took longer than the time limit of "
            f"{seconds(self.limits.file_seconds)} per file (the render worker was stopped)",
        )
        log.warning("%s: render worker killed after the time limit", prefix)
        if replace:
            workers.append(_Worker(self.limits))

    def _out_of_time(
        self,
        workers: list[_Worker],
        pending: deque[Job],
        outcomes: dict[str, PrefixOutcome],
    ) -> None:
        reason = (
            f"{NOT_RENDERED}the commit used up its render time limit of "
            f"{seconds(self.limits.commit_seconds)}; it is rendered again at the next poll"
        )
        for worker in workers:
            if worker.job is not None:
                prefix = worker.job.prefix
                outcomes[prefix] = _failed(prefix, worker.file or prefix, reason)
        for job in pending:
            outcomes[job.prefix] = _failed(job.prefix, job.files["def"][0], reason)
        pending.clear()


def _failed(prefix: str, file: str, reason: str) -> PrefixOutcome:
    return PrefixOutcome(
        prefix,
        rejection=Rejection(
            prefix=prefix, file=file, reason=reason, hint="make the template do less work"
        ),
    )


def _outcome(data: dict[str, Any], prefix: str, file: str | None) -> PrefixOutcome:
    """A worker's outcome, validated as if it came from anywhere (it ran a template)."""
    try:
        rejection = data.get("rejection")
        return PrefixOutcome(
            prefix,
            desired=None
            if data.get("desired") is None
            else DesiredFunction.model_validate(data["desired"]),
            rejection=None if rejection is None else Rejection(**rejection),
            warnings=tuple(DefinitionWarning.model_validate(w) for w in data.get("warnings", ())),
            rendered={str(k): str(v) for k, v in (data.get("rendered") or {}).items()},
        )
    except Exception as exc:
        return _failed(
            prefix, file or prefix, f"the render worker's answer was not understood ({exc})"
        )


_pools: dict[RenderLimits, RenderPool] = {}
_pools_lock = threading.Lock()


def pool_for(limits: RenderLimits) -> RenderPool:
    """The process's pool for ``limits`` (made on first use, closed at exit)."""
    with _pools_lock:
        pool = _pools.get(limits)
        if pool is None:
            pool = _pools[limits] = RenderPool(limits)
        return pool


@atexit.register
def close_pools() -> None:
    """Stop every worker of this process (also run at exit)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


def prestart(limits: RenderLimits | None = None) -> None:
    """Start a render worker for ``limits`` (default: from the environment) if none waits."""
    pool_for(limits or RenderLimits.from_env()).prestart()


def jobs_of(listing: Listing, entry: Any) -> list[Job]:
    """The render jobs of a listing; ``entry(path)`` gives a listed file's (mode, blob id)."""
    jobs = []
    for prefix in listing.render:
        files: dict[str, tuple[str, int, str]] = {}
        for kind, path in listing.groups[prefix].items():
            known = entry(path)
            files[kind] = (path, known[0], known[1]) if known is not None else (path, 0, "")
        jobs.append(Job(prefix=prefix, files=files))
    return jobs


async def render_listing(
    pool: RenderPool, repo: str, listing: Listing, jobs: Sequence[Job], *, keep_rendered: bool
) -> list[PrefixOutcome]:
    """Render ``jobs`` in ``pool`` from a worker thread. Cancelling this kills the busy
    workers at once: the thread is abandoned and ends on its own a moment later."""
    if not jobs:
        return []
    cancel = Cancel()

    def work() -> list[PrefixOutcome]:
        try:
            return pool.render(repo, listing.sha, jobs, keep_rendered=keep_rendered, cancel=cancel)
        finally:
            cancel.close()

    try:
        return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        cancel.set()
        raise
