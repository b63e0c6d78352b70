"""Deployments exported as traces by a real engine on the embedded AWS to a collector
stand-in over HTTP: the span tree of a canary rolled back, once, and nothing when off."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import anyio
import pytest

from engine.events import RecordedEvent
from engine.events.function import DeploymentFinished, TrafficShifted
from engine.local import LocalAwsThread
from engine.local.account import set_alarm_state
from engine.notify.delivery import DeliveryCounters, RetryPolicy
from engine.store.sqlite import SqliteEventStore
from engine.tokens import TokenRef
from engine.traces import TraceExporter, TraceSettings, trace_id
from engine.traces.exporter import PROJECTION
from engine.traces.otlp import CONTENT_TYPE
from tests.runtime.support import ALARM, Setup, outcomes, write_function
from tests.traces.conftest import Collector

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

CANARY = {"type": "CANARY", "percent": 50, "waitInterval": 60}
SECRET = "s3cr3t-api-key"


def _settings(collector: Collector, **changes: Any) -> TraceSettings:
    return TraceSettings(
        endpoint=collector.url,
        headers=(("X-Api-Key", TokenRef("env", "GLAM_TEST_OTLP_KEY")),),
        policy=RetryPolicy(attempts=3, base=0.1),
        **changes,
    )


def _nanos(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000) * 1_000


async def _canary_rolled_back_mid_bake(setup: Setup, collector: Collector) -> None:
    """Blue deployed; green shifted to 50 % and rolled back by the alarm during its bake."""
    traces = _settings(collector)
    write_function(setup.repo, setup.outputs, traffic=CANARY, alarms=(ALARM,))
    setup.repo.commit("blue")
    assert outcomes(await setup.run_once(traces=traces)) == ["succeeded"]
    write_function(setup.repo, setup.outputs, code="green", traffic=CANARY, alarms=(ALARM,))
    setup.repo.commit("green")
    shifted = anyio.Event()

    def watch(record: RecordedEvent) -> None:
        if isinstance(record.event, TrafficShifted) and 0 < record.event.weight < 1:
            setup.clock.hold()  # the bake does not pass before the alarm fires
            shifted.set()

    async def fire() -> None:
        await shifted.wait()
        await set_alarm_state(setup.endpoint_url, ALARM, "ALARM", region=setup.region)
        setup.clock.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(fire)
        report = await setup.run_once(traces=traces, on_event=watch)
    assert outcomes(report) == ["rolled_back"]
    await set_alarm_state(setup.endpoint_url, ALARM, "OK", region=setup.region)


@pytest.mark.slow  # three engine runs, a bake among them
async def test_rolled_back_canary_is_one_trace(
    setup: Setup,
    local_aws: LocalAwsThread,
    collector: Collector,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each deployment is one trace: the deployment as the root (an error when rolled back),
    its steps in order with the log's times, each AWS call under its step, the traffic shift
    and the alarm as span events; the collector's key is sent and never logged."""
    monkeypatch.setenv("GLAM_TEST_OTLP_KEY", SECRET)
    caplog.set_level(logging.DEBUG, logger="glam")
    await _canary_rolled_back_mid_bake(setup, collector)
    assert len(collector.requests) == 2  # one per deployment, sent as it finished
    assert {h["X-Api-Key"] for h in collector.headers} == {SECRET}
    assert SECRET not in caplog.text
    finished = [r for r in await setup.events() if isinstance(r.event, DeploymentFinished)]
    rolled_back = finished[-1].event
    assert isinstance(rolled_back, DeploymentFinished)
    spans = collector.traces()[trace_id(rolled_back.deployment_id)]
    assert len(collector.traces()) == 2

    (root,) = [s for s in spans if not s.parent_span_id]
    assert root.name == "deploy orders"
    assert (root.status.code, root.status.message) == (2, rolled_back.reason)
    assert root.end_time_unix_nano == _nanos(finished[-1].recorded_at)
    assert [e.name for e in root.events] == ["RollbackStarted"]

    steps = sorted(
        (s for s in spans if s.parent_span_id == root.span_id), key=lambda s: s.start_time_unix_nano
    )
    names = [s.name for s in steps]
    assert names[-4:] == ["bake", "rollback_alias", "rollback_delete_new", "rollback_sources"]
    assert names.index("alarms") < names.index("shift") < names.index("bake")
    ends = [s.end_time_unix_nano for s in steps]
    assert ends == sorted(ends)
    assert all(root.start_time_unix_nano <= s.start_time_unix_nano for s in steps)
    assert all(s.end_time_unix_nano <= root.end_time_unix_nano for s in steps)

    by_name = {s.name: s for s in steps}
    shift, bake = by_name["shift"], by_name["bake"]
    shift_events = [(e.name, _attr(e, "glam.weight")) for e in shift.events]
    assert shift_events == [("TrafficShifted", 0.5)]
    alarms = [(_attr(e, "glam.alarm"), _attr(e, "glam.state")) for e in bake.events]
    assert alarms == [(ALARM, "ALARM")]

    calls = [s for s in spans if s.parent_span_id == shift.span_id]
    assert [(c.name, c.kind) for c in calls] == [("Lambda.UpdateAlias", 3)]
    assert _attr(calls[0], "glam.routing.2") == 0.5
    # The call's times are its intent's and its outcome's, as the log recorded them.
    log = [r for r in await setup.events() if r.meta.deployment_id == rolled_back.deployment_id]
    intent, outcome = [r for r in log if str(getattr(r.event, "step", "")) == "shift"]
    assert calls[0].start_time_unix_nano == _nanos(intent.recorded_at)
    assert calls[0].end_time_unix_nano == _nanos(outcome.recorded_at)
    rollback = [s for s in spans if s.parent_span_id == by_name["rollback_alias"].span_id]
    assert [c.name for c in rollback] == ["Lambda.UpdateAlias"]
    parents = {root.span_id, *(s.span_id for s in steps)}
    assert all(s.parent_span_id in parents for s in spans if s is not root)


