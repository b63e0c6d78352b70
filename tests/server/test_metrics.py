"""``/metrics`` over real HTTP, parsed with prometheus-client's own parser and checked
against the log: deployments by action and outcome, in flight, weights and bake left during a
canary, AWS calls, appends, fetches; the log's numbers are the same after a restart."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.events import RecordedEvent
from engine.events.function import DeploymentFinished, DeploymentRequested
from tests.runtime.support import NAME, Setup, write_function
from tests.server.support import Served, finished, serving

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FAST = {"type": "ALL_AT_ONCE", "waitInterval": 0}
CANARY = {"type": "CANARY", "percent": 50, "waitInterval": 600}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(srv: Served) -> Samples:
    status, text = await srv.get("/metrics")
    assert status == 200
    return samples(text)


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def by_outcome(log: list[RecordedEvent]) -> Counter[str]:
    return Counter(r.event.outcome for r in log if isinstance(r.event, DeploymentFinished))


def by_action(log: list[RecordedEvent]) -> Counter[str]:
    return Counter(r.event.action for r in log if isinstance(r.event, DeploymentRequested))


async def test_metrics_match_the_log(setup: Setup) -> None:
    """A create, a canary caught mid-bake (weight 0.5, bake time left, one in flight), then
    aborted: every log-derived series equals the log's count, the AWS and store series saw
    the engine's calls, and a restarted engine shows the same log numbers."""
    write_function(setup.repo, setup.outputs, traffic=FAST)
    setup.repo.commit("add orders")
    async with serving(setup) as srv:
        await srv.wait_for(finished(1))
        write_function(setup.repo, setup.outputs, code="green", traffic=CANARY)
        setup.repo.commit("green")
        await srv.wait_for(lambda r: r.type == "TimerStarted" and r.event.purpose == "bake")  # type: ignore[union-attr]
        mid = await scrape(srv)
        stream = _stream(mid)
        assert value(mid, "glam_deployments_in_flight") == 1
        assert value(mid, "glam_function_weight", function=stream, alias="live") == 0.5
        assert 0 < value(mid, "glam_bake_seconds_left", function=stream) <= 600
        assert value(mid, "glam_drift_functions") == 0

        status, _ = await srv.post(f"/api/v1/functions/{NAME}/abort", {"reason": "metrics"})
        assert status == 202
        await srv.wait_for(finished(2))
        log = await srv.log()
        after = await _settled(srv, len(log))
        for outcome, count in by_outcome(log).items():
            assert value(after, "glam_deployments_finished_total", outcome=outcome) == count
        assert value(after, "glam_deployments_finished_total", outcome="rolled_back") == 1
        for action, count in by_action(log).items():
            assert value(after, "glam_deployments_started_total", action=action) == count
        assert value(after, "glam_deployments_in_flight") == 0
        assert value(after, "glam_function_weight", function=stream, alias="live") == 0
        assert ("glam_bake_seconds_left", (("function", stream),)) not in after
        assert value(after, "glam_operator_commands_total", command="abort") == 1
        assert value(after, "glam_log_position") == len(log)

        assert value(after, "glam_aws_calls_total", service="lambda", operation="CreateFunction",
                     status="201") == 1  # fmt: skip
        assert total(after, "glam_aws_calls_total", service="lambda", operation="UpdateAlias") >= 2
        assert total(after, "glam_aws_calls_total", service="sts") >= 1
        calls = total(after, "glam_aws_calls_total")
        assert total(after, "glam_aws_call_seconds_count") == calls
        # Every event went through this engine's store: the engine's and the API's command.
        assert value(after, "glam_log_appended_events_total") == len(log)
        assert value(after, "glam_log_append_seconds_count") >= 1
        fetched = [ls for (n, ls) in after if n == "glam_repository_last_fetch_timestamp_seconds"]
        assert fetched
        assert dict(fetched[0])["branch"] == "main"

    async with serving(setup) as again:
        restarted = await _settled(again, len(log))
        for outcome, count in by_outcome(log).items():
            assert value(restarted, "glam_deployments_finished_total", outcome=outcome) == count
        assert ("glam_log_appended_events_total", ()) in restarted


def _stream(samples: Samples) -> str:
    [function] = {dict(ls)["function"] for (n, ls) in samples if n == "glam_function_weight"}
    return function


async def _settled(srv: Served, position: int) -> Samples:
    """A scrape once the server has folded the log to ``position``."""
    with anyio.fail_after(10):
        while True:
            samples = await scrape(srv)
            if value(samples, "glam_log_position") >= position:
                return samples
            await anyio.sleep(0.05)


def test_drift_and_deliveries_are_counted() -> None:
    """Drift folded from the log (the 0.1-drift golden log: two differences found, then both
    resolved), the notifier's and the trace exporter's deliveries: each is a series."""
    from datetime import UTC, datetime

    from engine.notify.delivery import COUNTERS as NOTIFICATIONS
    from engine.runtime.clock import SystemClock
    from engine.server.metrics import EngineMetrics
    from engine.server.state import LogState
    from engine.store.memory import MemoryEventStore
    from engine.store.records import StoredRow, to_recorded
    from engine.traces.exporter import COUNTERS as TRACES

    golden = Path(__file__).parents[1] / "golden" / "log-0.1-drift.jsonl"
    records = [
        to_recorded(StoredRow(**json.loads(line))) for line in golden.read_text().splitlines()
    ]
    state = LogState(MemoryEventStore(), SystemClock())
    metrics = EngineMetrics(lambda: datetime.now(UTC))
    metrics.attach(state, lambda: datetime.now(UTC))
    before_webhooks = NOTIFICATIONS.snapshot().get(("webhook", "delivered"), 0)
    before_traces = TRACES.snapshot().get(("otlp", "delivered"), 0)
    NOTIFICATIONS.add("webhook", "delivered")
    TRACES.add("otlp", "delivered")
    found = [i for i, r in enumerate(records) if r.event.type == "DriftDetected"]
    for record in records[: found[-1] + 1]:
        state.apply(record)
    mid = samples(metrics.render().decode())
    assert value(mid, "glam_drift_functions") == 1
    assert value(mid, "glam_drift_detected_total") == 2
    for record in records[found[-1] + 1 :]:
        state.apply(record)
    after = samples(metrics.render().decode())
    assert value(after, "glam_drift_functions") == 0
    assert value(after, "glam_drift_detected_total") == 2
    delivered = {"kind": "webhook", "outcome": "delivered"}
    assert value(after, "glam_notifications_total", **delivered) == before_webhooks + 1
    assert value(after, "glam_trace_exports_total", outcome="delivered") == before_traces + 1
