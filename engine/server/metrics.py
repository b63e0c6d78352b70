"""``/metrics``: the engine's Prometheus series, on a registry of its own (never the process
default, so two engines in one test process do not share series).

Two sources feed it:

- the adapters and the runtime, through the ``engine.metrics.Metrics`` port, which
  ``EngineMetrics`` implements: AWS calls, throttles, rate-limiter waits, log appends,
  repository fetches; and the webhook receivers (``webhook``);
- the log, folded by the server (``engine.server.state.LogState``) and read at each scrape
  by ``LogCollector``: deployments started and finished, in flight, each function's weight,
  the bake time left, operator commands, the log position. These are the log's own numbers,
  so they match ``glam events`` exactly, also right after a restart.

Series (all prefixed ``glam_``)::

    deployments_started_total{action}                 counter   from the log
    deployments_finished_total{outcome}               counter   from the log
    deployments_in_flight                             gauge     from the log
    function_weight{function,alias}                   gauge     share on the new version
    bake_seconds_left{function}                       gauge     while a step bakes
    operator_commands_total{command}                  counter   from the log
    drift_functions                                   gauge     functions drifted, not resolved
    drift_detected_total                              counter   differences found, from the log
    notifications_total{kind,outcome}                 counter   webhook and Slack deliveries
    trace_exports_total{outcome}                      counter   OTLP exports of deployments
    log_position                                      gauge     last event folded
    log_append_seconds                                histogram one append call
    log_appended_events_total                         counter
    aws_calls_total{service,operation,status}         counter   status: HTTP, or "error"
    aws_call_seconds{service}                         histogram
    aws_throttles_total{service,operation}            counter
    rate_limiter_wait_seconds{service}                histogram waits only (0 s not counted)
    repository_last_fetch_timestamp_seconds{repository,branch}   gauge  unix time
    webhook_deliveries_total{provider,outcome}        counter
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from engine.server.state import LogState
from engine.streams import REPO_PREFIX

__all__ = ["CONTENT_TYPE_LATEST", "EngineMetrics", "LogCollector"]

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_WAIT = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class EngineMetrics:
    """The ``Metrics`` port on prometheus-client, plus what the server counts itself."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now  # the engine's clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._calls = Counter(
            "glam_aws_calls", "AWS requests answered", ["service", "operation", "status"],
            registry=r,
        )  # fmt: skip
        self._call_seconds = Histogram(
            "glam_aws_call_seconds", "AWS request latency", ["service"], buckets=_FAST,
            registry=r,
        )  # fmt: skip
        self._throttles = Counter(
            "glam_aws_throttles", "AWS requests refused as throttled", ["service", "operation"],
            registry=r,
        )  # fmt: skip
        self._waits = Histogram(
            "glam_rate_limiter_wait_seconds",
            "Time a call waited for the shared rate limiter of its account and region",
            ["service"], buckets=_WAIT, registry=r,
        )  # fmt: skip
        self._append = Histogram(
            "glam_log_append_seconds", "Latency of one append to the event log", buckets=_FAST,
            registry=r,
        )  # fmt: skip
        self._appended = Counter(
            "glam_log_appended_events", "Events appended by this engine", registry=r
        )
        self._fetch = Gauge(
            "glam_repository_last_fetch_timestamp_seconds",
            "When the branch was last fetched and read (unix time)",
            ["repository", "branch"], registry=r,
        )  # fmt: skip
        self._webhooks = Counter(
            "glam_webhook_deliveries", "Webhook deliveries received, by outcome",
            ["provider", "outcome"], registry=r,
        )  # fmt: skip
        self._log = LogCollector()
        self.registry.register(self._log)

    # -- the Metrics port ----------------------------------------------------------------------

    def aws_call(self, service: str, operation: str, status: str, seconds: float) -> None:
        self._calls.labels(service, operation, status).inc()
        self._call_seconds.labels(service).observe(seconds)

    def throttled(self, service: str, operation: str) -> None:
        self._throttles.labels(service, operation).inc()

    def rate_wait(self, service: str, seconds: float) -> None:
        self._waits.labels(service).observe(seconds)

    def appended(self, count: int, seconds: float) -> None:
        self._append.observe(seconds)
        self._appended.inc(count)

    def fetched(self, stream: str) -> None:
        repository, branch = _split_repo_stream(stream)
        self._fetch.labels(repository, branch).set(self._now().timestamp())

    # -- the server's own ----------------------------------------------------------------------

    def webhook(self, provider: str, outcome: str) -> None:
        self._webhooks.labels(provider, outcome).inc()

    def attach(self, state: LogState, now: Callable[[], datetime]) -> None:
        """Serve the log's numbers from ``state`` from now on (the server's start)."""
        self._log.attach(state, now)

    def render(self) -> bytes:
        """The text exposition format of every series."""
        return generate_latest(self.registry)


