"""``glam run`` for crash tests, with failpoints armed from ``$GLAM_FAILPOINTS``.

glam itself never reads that variable: a crash point is armed only by passing
``Engine(failpoints=...)``. A test that wants its child engine to SIGKILL itself at a point
starts it as ``python -m tests.support.engine_main --repo ... --once`` with the variable set;
everything else is what ``glam run`` does (the same configuration, logging, progress lines,
summary and exit code).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.process import BaseProcess
from pathlib import Path

from engine.cli.main import first_glam_error
from engine.cli.run import run_engine
from engine.cli.run_config import engine_config
from engine.runtime.failpoints import Failpoints, parse
from engine.saga import SagaPolicy, StepRetry

ENV = "GLAM_FAILPOINTS"
# A crash test's child runs on the system clock: it polls often, so that reaching its crash
# point takes the Pending and bake times of the embedded AWS, not minutes of default polls.
SHORT_WAITS = SagaPolicy(
    retry=StepRetry(max_attempts=12, initial_backoff=0.05, max_backoff=0.2),
    poll_seconds=0.1,
    alarm_poll_seconds=0.1,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="engine_main")
    parser.add_argument("--repo", required=True)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--endpoint-url")
    parser.add_argument("--region")
    parser.add_argument("--once", action="store_true")
    parser.add_argument(
        "--short-waits", action="store_true", help="poll AWS and the ops stream every 0.1 s"
    )
    args = parser.parse_args(argv)
    try:
        failpoints = Failpoints(parse(os.environ.get(ENV, "")))
        config = engine_config(
            repo=args.repo, db=args.db, endpoint_url=args.endpoint_url, region=args.region
        )
        if args.short_waits:
            config = replace(config, policy=SHORT_WAITS, ops_poll=0.1)
        return run_engine(config, once=args.once, failpoints=failpoints)
    except BaseException as exc:
        error = first_glam_error(exc)
        if error is None:
            raise
        print(f"glam: {error.one_line()}", file=sys.stderr)
        return error.exit_code


def _child(
    argv: list[str],
    env: dict[str, str],
    output: str,
    entry: Callable[[list[str]], int] = main,
    append: bool = False,
) -> None:
    """``entry(argv)`` in a child forked from the fork server: its
    environment replaced by ``env``, its output (both streams) written to the file
    ``output`` (appended to with ``append``)."""
    os.environ.clear()
    os.environ.update(env)
    mode = os.O_APPEND if append else os.O_TRUNC
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | mode, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.exit(entry(argv))


def forked_run(argv: list[str], env: dict[str, str], output: Path) -> int:
    """Run ``main(argv)`` in a new process and return its exit code (``-9`` if it was
    SIGKILLed), blocking until it ends.

    The process is forked from a fork server that has imported the engine once (Python's
    ``forkserver``): a crash test starts dozens of engines, and each would otherwise spend a
    second or more of CPU importing glam before doing anything. It is a process of its own
    all the same: a failpoint SIGKILLs it, and the kernel drops its lock and files as for
    any killed engine."""
    process = start_child(argv, env, output)
    process.join()
    assert process.exitcode is not None
    return process.exitcode


def start_child(
    argv: list[str],
    env: dict[str, str],
    output: Path,
    *,
    entry: Callable[[list[str]], int] = main,
    append: bool = False,
) -> BaseProcess:
    """``entry(argv)`` (a module-level function of a module the child can import; this
    module's ``main`` by default) started in a process forked from the fork server (see
    ``forked_run``); the caller joins it (or signals it: its ``pid`` is the engine's)."""
    context = multiprocessing.get_context("forkserver")
    # Everything a child runs imported once: this module and the shared engine's.
    context.set_forkserver_preload([__name__, "tests.support.shared_engine"])
    process = context.Process(target=_child, args=(argv, env, str(output), entry, append))
    process.start()
    return process


if __name__ == "__main__":
    sys.exit(main())
