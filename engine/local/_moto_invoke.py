"""Invoke in the embedded AWS: a Python function's code really runs, in a child process.

moto runs a function's code only in Docker, which the embedded AWS does not need and often
does not have. This patch (applied in the moto subprocess, engine.local._moto_main) runs a
function whose ``Runtime`` is ``python3.*`` the way Lambda does, closely enough for glam's
traffic hooks and for tests: its zip is unpacked in a temporary folder, ``Handler``
(``module.function``) is called with the event and a context in a fresh interpreter (``-I``:
no user site, no environment-driven paths), and

    a return value          is the answer's body, as JSON
    an exception            answers FunctionError "Unhandled", body {errorMessage, errorType}
    running past Timeout    the child is killed; FunctionError "Unhandled", body
                            {"errorMessage": "... Task timed out after N.00 seconds"}

The child gets no credentials and an environment of the function's own variables, PATH and
the AWS_LAMBDA_* names. Other runtimes keep moto's behaviour.

Two more things Lambda does on Invoke, which moto does not (``patch_routing``):

- An alias with a routing configuration sends each invocation to one of its two versions by
  the weights: here deterministically, the n-th invocation of an alias going to the
  additional version when ``floor(n * w)`` grows (so 10 % is exactly 1 in 10, spread out),
  and the answer names it in ``X-Amz-Executed-Version``.
- Every invocation is counted in CloudWatch, namespace ``AWS/Lambda``: ``Invocations`` (and
  ``Errors`` for a function error) with the dimensions ``FunctionName``, and for a qualified
  call ``Resource`` (``name:qualifier``) and ``ExecutedVersion``, stamped with the time of
  the call. A traffic gate (``trafficGate.minInvocations``) reads exactly these.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tempfile
import zipfile
from typing import Any

# Runs in the child: calls the handler, prints one line after the marker.
_RUNNER = r"""
import importlib, json, sys, time
code, handler, deadline = sys.argv[1], sys.argv[2], float(sys.argv[3])
sys.path.insert(0, code)
event = json.loads(sys.stdin.read() or "null")
class Context:
    function_name = handler
    aws_request_id = "glam-local"
    def get_remaining_time_in_millis(self):
        return max(0, int((deadline - time.time()) * 1000))
module, _, name = handler.rpartition(".")
try:
    result = getattr(importlib.import_module(module), name)(event, Context())
    out = {"result": result}
except Exception as exc:
    out = {"error": {"errorMessage": str(exc), "errorType": type(exc).__name__}}
sys.stdout.write("\n@@glam-invoke@@" + json.dumps(out, default=str) + "\n")
"""
_MARKER = "@@glam-invoke@@"


def run_python(fn: Any, event: str) -> tuple[bytes, str | None]:
    """(body, FunctionError) of running function ``fn`` (a moto LambdaFunction) on ``event``."""
    timeout = float(fn.timeout or 3)
    variables = {str(k): str(v) for k, v in (fn.environment_vars or {}).items()}
    env = {
        **variables,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": str(fn.function_name),
        "AWS_LAMBDA_FUNCTION_VERSION": str(fn.version),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(timeout)),
    }
    with tempfile.TemporaryDirectory(prefix="glam-invoke-") as code:
        with zipfile.ZipFile(io.BytesIO(fn.code_bytes)) as archive:
            archive.extractall(code)
        import time

        deadline = time.time() + timeout
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", _RUNNER, code, str(fn.handler), str(deadline)],
                input=event,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                cwd=code,
                check=False,
            )
        except subprocess.TimeoutExpired:
            message = f"{fn.function_name} Task timed out after {timeout:.2f} seconds"
            return _error("Sandbox.Timedout", message), "Unhandled"
    _, marker, tail = done.stdout.rpartition(_MARKER)
    if not marker:
        why = (done.stderr.strip().splitlines() or ["the runtime exited"])[-1]
        return _error("Runtime.ExitError", why[:500]), "Unhandled"
    out = json.loads(tail)
    if "error" in out:
        return json.dumps(out["error"]).encode(), "Unhandled"
    return json.dumps(out["result"]).encode(), None


def _error(kind: str, message: str) -> bytes:
    return json.dumps({"errorType": kind, "errorMessage": message}).encode()


def patch_invoke() -> None:
    """Run Python functions' code on Invoke (RequestResponse) instead of needing Docker."""
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.invoke

    def invoke(self: LambdaFunction, body: str, request_headers: Any, response_headers: Any) -> Any:
        runtime = str(self.run_time or "")
        kind = request_headers.get("x-amz-invocation-type", "RequestResponse")
        if not runtime.startswith("python3") or not getattr(self, "code_bytes", b""):
            return original(self, body, request_headers, response_headers)
        answer, error = run_python(self, body or "{}")
        if error:
            response_headers["x-amz-function-error"] = error
        if kind != "RequestResponse":
            return b""
        return answer

    LambdaFunction.invoke = invoke  # type: ignore[method-assign]


