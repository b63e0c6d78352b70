"""One line of plain English per event worth showing a newcomer.

The demo prints what the engine records, as it records it: the event log *is* the story. Steps
that only wait or retry (a 409 while a function is still Pending, a poll) are left out; every
line printed is backed by an event in the log, which the demo's last act points to.
"""

from __future__ import annotations

from engine.events import RecordedEvent
from engine.events.function import (
    AlarmObserved,
    DeploymentFinished,
    DeploymentRequested,
    EventSourceChanged,
    FunctionDeleted,
    RollbackStarted,
    StepFailed,
    StepSucceeded,
    TimerStarted,
    TrafficShifted,
)
from engine.saga.results import Published, parse_result
from engine.saga.steps import Step, StepName
from engine.streams import FUNCTION_PREFIX, parse_function_stream

# Saga steps whose success is news; the others are waits, reads and retries.
_STEPS: dict[Step, str] = {
    "create_function": "function created",
    "update_config": "configuration updated",
    "update_code": "code updated",
    "create_alias": "alias created",
    "promote": "alias promoted: all traffic on the new version, routing cleared",
    "delete_old": "old version deleted",
    "rollback_alias": "alias back on the stable version, routing cleared",
    "rollback_delete_new": "failed version deleted",
    # delete_function is told by its FunctionDeleted event, one line for one fact.
}


def narrate(record: RecordedEvent) -> str | None:
    """The line for ``record``, or None when it is not worth a line."""
    if not record.stream.startswith(FUNCTION_PREFIX):
        return None
    name = parse_function_stream(record.stream)[2]
    text = _describe(record)
    return None if text is None else f"  {name:<18} {text}"


def _describe(record: RecordedEvent) -> str | None:
    event = record.event
    match event:
        case DeploymentRequested():
            commit = event.commit[:8]
            return f"{event.action} requested by commit {commit}"
        case StepSucceeded(step=StepName(step="publish")):
            published = parse_result(event.step, event.result)
            assert isinstance(published, Published)
            return f"version {published.version} published"
        case StepSucceeded(step=StepName(step=str() as step)) if step in _STEPS:
            return _STEPS[step]
        case StepFailed(retryable=False):
            return f"step {event.step} failed: {event.error_code}: {event.message}"
        case TrafficShifted():
            head = f"traffic shift: weight {event.weight:.1f} → "
            if event.weight >= 1.0:
                return f"{head}all traffic on version {event.new_version}"
            if event.weight <= 0.0:
                return f"{head}all traffic on version {event.stable_version}"
            return (
                f"{head}{event.weight:.0%} on version {event.new_version}, "
                f"{1 - event.weight:.0%} on version {event.stable_version}"
            )
        case TimerStarted(purpose="bake"):
            return "baking, watching alarms"
        case AlarmObserved(state="ALARM" | "MISSING"):
            return f"alarm {event.alarm} is {event.state}"
        case RollbackStarted():
            return f"ROLLBACK: {event.reason}"
        case EventSourceChanged():
            return f"event source {event.kind} {event.change}: {_short(event.source_id)}"
        case DeploymentFinished():
            where = f" (alias on version {event.stable_version})" if event.stable_version else ""
            reason = f": {event.reason}" if event.reason and event.outcome != "succeeded" else ""
            return f"deployment {event.outcome.upper()}{where}{reason}"
        case FunctionDeleted():
            return "function deleted"
    return None


def _short(source_id: str) -> str:
    # A target group ARN is long; its last two parts name it.
    if source_id.startswith("arn:") and "/" in source_id:
        return "/".join(source_id.split("/")[-2:])
    return source_id
