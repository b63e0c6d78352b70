"""Runs the deployment saga of one function stream against the ports.

The loop: fold the stream, ask ``next_effect``, make its intent durable (write-ahead), perform
it through the ports, append what ``on_outcome`` makes of the result, repeat until the saga has
nothing left to do. Every append names the stream version it was decided on, so two runners on
one stream cannot interleave: the loser re-reads the stream and decides again (a step it may
have performed without recording is then resolved by a read, as after a crash).

Appends are shielded from cancellation: an outcome AWS already produced is recorded even when
the engine is shutting down. Every AWS call has a deadline; a mutation that times out is
ambiguous and is resolved by a read before it is repeated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import anyio

from engine.aws.errors import MESSAGE_LIMIT
from engine.errors import (
    AwsAmbiguous,
    AwsConflict,
    AwsError,
    AwsInvalid,
    AwsNotFound,
    AwsThrottled,
    ConcurrencyConflict,
)
from engine.events import Event, RecordedEvent, stamped
from engine.events.function import (
    DeploymentFinished,
    DeploymentRequested,
    FailureKind,
    OperatorRequested,
    SettingsRecorded,
)
from engine.ports import (
    NO_STREAM,
    AlarmsApi,
    AliasInfo,
    Clock,
    EventStore,
    FunctionInfo,
    LambdaApi,
    SourceChange,
    SourcesApi,
    VersionInfo,
)
from engine.saga.effects import (
    Call,
    Done,
    Failed,
    Ok,
    Outcome,
    Record,
    SagaContext,
    Wait,
    Waited,
)
from engine.saga.saga import OPERATOR_PROMOTE, next_effect, on_outcome
from engine.saga.schedule import DEFAULT_POLICY, SagaPolicy
from engine.saga.state import SagaState, evolve, initial_state

# Deadline of one port call. Longer than the Lambda adapter's own wait for an in-progress
# update to settle (LambdaRetry.settle_timeout, 300 s), so a call the adapter is still
# legitimately waiting on is never cut off and turned into an ambiguous outcome.
CALL_TIMEOUT = 360.0
# Polls past the end of a bake to wait for a successful alarm read before rolling back.
UNREAD_GRACE_POLLS = 3


@dataclass(frozen=True, slots=True)
class SagaRun:
    """What one ``run_saga`` did: the state it left and the deployments it finished."""

    state: SagaState
    finished: tuple[DeploymentFinished, ...]

    @property
    def succeeded(self) -> bool:
        return all(f.outcome in ("succeeded", "superseded") for f in self.finished)


def function_name_of(stream: str) -> str:
    """The function name of ``fn:<account>:<region>:<name>``."""
    parts = stream.split(":", 3)
    if len(parts) != 4 or parts[0] != "fn":
        raise ValueError(f"not a function stream: {stream!r}")
    return parts[3]


async def load_saga(
    store: EventStore, stream: str, policy: SagaPolicy = DEFAULT_POLICY
) -> tuple[SagaState, int]:
    """The saga state of ``stream`` folded from the log, and the stream version it reflects."""
    state = initial_state(function_name_of(stream), policy)
    version = NO_STREAM
    for record in await store.read_stream(stream):
        state = evolve(state, record.event)
        version = record.version
    return state, version


async def run_saga(
    stream: str,
    store: EventStore,
    lambda_api: LambdaApi,
    alarms_api: AlarmsApi,
    sources_api: SourcesApi,
    clock: Clock,
    ids: Callable[[], str],
    *,
    policy: SagaPolicy = DEFAULT_POLICY,
    call_timeout: float = CALL_TIMEOUT,
    on_event: Callable[[RecordedEvent], None] | None = None,
) -> SagaRun:
    """Drive the saga of ``stream`` until no deployment is in flight or held.

    ``ids`` makes event ids; ``on_event`` sees every event this run appends (live progress).
    Returns when the saga is idle; a deployment requested later needs another call.
    """
    runner = _Runner(
        stream, store, lambda_api, alarms_api, sources_api, clock, ids, call_timeout, on_event
    )
    state, version = await load_saga(store, stream, policy)
    runner.version = version
    while True:
        effect = next_effect(state, clock.now())
        if isinstance(effect, Done):
            return SagaRun(state=state, finished=tuple(runner.finished))
        try:
            if isinstance(effect, Record):
                state = await runner.append(state, effect.events)
                continue
            if effect.intent is not None:
                state = await runner.append(state, (effect.intent,))
            outcome: Outcome | None
            if isinstance(effect, Call):
                outcome = await runner.perform(effect)
                if isinstance(outcome, Failed):
                    outcome = replace(outcome, message=mask_secrets(outcome.message, state))
            else:
                outcome = await runner.wait(effect)
            if outcome is None:  # the stream moved on while we waited: decide again
                state, runner.version = await load_saga(store, stream, policy)
                continue
            events = on_outcome(state, effect, outcome, SagaContext(now=clock.now()))
            if events:
                state = await runner.append_outcome(state, events, policy)
        except ConcurrencyConflict:
            state, runner.version = await load_saga(store, stream, policy)


class _Runner:
    def __init__(
        self,
        stream: str,
        store: EventStore,
        lambda_api: LambdaApi,
        alarms_api: AlarmsApi,
        sources_api: SourcesApi,
        clock: Clock,
        ids: Callable[[], str],
        call_timeout: float,
        on_event: Callable[[RecordedEvent], None] | None,
    ) -> None:
        self.stream = stream
        self.store = store
        self.apis: dict[str, Any] = {
            "lambda": lambda_api,
            "alarms": alarms_api,
            "sources": sources_api,
        }
        self.alarms = alarms_api
        self.clock = clock
        self.ids = ids
        self.call_timeout = call_timeout
        self.on_event = on_event
        self.version = NO_STREAM
        self.finished: list[DeploymentFinished] = []

    async def append(self, state: SagaState, events: Sequence[Event]) -> SagaState:
        commit = state.active.request.commit if state.active else None
        batch = stamped(events, iter(self.ids, None), commit=commit)
        # Shielded: AWS may already have done what these events record; losing them to a
        # cancellation would leave the log claiming less than what happened.
        with anyio.CancelScope(shield=True):
            recorded = await self.store.append(self.stream, batch, expected_version=self.version)
        for record in recorded:
            state = evolve(state, record.event)
            self.version = record.version
            if isinstance(record.event, DeploymentFinished):
                self.finished.append(record.event)
            if self.on_event is not None:
                self.on_event(record)
        return state

    async def append_outcome(
        self, state: SagaState, events: Sequence[Event], policy: SagaPolicy
    ) -> SagaState:
        """Append what AWS answered. The planner appends requests and settings without a
        version check; one landing during the call must not cost the outcome: when only such
        events arrived, the same outcome is appended after them."""
        while True:
            try:
                return await self.append(state, events)
            except ConcurrencyConflict:
                arrived = [
                    r for r in await self.store.read_stream(self.stream) if r.version > self.version
                ]
                if not arrived or not all(isinstance(r.event, _PLANNER) for r in arrived):
                    raise  # another runner moved on: re-read and decide again
                for record in arrived:
                    state = evolve(state, record.event)
                    self.version = record.version

    async def perform(self, call: Call) -> Outcome:
        method = getattr(self.apis[call.api], call.method)
        try:
            with anyio.fail_after(self.call_timeout):
                value = await method(**call.args)
        except AwsError as exc:
            return Failed(
                kind=failure_kind(exc),
                code=exc.code or type(exc).__name__,
                message=exc.message,
                retryable=exc.retryable,
            )
        except TimeoutError:
            # A mutation that timed out may have happened: only a read can tell.
            return Failed(
                kind="ambiguous" if call.mutation else "timeout",
                code="Timeout",
                message=f"{call.method} gave no answer within {self.call_timeout:g}s",
                retryable=True,
            )
        except Exception as exc:
            # Not an AWS answer but a bug or an input the port cannot take: record it as a
            # failed step that will not clear, so the saga rolls back or fails this function
            # alone instead of the exception stopping the engine.
            return Failed(kind="error", code=type(exc).__name__, message=str(exc), retryable=False)
        return Ok(result=to_result(call.method, value))

    async def wait(self, wait: Wait) -> Waited | None:
        """Wait until ``wait.until``, polling alarms; None when the stream changed meanwhile
        (a newer request may be waiting for this safe point)."""
        names = list(wait.alarms)
        states: dict[str, str] = {}
        poll = timedelta(seconds=wait.poll_seconds)
        # A bake vouches for the new version only if its alarms were read near its end: an
        # alarm nobody could read is not a quiet alarm. Retryable read errors are retried
        # every poll, for a few polls past the end; a non-retryable one ends the wait at once.
        must_read = bool(names) and wait.purpose in ("bake", OPERATOR_PROMOTE)
        give_up = wait.until + poll * UNREAD_GRACE_POLLS
        last_read: datetime | None = None
        last_error = "no read attempted"
        while True:
            if names:
                seen: dict[str, str] | None = None
                try:
                    with anyio.fail_after(self.call_timeout):
                        seen = await self.alarms.alarm_states(names)
                except AwsError as exc:
                    last_error = f"{exc.code or type(exc).__name__}: {exc.message}"
                    if not exc.retryable:
                        return Waited(
                            completed=False,
                            alarms=states,
                            unreadable=f"alarms {', '.join(names)} cannot be read ({last_error})",
                        )
                except TimeoutError:
                    last_error = f"no answer within {self.call_timeout:g}s"
                if seen is not None:
                    last_read = self.clock.now()
                    states = {name: seen.get(name, "MISSING") for name in names}
                    if any(s in ("ALARM", "MISSING") for s in states.values()):
                        return Waited(completed=False, alarms=states)
            now = self.clock.now()
            if now >= wait.until:
                fresh = last_read is not None and last_read >= wait.until - poll
                if not must_read or fresh:
                    return Waited(completed=True, alarms=states)
                if now >= give_up:
                    return Waited(
                        completed=False,
                        alarms=states,
                        unreadable=(
                            f"alarms {', '.join(names)} were not read successfully near the end "
                            f"of the bake (last error {last_error}); not promoting unwatched"
                        ),
                    )
            if await self.store.stream_version(self.stream) != self.version:
                return None
            # Wake at every poll even without alarms, to notice a newer request in the stream.
            deadline = wait.until if now < wait.until else give_up
            await self.clock.sleep_until(min(deadline, now + poll))


# Events appended by the planner, not by a runner: they do not change what a step did.
# The engine's copies of operator commands land the same way (the next decision acts on them).
_PLANNER = (DeploymentRequested, SettingsRecorded, OperatorRequested)


def secret_values(state: SagaState) -> list[str]:
    """The environment values of the desired (and deployed) definitions: any of them may be a
    secret that AWS echoes back in an error message."""
    values: set[str] = set()
    wanted = state.active.desired if state.active else None
    for desired in (wanted, state.deployed):
        if desired is None:
            continue
        variables = (desired.definition.get("Environment") or {}).get("Variables") or {}
        values.update(str(v) for v in variables.values() if len(str(v)) >= 3)
    return sorted(values, key=len, reverse=True)  # longest first: no partial leftovers


def mask_secrets(message: str, state: SagaState) -> str:
    """``message`` as it may be recorded: what AWS echoed of the request cut off, environment
    values masked, at most MESSAGE_LIMIT characters."""
    cut = message.find("String measured:")
    if cut >= 0:
        message = message[:cut].rstrip(" :;,") + " (request text omitted)"
    for value in secret_values(state):
        message = message.replace(value, "***")
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 1] + "…"
    return message


def failure_kind(exc: AwsError) -> FailureKind:
    """How the saga should treat ``exc``."""
    if isinstance(exc, AwsAmbiguous):
        return "ambiguous"
    if isinstance(exc, AwsThrottled):
        return "throttled"
    if isinstance(exc, AwsConflict):
        return "conflict"
    if isinstance(exc, AwsNotFound):
        return "not_found"
    if isinstance(exc, AwsInvalid):
        return "invalid"
    return "error"


def to_result(method: str, value: object) -> dict[str, Any]:
    """A port's answer as the JSON-able dict a StepSucceeded records.

    Never the raw function configuration: it holds environment values, which may be secrets.
    """
    if value is None:
        return {"found": False} if method.startswith("get_") else {}
    if isinstance(value, FunctionInfo):
        return {
            "found": True,
            "name": value.name,
            "arn": value.arn,
            "version": value.version,
            "state": value.state,
            "last_update_status": value.last_update_status,
            "code_sha256": value.code_sha256,
            "revision_id": value.revision_id,
            "description": value.description,
            "state_reason": value.state_reason,
        }
    if isinstance(value, VersionInfo):
        return _version(value)
    if isinstance(value, AliasInfo):
        return {
            "found": True,
            "name": value.name,
            "function_version": value.function_version,
            "routing": {str(k): float(v) for k, v in value.routing.items()},
            "revision_id": value.revision_id,
            "arn": value.arn,
        }
    if isinstance(value, list):
        if method == "list_versions":
            return {"versions": [_version(v) for v in value]}
        return {"changes": [_change(c) for c in value]}
    if isinstance(value, dict):
        return {"states": {str(k): str(v) for k, v in value.items()}}
    raise TypeError(f"{method} answered {type(value).__name__}, which the saga cannot record")


def _version(value: VersionInfo) -> dict[str, Any]:
    return {
        "version": value.version,
        "code_sha256": value.code_sha256,
        "description": value.description,
        "revision_id": value.revision_id,
    }


def _change(change: SourceChange) -> dict[str, Any]:
    details = json.loads(json.dumps(dict(change.details), default=str))
    return {
        "kind": change.kind,
        "change": change.change,
        "source_id": change.source_id,
        "details": details,
    }
