"""A render worker process: reads and renders function prefixes for ``engine.git.render``.

    python -m engine.git.render_worker '<limits as JSON>' <board fd>

It runs the user's templates, so it runs them fenced in: an address space limit
(``RLIMIT_AS``), no core files, an interval timer per file that interrupts any Python code, a
minimal environment (the parent passes no credentials), and it reads the repository itself
(no file data crosses the pipe). One JSON line per message on a private copy of stdout;
anything else printed lands on stderr. Before each file it writes the job id, the time and the
file's path into the shared page ``engine.git.render`` gave it (the "board"): the engine times
each file from there, and names it if it must kill the worker.

    parent -> worker  {"id": 7, "repo": "/path", "sha": "...", "prefix": "apps/a/a",
                       "files": {"def": ["apps/a/a_lambdadef.json", 33188, "<blob>"], ...},
                       "keep": false}
    worker -> parent  {"ready": <pid>}                     once, when it can take work
                      {"id": 7, "outcome": {...}}          the prefix's PrefixOutcome
                      {"id": 7, "outcome": {...}, "exit": true}   ... and it is leaving
"""

from __future__ import annotations

import json
import mmap
import os
import resource
import signal
import sys
import time
from typing import IO, Any

from engine.definitions.commit import PrefixOutcome, Rejection, render_prefix
from engine.definitions.lambdadef import create_function_shape
from engine.definitions.limits import RenderLimits, seconds
from engine.definitions.names import partitions
from engine.git.render import BOARD_HEAD, BOARD_SIZE
from engine.git.snapshot import Snapshot

# After a job that took this worker's peak memory past this share of its limit, it leaves and a
# fresh one takes its place: memory a template grabbed is not always given back.
_RECYCLE_SHARE = 0.5


def peak_rss() -> int:
    """This process's own peak resident memory, in bytes. On Linux that is ``VmHWM``:
    ``ru_maxrss`` carries the parent's peak across ``fork`` and ``exec``, so a worker started
    by a large engine would look full before rendering anything."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class FileTimeout(BaseException):
    """The per-file timer fired. A BaseException, so no ``except Exception`` on the way out of
    the template (Jinja's, the sandbox's, glam's) can swallow it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise FileTimeout


def outcome_to_json(outcome: PrefixOutcome) -> dict[str, Any]:
    rejection = outcome.rejection
    return {
        "prefix": outcome.prefix,
        "desired": None if outcome.desired is None else outcome.desired.model_dump(mode="json"),
        "rejection": None
        if rejection is None
        else {
            "prefix": rejection.prefix,
            "file": rejection.file,
            "reason": rejection.reason,
            "line": rejection.line,
            "column": rejection.column,
            "hint": rejection.hint,
        },
        "warnings": [w.model_dump(mode="json") for w in outcome.warnings],
        "rendered": dict(outcome.rendered),
    }


class Worker:
    def __init__(self, limits: RenderLimits, out: IO[bytes], board: mmap.mmap | None = None):
        self.limits = limits
        self.out = out
        self.board = board
        self._snapshot: tuple[str, str, Snapshot] | None = None
        self._ref_cache: dict[tuple[str, str], dict[str, Any]] = {}

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message, ensure_ascii=True).encode() + b"\n")
        self.out.flush()

    def snapshot(self, repo: str, sha: str, entries: dict[str, tuple[int, str]]) -> Snapshot:
        # One commit at a time: its trees, and the ref files its prefixes share, are reused.
        if self._snapshot is None or self._snapshot[:2] != (repo, sha):
            if self._snapshot is not None:
                self._snapshot[2].close()
            self._snapshot = (repo, sha, Snapshot.open(repo, sha))
            self._ref_cache = {}
        snapshot = self._snapshot[2]
        snapshot.know(entries)
        return snapshot

    def job(self, job: dict[str, Any]) -> bool:
        """Do one job; False when this worker should leave afterwards."""
        job_id = job["id"]
        files = {kind: item[0] for kind, item in job["files"].items()}
        entries = {
            item[0]: (int(item[1]), str(item[2])) for item in job["files"].values() if item[2]
        }
        current = {"file": files.get("def", job["prefix"])}
        timer = self.limits.file_seconds * 1.1 + 0.1  # the sandbox's own deadline comes first

        def on_file(path: str) -> None:
            current["file"] = path
            if self.board is not None:
                # Path and time first, the job id last: a reader that sees this job's id
                # sees this file's time.
                raw = path.encode("utf-8", errors="replace")[: BOARD_SIZE - BOARD_HEAD.size - 1]
                self.board[BOARD_HEAD.size : BOARD_HEAD.size + len(raw) + 1] = raw + b"\0"
                self.board[8:16] = BOARD_HEAD.pack(0, time.monotonic())[8:16]
                self.board[0:8] = BOARD_HEAD.pack(job_id, 0.0)[0:8]
            signal.setitimer(signal.ITIMER_REAL, timer)

        try:
            try:
                snapshot = self.snapshot(job["repo"], job["sha"], entries)
                outcome = render_prefix(
                    job["prefix"],
                    files,
                    snapshot,
                    ref_cache=self._ref_cache,
                    limits=self.limits,
                    keep_rendered=bool(job.get("keep")),
                    on_file=on_file,
                )
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except FileTimeout:
            # Interrupted anywhere in Python code: drop what may be half-built.
            self._reset()
            reason = (
                f"reading and rendering took longer than the time limit of "
                f"{seconds(self.limits.file_seconds)} per file"
            )
            outcome = PrefixOutcome(
                job["prefix"],
                rejection=Rejection(
                    prefix=job["prefix"],
                    file=current["file"],
                    reason=reason,
                    hint="make the template do less work",
                ),
            )
        leave = peak_rss() > self.limits.memory_bytes * _RECYCLE_SHARE
        message: dict[str, Any] = {"id": job_id, "outcome": outcome_to_json(outcome)}
        if leave:
            message["exit"] = True
        self.send(message)
        return not leave

    def _reset(self) -> None:
        from engine.definitions import templates

        templates.reset_thread_state()
        if self._snapshot is not None:
            self._snapshot[2].close()
        self._snapshot = None
        self._ref_cache = {}


def main(argv: list[str]) -> int:
    limits = RenderLimits(**json.loads(argv[1]))
    board = mmap.mmap(int(argv[2]), BOARD_SIZE) if len(argv) > 2 else None
    # The protocol gets a private copy of stdout; fd 1 becomes stderr, so a stray print from
    # any library cannot corrupt it.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Warm what every job needs before the limits: the Lambda model and the partitions.
    create_function_shape()
    partitions()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this one stops
    worker = Worker(limits, out, board)
    worker.send({"ready": os.getpid()})
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        if not worker.job(json.loads(line)):
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