def patch_routing() -> None:
    """Weighted alias routing and the ``AWS/Lambda`` invocation metrics on Invoke."""
    from moto.awslambda.models import LambdaBackend
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core.utils import utcnow

    served: dict[tuple[str, str, str, str], int] = {}  # alias -> invocations so far

    def invoke(
        self: LambdaBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> str | bytes | None:
        name, qualifier = _name_and_qualifier(function_name, qualifier)
        fn = self.get_function(name, qualifier)
        version = str(fn.version)
        alias = self._lambdas._get_function_aliases(name).get(qualifier) if qualifier else None
        config: Any = alias.routing_config if alias is not None else None
        routing: dict[str, Any] = config if isinstance(config, dict) else {}
        weights: dict[str, float] = routing.get("AdditionalVersionWeights") or {}
        if weights:
            (extra, weight), *_ = weights.items()
            key = (self.account_id, self.region_name, name, str(qualifier))
            n = served.get(key, 0) + 1
            served[key] = n
            if math.floor(n * float(weight)) > math.floor((n - 1) * float(weight)):
                fn = self.get_function(name, str(extra))
                version = str(fn.version)
        payload = fn.invoke(body, headers, response_headers)
        response_headers["Content-Length"] = str(len(payload))
        response_headers["x-amz-executed-version"] = version
        dimensions = [{"Name": "FunctionName", "Value": name}]
        if qualifier:
            dimensions += [
                {"Name": "Resource", "Value": f"{name}:{qualifier}"},
                {"Name": "ExecutedVersion", "Value": version},
            ]
        metrics = [{"MetricName": "Invocations", "Value": 1.0, "Unit": "Count"}]
        if response_headers.get("x-amz-function-error"):
            metrics.append({"MetricName": "Errors", "Value": 1.0, "Unit": "Count"})
        backend = cloudwatch_backends[self.account_id][self.region_name]
        stamp = utcnow()  # moto's own clock and form, as put_metric_data stamps
        backend.put_metric_data(
            "AWS/Lambda", [{**m, "Dimensions": dimensions, "Timestamp": stamp} for m in metrics]
        )
        return payload

    LambdaBackend.invoke = invoke  # type: ignore[method-assign]


def _name_and_qualifier(given: str, qualifier: str | None) -> tuple[str, str | None]:
    """The function's name and qualifier from any form Invoke takes: a name, ``name:q``, a
    partial ARN ``ACCOUNT:function:name[:q]`` or a full ARN."""
    parts = given.split(":")
    if given.startswith("arn:") and len(parts) > 6:
        return parts[6], parts[7] if len(parts) > 7 else qualifier
    if len(parts) > 2 and parts[1] == "function":
        return parts[2], parts[3] if len(parts) > 3 else qualifier
    if len(parts) == 2:
        return parts[0], parts[1]
    return given, qualifier
