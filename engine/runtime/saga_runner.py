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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import assert_never

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
    Clock,
    CodeObjects,
    EventStore,
    InvocationsApi,
    InvokeAnswer,
    LambdaApi,
    SourcesApi,
)
from engine.runtime.release_watch import MemberReader
from engine.runtime.waits import Waits
from engine.saga.effects import (
    Call,
    CallOutcome,
    CodeRead,
    CountInvocations,
    CreateAlias,
    CreateFunction,
    DeleteAlias,
    DeleteFunction,
    DeleteSigning,
    DeleteVersion,
    DetachSources,
    Done,
    Failed,
    GetAlias,
    GetFunction,
    GetSigning,
    HashCode,
    InvokeHook,
    LambdaMutation,
    LambdaRead,
    ListVersions,
    MetricsRead,
    Ok,
    Operation,
    PublishVersion,
    PutSigning,
    Read,
    ReconcileSources,
    Record,
    SagaContext,
    SourcesMutation,
    SourcesWrite,
    TagFunction,
    UntagFunction,
    UpdateAlias,
    UpdateCode,
    UpdateConfig,
    Wait,
    Waited,
)
from engine.saga.hooks import judge, unanswered
from engine.saga.replay import evolve
from engine.saga.results import (
    AliasRead,
    Applied,
    CallResult,
    CodeHashed,
    Deleted,
    FunctionRead,
    HookAnswer,
    InvocationsCounted,
    Published,
    SigningRead,
    SourcesChanged,
    VersionsRead,
)
from engine.saga.saga import next_effect, on_outcome
from engine.saga.schedule import DEFAULT_POLICY, SagaPolicy
from engine.saga.state import SagaState, initial_state

# Deadline of one port call. Longer than the Lambda adapter's own wait for an in-progress
# update to settle (LambdaRetry.settle_timeout, 300 s), so a call the adapter is still
# legitimately waiting on is never cut off and turned into an ambiguous outcome.
CALL_TIMEOUT = 360.0


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
    code_objects: CodeObjects | None = None,
) -> SagaRun:
    """Drive the saga of ``stream`` until no deployment is in flight or held.

    ``ids`` makes event ids; ``on_event`` sees every event this run appends (live progress);
    ``code_objects`` reads S3 code the log has no CodeSha256 for (without it such code counts
    as changed). Returns when the saga is idle; a deployment requested later needs another
    call.
    """
    runner = _Runner(
        stream, store, lambda_api, alarms_api, sources_api, clock, ids, call_timeout, on_event
    )
    runner.code_objects = code_objects
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
            outcome: CallOutcome | None
            started = clock.now()
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
            if isinstance(effect, Wait) and isinstance(outcome, Waited):
                events = await runner.with_readings(effect, outcome, events, started)
            if events:
                state = await runner.append_outcome(state, events, policy)
        except ConcurrencyConflict:
            state, runner.version = await load_saga(store, stream, policy)