class LogCollector(Collector):
    """The series folded from the log, computed at each scrape from ``LogState``."""

    def __init__(self) -> None:
        self._state: LogState | None = None
        self._now: Callable[[], datetime] | None = None

    def attach(self, state: LogState, now: Callable[[], datetime]) -> None:
        self._state, self._now = state, now

    def collect(self) -> Iterator[Metric]:
        state, now = self._state, self._now
        if state is None or now is None:
            return  # no server has started: nothing folded yet
        tally = state.tally
        started = CounterMetricFamily(
            "glam_deployments_started", "Deployments requested, by action", labels=["action"]
        )
        for action in ("create", "update", "delete"):
            started.add_metric([action], tally.started.get(action, 0))
        for action, count in sorted(tally.started.items()):
            if action not in ("create", "update", "delete"):
                started.add_metric([action], count)
        yield started
        finished = CounterMetricFamily(
            "glam_deployments_finished", "Deployments finished, by outcome", labels=["outcome"]
        )
        outcomes = ("succeeded", "rolled_back", "failed", "superseded")
        for outcome in outcomes:
            finished.add_metric([outcome], tally.finished.get(outcome, 0))
        yield finished
        in_flight = sum(1 for d in state.views.deployments.values() if d.state != "finished")
        yield GaugeMetricFamily(
            "glam_deployments_in_flight", "Deployments requested and not finished", in_flight
        )
        weight = GaugeMetricFamily(
            "glam_function_weight",
            "Share of the alias's traffic on the new version (0 when none is shifting)",
            labels=["function", "alias"],
        )
        for stream, row in sorted(state.views.functions.items()):
            if row.state != "deleted":
                weight.add_metric([stream, row.alias or ""], row.weight)
        yield weight
        bake = GaugeMetricFamily(
            "glam_bake_seconds_left", "Seconds left in the current bake", labels=["function"]
        )
        moment = now()
        for stream, until in sorted(tally.bakes.items()):
            bake.add_metric([stream], max(0.0, (until - moment).total_seconds()))
        yield bake
        commands = CounterMetricFamily(
            "glam_operator_commands", "Operator commands given, by command", labels=["command"]
        )
        for command in ("promote", "abort", "retry", "allow_deletes"):
            commands.add_metric([command], tally.commands.get(command, 0))
        yield commands
        yield GaugeMetricFamily(
            "glam_drift_functions",
            "Functions whose AWS state differs from what glam deployed (drift not resolved)",
            len(tally.drift),
        )
        yield CounterMetricFamily(
            "glam_drift_detected", "Differences from AWS found by drift sweeps", tally.drift_found
        )
        yield from _deliveries()
        yield GaugeMetricFamily("glam_log_position", "Position of the last event", state.position)


def _deliveries() -> Iterator[Metric]:
    """The notifier's and the trace exporter's delivery counters (one engine a process: the
    counters are the process's)."""
    from engine.notify.delivery import COUNTERS as NOTIFICATIONS
    from engine.traces.exporter import COUNTERS as TRACES

    notifications = CounterMetricFamily(
        "glam_notifications",
        "Notification deliveries, by sink kind and outcome",
        labels=["kind", "outcome"],
    )
    for (kind, outcome), count in sorted(NOTIFICATIONS.snapshot().items()):
        notifications.add_metric([kind, outcome], count)
    yield notifications
    traces = CounterMetricFamily(
        "glam_trace_exports", "Deployments exported as OTLP traces, by outcome", labels=["outcome"]
    )
    for (_, outcome), count in sorted(TRACES.snapshot().items()):
        traces.add_metric([outcome], count)
    yield traces


def _split_repo_stream(stream: str) -> tuple[str, str]:
    body = stream[len(REPO_PREFIX) :] if stream.startswith(REPO_PREFIX) else stream
    repository, _, branch = body.rpartition("#")
    return (repository or body), branch
