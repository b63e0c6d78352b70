"""``glam run`` for crash tests, with failpoints armed from ``$GLAM_FAILPOINTS``.

glam itself never reads that variable: a crash point is armed only by passing
``Engine(failpoints=...)``. A test that wants its child engine to SIGKILL itself at a point
starts it as ``python -m tests.support.engine_main --repo ... --once`` with the variable set;
everything else is what ``glam run`` does (the same configuration, logging, progress lines,
summary and exit code).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from engine.cli.main import first_glam_error
from engine.cli.run import engine_config, run_engine
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


if __name__ == "__main__":
    sys.exit(main())
