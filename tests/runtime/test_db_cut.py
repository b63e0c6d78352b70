"""The network to PostgreSQL failing under a shared engine mid-deployment: its connections to
the log go through a proxy that drops them, once with a COMMIT the server applied but the
engine never heard of, once with everything in flight. The engine reconnects and finishes the
deployment; nothing it was told was stored is lost, the chain is whole, and the alias ends on
the new version with empty routing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.events import RecordedEvent
from engine.events.function import DeploymentFinished, TrafficShifted
from engine.local import LocalAwsThread
from engine.runtime.engine import Engine
from engine.store.postgres import PostgresEventStore
from tests.chaos.support import read_aws
from tests.runtime.support import NAME, Setup, write_function
from tests.store.proxy import CuttingProxy
from tests.support.cli import run_glam
from tests.support.postgres import TempPostgres, postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]  # the fixtures of a real PostgreSQL server

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.slow]

LINEAR = {"type": "LINEAR", "percent": 25, "waitInterval": 2}


async def _until(check: Any, *, within: float) -> Any:
    with anyio.fail_after(within):
        while True:
            value = check()
            if value:
                return value
            await anyio.sleep(0.05)


async def test_a_shared_engine_finishes_its_deployment_across_cuts_of_the_database(
    setup: Setup,
    local_aws: LocalAwsThread,
    postgres_server: TempPostgres,
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_function(setup.repo, setup.outputs)
    setup.repo.commit("add orders")
    seen: list[RecordedEvent] = []  # what the engine was told it appended
    async with CuttingProxy(postgres_server.port) as proxy:
        via = postgres_url.replace(f":{postgres_server.port}/", f":{proxy.port}/")
        config = setup.config(db=via, shared=True, lease_ttl=6.0, drift_interval=0)
        engine = Engine(config, on_event=seen.append)
        async with engine, anyio.create_task_group() as tg:
            tg.start_soon(engine.run)

            def finished() -> list[RecordedEvent]:
                return [r for r in seen if isinstance(r.event, DeploymentFinished)]

            await _until(finished, within=60)
            write_function(setup.repo, setup.outputs, code="green", traffic=LINEAR)
            setup.repo.commit("green, shifted linearly")

            def shifted() -> list[RecordedEvent]:
                return [r for r in seen if isinstance(r.event, TrafficShifted)]

            await _until(shifted, within=60)
            # Committed, never acknowledged: the append is repeated on a new connection and
            # its event ids make the repeat return the rows already stored.
            proxy.cut_after(b"COMMIT", times=2, delay=0.3)
            await _until(lambda: proxy.cuts >= 2, within=30)
            before = len(seen)
            await _until(lambda: len(seen) > before, within=30)
            proxy.cut_all()  # and everything at once, in flight or idle

            [_, done] = await _until(lambda: finished()[1:] and finished(), within=90)
            engine.stop()
        assert isinstance(done.event, DeploymentFinished)
        assert done.event.outcome == "succeeded"
        store = engine.store
        assert isinstance(store, PostgresEventStore)
        assert store.reconnects >= 2
    async with PostgresEventStore(postgres_url, readonly=True) as log:
        stored = {r.meta.event_id: r for r in await log.read_all()}
    lost = [r for r in seen if stored.get(r.meta.event_id) != r]
    assert lost == []  # every acknowledged event, at the position it was acknowledged at
    assert len(seen) == len({r.meta.event_id for r in seen})  # none acknowledged twice
    code, out, err = await anyio.to_thread.run_sync(
        run_glam, monkeypatch, capsys, "replay", "--db", postgres_url, "--verify"
    )
    assert code == 0, err
    assert "hash chain: ok" in out
    view = await read_aws(local_aws, NAME)
    assert view.alias == (done.event.stable_version, {})
    assert max(view.by_code.values()) == 1  # no code published twice
