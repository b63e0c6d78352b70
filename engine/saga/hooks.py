"""Traffic hooks: the contract a hook's answer is judged by, the payload it is invoked with,
and what its answer leads to. Pure.

A hook is a Lambda function (``hooks.beforeAllowTraffic`` / ``hooks.afterAllowTraffic`` of the
deployment definition) that glam invokes synchronously (RequestResponse) before the first
weight moves and after the promote, with a deadline (``timeoutSeconds``). The contract:

    succeeded   the invoke answered with no FunctionError, and the body is not a JSON object
                whose ``status`` is anything but "succeeded" (case does not matter)
    failed      FunctionError is set (the function raised), or the body is a JSON object with
                a ``status`` other than "succeeded" ("failed", say), its ``reason`` quoted
    error       the invoke itself was refused (no such function, no permission, ...)
    timed_out   no answer within the deadline

Anything but "succeeded" rolls the deployment back. The answer is recorded as a
``HookAnswered`` event (status, the start of the body, duration). A hook may be invoked more
than once for one deployment (a restart during its invoke repeats it): it must be safe to
run again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.events import Event
from engine.events.desired import HookPoint
from engine.events.function import HookAnswered, HookStatus
from engine.saga.results import HookAnswer
from engine.saga.rollback import fail
from engine.saga.state import Deployment, SagaState
from engine.saga.steps import HookStep

# The most of a hook's answer an event keeps (it is shown, not parsed).
HOOK_BODY_LIMIT = 1000
POINTS: Mapping[HookStep, HookPoint] = {
    "hook_before": "beforeAllowTraffic",
    "hook_after": "afterAllowTraffic",
}


def judge(
    point: HookPoint, function: str, function_error: str | None, body: bytes, duration_ms: int
) -> HookAnswer:
    """A hook's answer, judged by the contract (module docstring)."""
    text = body.decode("utf-8", errors="replace")
    trimmed = text if len(text) <= HOOK_BODY_LIMIT else text[: HOOK_BODY_LIMIT - 1] + "…"
    status: HookStatus = "succeeded"
    reason = ""
    if function_error:
        status = "failed"
        reason = f"the function raised ({function_error}): {_message(text)}"
    else:
        verdict = _status_of(text)
        if verdict is not None and verdict[0].lower() != "succeeded":
            status = "failed"
            reason = f"it answered status {verdict[0]!r}" + (
                f": {verdict[1]}" if verdict[1] else ""
            )
    return HookAnswer(
        point=point,
        function=function,
        status=status,
        body=trimmed,
        duration_ms=duration_ms,
        function_error=function_error or None,
        reason=reason,
    )


def unanswered(
    point: HookPoint, function: str, status: HookStatus, why: str, ms: int
) -> HookAnswer:
    """A hook that gave no answer: timed out, or the invoke was refused."""
    return HookAnswer(
        point=point, function=function, status=status, duration_ms=ms, reason=why[:HOOK_BODY_LIMIT]
    )


def _status_of(text: str) -> tuple[str, str] | None:
    """(status, reason) of a JSON object body that has a ``status``; None otherwise."""
    try:
        value: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or "status" not in value:
        return None
    reason = value.get("reason") or value.get("message") or ""
    return str(value["status"]), str(reason)[:200]


def _message(text: str) -> str:
    try:
        value: Any = json.loads(text)
    except ValueError:
        return text[:200]
    if isinstance(value, dict):
        return str(value.get("errorMessage") or value.get("errorType") or "")[:200]
    return text[:200]


def payload(state: SagaState, dep: Deployment, point: HookPoint) -> dict[str, Any]:
    """What a hook is invoked with: which deployment, function, alias and versions."""
    return {
        "hook": point,
        "deploymentId": dep.deployment_id,
        "functionName": state.function_name,
        "functionArn": dep.function_arn,
        "alias": state.alias,
        "stableVersion": dep.stable,
        "newVersion": dep.new_version,
    }


def answered(dep: Deployment, answer: HookAnswer) -> list[Event]:
    """The hook's answer as an event, and the rollback anything but success starts."""
    event = HookAnswered(
        deployment_id=dep.deployment_id,
        hook=answer.point,
        function=answer.function,
        status=answer.status,
        body=answer.body,
        duration_ms=answer.duration_ms,
        function_error=answer.function_error,
    )
    if answer.status == "succeeded":
        return [event]
    return [event, *fail(dep, _why(answer))]


def gave_up(dep: Deployment, step: HookStep, why: str) -> list[Event]:
    """A hook whose invoke kept failing (a retryable error, every attempt): an "error"."""
    hook = dep.desired.settings.hooks.at(POINTS[step]) if dep.desired else None
    return answered(dep, unanswered(POINTS[step], hook.function if hook else "", "error", why, 0))


def _why(answer: HookAnswer) -> str:
    what = {
        "failed": "failed",
        "error": "could not be invoked",
        "timed_out": "gave no answer in time",
        "succeeded": "succeeded",
    }[answer.status]
    tail = f": {answer.reason}" if answer.reason else ""
    return f"hook {answer.point} ({answer.function}) {what}{tail}"
