"""Spans as OTLP: one ``ExportTraceServiceRequest`` in protobuf, what ``POST /v1/traces``
takes (OTLP/HTTP). The only module that imports ``opentelemetry.proto`` (the ``traces``
extra); ``decode`` is what a collector does, for the tests and for ``glam`` to check itself."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from engine.errors import ConfigError
from engine.traces.build import Scalar, Span

CONTENT_TYPE = "application/x-protobuf"
SCOPE = "glam"
_STATUS = {"unset": 0, "ok": 1, "error": 2}
_KIND = {"internal": 1, "client": 3}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@functools.cache
def _proto() -> Any:
    try:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    except ImportError:  # pragma: no cover - the extra is installed wherever tests run
        raise ConfigError(
            "traces need the opentelemetry-proto package",
            hint="install glam with its traces extra: pip install 'glam-gitops[traces]'",
        ) from None
    return trace_service_pb2


def available() -> None:
    """Raise ``ConfigError`` (saying what to install) unless OTLP can be encoded here. It
    reads files (the import, the package's version): call it off the event loop, once."""
    _proto()
    _glam_version()


@functools.cache
def _glam_version() -> str:
    try:
        return version("glam-gitops")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout, not installed
        return "0"


def encode(spans: Sequence[Span]) -> bytes:
    """``spans`` as one request body, under the resource ``service.name=glam``."""
    pb = _proto()
    request = pb.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    _put(resource_spans.resource.attributes, {"service.name": "glam"})
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = SCOPE
    scope_spans.scope.version = _glam_version()
    for span in spans:
        out = scope_spans.spans.add()
        out.trace_id = span.trace_id
        out.span_id = span.span_id
        if span.parent_id is not None:
            out.parent_span_id = span.parent_id
        out.name = span.name
        out.kind = _KIND[span.kind]
        out.start_time_unix_nano = _nanos(span.start)
        out.end_time_unix_nano = _nanos(span.end)
        _put(out.attributes, span.attributes)
        for event in span.events:
            added = out.events.add()
            added.name = event.name
            added.time_unix_nano = _nanos(event.time)
            _put(added.attributes, event.attributes)
        out.status.code = _STATUS[span.status]
        if span.status_message:
            out.status.message = span.status_message
    body: bytes = request.SerializeToString(deterministic=True)
    return body


def decode(body: bytes) -> Any:
    """The ``ExportTraceServiceRequest`` in ``body``."""
    request = _proto().ExportTraceServiceRequest()
    request.ParseFromString(body)
    return request


def _put(target: Any, attributes: Mapping[str, Scalar]) -> None:
    for key, value in attributes.items():
        kv = target.add()
        kv.key = key
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        else:
            kv.value.string_value = value


def _nanos(time: datetime) -> int:
    # Integer arithmetic: a float timestamp loses the microseconds' last digits.
    delta = time - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
