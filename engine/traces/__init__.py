"""Traces: every deployment exported as an OpenTelemetry trace, when an OTLP endpoint is set.

    build.py      one deployment's spans from its events: the deployment, its steps, their
                  AWS calls; alarm observations, traffic shifts, hooks as span events (pure)
    otlp.py       spans as an OTLP/HTTP protobuf body (the only user of opentelemetry-proto)
    exporter.py   the ``TraceExporter``: follows the log, sends each finished deployment once,
                  retried with backoff, its checkpoint kept with the views

Off by default: ``[traces] otlp_endpoint`` in ``glam.toml``, ``glam run --otlp-endpoint`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` turn it on (docs/traces.md).
"""

from __future__ import annotations

from engine.traces.build import Span, SpanEvent, deployment_trace, span_id, trace_id
from engine.traces.exporter import COUNTERS, ENDPOINT_ENV, TraceExporter, TraceSettings

__all__ = [
    "COUNTERS",
    "ENDPOINT_ENV",
    "Span",
    "SpanEvent",
    "TraceExporter",
    "TraceSettings",
    "deployment_trace",
    "span_id",
    "trace_id",
]
