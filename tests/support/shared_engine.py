"""One engine in shared mode as a child process, for the tests and the failover benchmark.

    python -m tests.support.shared_engine --repo R --db postgresql://... --endpoint-url E \\
        --region R --engine-id a --lease-ttl 3

It runs until SIGTERM (a clean stop: its leases are given back) or until it is killed. Its
event ids start with its engine id, so a test can tell which engine appended what; it polls AWS
and the repository often (short waits), on the system clock.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import uuid
from dataclasses import replace

import anyio

from engine.runtime.engine import Engine, EngineConfig
from tests.support.engine_main import SHORT_WAITS


async def _main(config: EngineConfig) -> None:
    engine_id = config.engine_id or "engine"
    async with Engine(config, ids=lambda: f"{engine_id}-{uuid.uuid4().hex}") as engine:

        async def on_term() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    engine.stop()
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(on_term)
            await engine.run()
            tg.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shared_engine")
    parser.add_argument("--repo", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--engine-id", required=True)
    parser.add_argument("--lease-ttl", type=float, default=3.0)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    config = EngineConfig(
        repo=args.repo,
        db=args.db,
        region=args.region,
        endpoint_url=args.endpoint_url,
        poll=0.2,
        access_key_id="testing",
        secret_access_key="testing",
        shared=True,
        lease_ttl=args.lease_ttl,
        engine_id=args.engine_id,
    )
    anyio.run(_main, replace(config, policy=SHORT_WAITS, ops_poll=0.2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