@pytest.mark.slow  # four engine runs
async def test_a_restart_exports_nothing_twice(
    setup: Setup, local_aws: LocalAwsThread, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart goes on after the checkpoint: nothing is sent again. A crash between a POST
    and its checkpoint sends that deployment again, with the same trace and span ids."""
    monkeypatch.setenv("GLAM_TEST_OTLP_KEY", SECRET)
    await _canary_rolled_back_mid_bake(setup, collector)
    sent = len(collector.requests)
    assert outcomes(await setup.run_once(traces=_settings(collector))) == []
    assert len(collector.requests) == sent

    async with SqliteEventStore(setup.db) as store:
        finished = [r for r in await store.read_all() if isinstance(r.event, DeploymentFinished)]
        await store.save_views(PROJECTION, finished[-1].position - 1, {})  # the lost checkpoint
        await _catch_up(store, collector)
        assert await store.load_views(PROJECTION) == (finished[-1].position, {})
    again, before = collector.requests[-1], collector.requests[-2]
    assert [(s.trace_id, s.span_id) for s in again] == [(s.trace_id, s.span_id) for s in before]


async def test_nothing_is_exported_when_off(
    setup: Setup, local_aws: LocalAwsThread, collector: Collector
) -> None:
    """Without an endpoint, no trace is sent and no checkpoint kept; turned on later, the
    exporter begins at the log's end rather than sending the past."""
    write_function(setup.repo, setup.outputs)
    setup.repo.commit("blue")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    async with SqliteEventStore(setup.db, readonly=True) as store:
        assert await store.load_views(PROJECTION) == (0, {})
    assert collector.requests == []
    traces = TraceSettings(endpoint=collector.url)
    assert outcomes(await setup.run_once(traces=traces)) == []
    assert collector.requests == []


async def test_a_failing_collector_is_retried_then_given_up(
    setup: Setup, local_aws: LocalAwsThread, collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    """A 503 is retried with backoff; a collector that keeps failing is given up on in one
    line, and the deployment itself is not held back."""
    write_function(setup.repo, setup.outputs)
    setup.repo.commit("blue")
    async with SqliteEventStore(setup.db) as store:
        await store.save_views(PROJECTION, 1, {})  # on from the start
    collector.statuses = [503, 503, 503, 503, 503]
    traces = TraceSettings(endpoint=collector.url, policy=RetryPolicy(attempts=3, base=0.1))
    assert outcomes(await setup.run_once(traces=traces)) == ["succeeded"]
    assert collector.requests == []
    given_up = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
    assert len(given_up) == 1
    assert "HTTP 503" in given_up[0]
    assert collector.statuses == [503, 503]  # three attempts, no more

    collector.statuses = [503]
    async with SqliteEventStore(setup.db) as store:
        await store.save_views(PROJECTION, 1, {})
        counters = DeliveryCounters()
        await _catch_up(store, collector, counters)
    assert counters.snapshot() == {("otlp", "retried"): 1, ("otlp", "delivered"): 1}
    assert len(collector.requests) == 1


async def test_a_running_engine_exports_as_deployments_finish(
    setup: Setup, local_aws: LocalAwsThread, collector: Collector
) -> None:
    """Without ``--once`` the exporter follows the log and sends each deployment as it
    finds its end, without stopping."""
    write_function(setup.repo, setup.outputs)
    setup.repo.commit("blue")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    async with SqliteEventStore(setup.db) as store:
        await store.save_views(PROJECTION, 1, {})  # as if on before the deployment
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(_follow, store, collector)
                await collector.received.wait()
                tg.cancel_scope.cancel()
    (spans,) = collector.requests
    assert spans[0].name == "deploy orders"


async def _follow(store: SqliteEventStore, collector: Collector) -> None:
    async with _exporter(store, collector) as exporter:
        await exporter.run()


async def _catch_up(
    store: SqliteEventStore, collector: Collector, counters: DeliveryCounters | None = None
) -> None:
    """What an engine's exporter does at the end of ``glam run --once``."""
    async with _exporter(store, collector, counters) as exporter:
        await exporter.catch_up()


@contextlib.asynccontextmanager
async def _exporter(
    store: SqliteEventStore, collector: Collector, counters: DeliveryCounters | None = None
) -> AsyncIterator[TraceExporter]:
    from engine.notify.http import AiohttpPoster
    from engine.runtime.clock import SystemClock

    async def resolve(ref: TokenRef) -> str:
        return SECRET

    async with AiohttpPoster(CONTENT_TYPE) as poster:
        yield TraceExporter(
            store,
            _settings(collector),
            poster=poster,
            resolve=resolve,
            clock=SystemClock(),
            counters=counters or DeliveryCounters(),
        )


def _attr(item: Any, key: str) -> Any:
    for kv in item.attributes:
        if kv.key == key:
            return getattr(kv.value, kv.value.WhichOneof("value"))
    raise KeyError(key)