class _Runner(Waits):
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
        self.lambda_api = lambda_api
        self.sources_api = sources_api
        self.alarms = alarms_api
        self.clock = clock
        self.ids = ids
        self.call_timeout = call_timeout
        self.on_event = on_event
        self.version = NO_STREAM
        self.members = MemberReader(store)
        self.finished: list[DeploymentFinished] = []
        self.code_objects: CodeObjects | None = None

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

    async def perform(self, call: Call) -> CallOutcome:
        try:
            with anyio.fail_after(self.call_timeout):
                result = await self._invoke(call.operation)
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
        return Ok(result=result)

    async def _invoke(self, operation: Operation) -> CallResult:
        """Call the port method ``operation`` stands for, and say what it answered."""
        if isinstance(operation, LambdaRead | CodeRead | MetricsRead):
            return await self._read(operation)
        if isinstance(operation, SourcesWrite):
            return await self._wire(operation)
        return await self._write(operation)

    async def _read(self, read: Read) -> CallResult:
        api = self.lambda_api
        match read:
            case GetFunction(name=name, qualifier=qualifier, against=against):
                info = await api.get_function(name, qualifier)
                return FunctionRead.from_info(info, against)
            case GetAlias(name, alias):
                return AliasRead.from_info(await api.get_alias(name, alias))
            case ListVersions(name):
                return VersionsRead.from_infos(await api.list_versions(name))
            case GetSigning(name):
                return SigningRead(arn=await api.code_signing_config(name))
            case HashCode(bucket, key, version):
                if self.code_objects is None:
                    return CodeHashed()  # no S3 access: the code counts as changed
                sha = await self.code_objects.code_sha256(bucket, key, version)
                return CodeHashed(code_sha256=sha)
            case CountInvocations(name, alias, version, since, until):
                if not isinstance(self.alarms, InvocationsApi):
                    raise TypeError("this engine's CloudWatch port cannot count invocations")
                served = await self.alarms.invocations(name, alias, version, since, until)
                return InvocationsCounted(
                    version=version, invocations=served, since=since, until=until
                )
            case _:
                assert_never(read)

    async def _write(self, write: LambdaMutation) -> CallResult:
        api = self.lambda_api
        match write:
            case CreateFunction(request):
                return FunctionRead.from_info(await api.create_function(request))
            case UpdateConfig(name, configuration):
                answer = await api.update_function_configuration(name, configuration)
                return FunctionRead.from_info(answer)
            case UpdateCode(name, code):
                return FunctionRead.from_info(await api.update_function_code(name, code))
            case PublishVersion(name=name, code_sha256=code_sha256, revision_id=revision_id):
                version = await api.publish_version(
                    name, code_sha256=code_sha256, revision_id=revision_id
                )
                return Published.from_info(version)
            case DeleteVersion(name, version):
                await api.delete_version(name, version)
                return Deleted()
            case DeleteFunction(name):
                await api.delete_function(name)
                return Deleted()
            case CreateAlias(name, alias, version):
                return AliasRead.from_info(await api.create_alias(name, alias, version))
            case UpdateAlias(name, alias, version, routing):
                return AliasRead.from_info(await api.update_alias(name, alias, version, routing))
            case DeleteAlias(name, alias):
                await api.delete_alias(name, alias)
                return Deleted()
            case TagFunction(arn, tags):
                await api.tag_function(arn, tags)
                return Applied()
            case UntagFunction(arn, keys):
                await api.untag_function(arn, keys)
                return Applied()
            case PutSigning(name, arn):
                await api.put_code_signing_config(name, arn)
                return Applied()
            case DeleteSigning(name):
                await api.delete_code_signing_config(name)
                return Applied()
            case InvokeHook():
                return await self._hook(write)
            case _:
                assert_never(write)

    async def _hook(self, hook: InvokeHook) -> HookAnswer:
        """Invoke a traffic hook within its deadline, and judge its answer by the contract
        (engine.saga.hooks). An invoke refused for good is the hook's "error"; a retryable
        failure is the step's, repeated by the saga."""
        started = self.clock.monotonic()

        def elapsed() -> int:
            return int((self.clock.monotonic() - started) * 1000)

        answer: InvokeAnswer | None = None
        try:
            with anyio.move_on_after(hook.timeout_seconds):
                answer = await self.lambda_api.invoke(hook.function, hook.payload)
        except AwsError as exc:
            if exc.retryable:
                raise
            why = f"{exc.code or type(exc).__name__}: {exc.message}"
            return unanswered(hook.point, hook.function, "error", why, elapsed())
        if answer is None:
            why = f"no answer within {hook.timeout_seconds:g} s"
            return unanswered(hook.point, hook.function, "timed_out", why, elapsed())
        return judge(hook.point, hook.function, answer.function_error, answer.payload, elapsed())

    async def _wire(self, write: SourcesMutation) -> SourcesChanged:
        api = self.sources_api
        match write:
            case ReconcileSources(function_name, alias_arn, desired, previous):
                changes = await api.reconcile(function_name, alias_arn, desired, previous)
            case DetachSources(function_name, alias_arn, previous):
                changes = await api.detach_all(function_name, alias_arn, previous)
            case _:
                assert_never(write)
        return SourcesChanged.from_changes(changes)


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
