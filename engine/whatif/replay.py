"""A past deployment replayed against another schedule or alarm threshold (``glam whatif``).

The deployment's own stream is folded, with its request's traffic schedule replaced, up to the
moment it was about to move traffic (the alarms read before the first weight, the first shift,
or the switch). From there the saga's pure decisions (``next_effect``/``on_outcome``) are
driven on a replayed clock: each alias update and delete answers as AWS would have, and each
wait is decided by the recorded alarm timeline (engine.whatif.alarms) at the moments the
alarms could have changed. No AWS call is made and nothing is written; the saga code is the
one that runs deployments, so the what-if decides what a deployment would have decided.

Operator commands given during the recorded deployment and newer requests that superseded it
are not replayed: the what-if answers what the schedule and the alarms alone would have done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from engine.errors import UsageError
from engine.events import Event
from engine.events.catalog import RecordedEvent
from engine.events.desired import TrafficShifting
from engine.events.function import (
    AlarmObserved,
    DeploymentFinished,
    DeploymentRequested,
    OperatorRequested,
    RollbackStarted,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TrafficShifted,
)
from engine.saga import (
    DEFAULT_POLICY,
    Call,
    Done,
    Ok,
    Record,
    SagaContext,
    SagaState,
    Wait,
    Waited,
    evolve,
    initial_state,
    next_effect,
    on_outcome,
)
from engine.saga.effects import (
    CountInvocations,
    DeleteFunction,
    DeleteVersion,
    DetachSources,
    InvokeHook,
    ReconcileSources,
    UpdateAlias,
)
from engine.saga.results import (
    AliasRead,
    CallResult,
    Deleted,
    HookAnswer,
    InvocationsCounted,
    SourcesChanged,
)
from engine.saga.schedule import weights
from engine.streams import parse_function_stream
from engine.whatif.alarms import AlarmTimeline

# Where a deployment is about to move traffic: the replay starts at the first of them.
TRAFFIC_PHASES = frozenset({"alarm_check", "shift", "promote"})
_HOOK_STEPS = ("hook_before", "hook_after")
_MAX_EFFECTS = 10_000  # a schedule has at most 99 steps; this only stops a runaway loop


@dataclass(frozen=True, slots=True)
class Schedule:
    """The schedule to replay: ``traffic`` replaces the deployment's trafficShiftingConfig
    (None keeps it); ``steps`` (the new version's share before the promote, in (0, 1))
    replaces its weights."""

    traffic: TrafficShifting | None = None
    steps: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class Moment:
    """One line of a replay's timeline: seconds since the replay's start, and what happened."""

    at: float
    what: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a deployment ended, or would have: ``outcome`` as DeploymentFinished says it, and
    when, in seconds since the replay's start (None: it had not ended when the log was read)."""

    outcome: str
    reason: str
    at: float | None


@dataclass(slots=True)
class WhatIf:
    deployment_id: str
    function: str
    start: datetime
    schedule: str
    recorded_schedule: str
    alarms: list[str]
    recorded: Verdict
    verdict: Verdict | None = None
    timeline: list[Moment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        def verdict(v: Verdict | None) -> dict[str, object] | None:
            return None if v is None else {"outcome": v.outcome, "reason": v.reason, "at": v.at}

        return {
            "deployment_id": self.deployment_id,
            "function": self.function,
            "start": self.start.isoformat(),
            "schedule": self.schedule,
            "recorded_schedule": self.recorded_schedule,
            "alarms": self.alarms,
            "recorded": verdict(self.recorded),
            "would_have": verdict(self.verdict),
            "timeline": [{"at": m.at, "what": m.what} for m in self.timeline],
            "notes": self.notes,
        }


def what_if(
    stream: Sequence[RecordedEvent],
    deployment_id: str,
    schedule: Schedule,
    thresholds: dict[str, float] | None = None,
) -> WhatIf:
    """Replay deployment ``deployment_id`` of the function whose whole stream is ``stream``
    against ``schedule`` and ``thresholds`` (alarm name -> threshold)."""
    request = _request(stream, deployment_id)
    assert request.desired is not None
    settings = request.desired.settings
    traffic = schedule.traffic or settings.traffic
    changed = request.model_copy(
        update={
            "desired": request.desired.model_copy(
                update={"settings": settings.model_copy(update={"traffic": traffic})}
            )
        }
    )
    own = [r for r in stream if getattr(r.event, "deployment_id", None) == deployment_id]
    timeline = AlarmTimeline(own, thresholds)
    state, start = _before_traffic(stream, changed)
    dep = state.active
    assert dep is not None
    if schedule.steps is not None:
        phase = dep.phase
        if phase != "alarm_check":
            phase = "shift" if schedule.steps else "promote"
        state = replace(state, active=replace(dep, schedule=schedule.steps, phase=phase))
    result = WhatIf(
        deployment_id=deployment_id,
        function=request.desired.function_name,
        start=start,
        schedule=_describe(traffic, state.active.schedule if state.active else ()),
        recorded_schedule=_describe(settings.traffic, weights(settings.traffic)),
        alarms=[timeline.describe(a) for a in settings.alarms],
        recorded=_recorded(own, start),
    )
    if any(isinstance(r.event, OperatorRequested) for r in own):
        result.notes.append("operator commands given during the deployment are not replayed")
    _drive(state, start, timeline, _Pace(own, start), _Hooks(own), result, _Gate(own))
    if timeline.recorded_until is not None and result.verdict is not None:
        until = _seconds(timeline.recorded_until, start)
        beyond = max(until, result.recorded.at or until)
        if result.verdict.at is not None and result.verdict.at > beyond:
            result.notes.append(
                f"the recorded alarm timeline ends at +{until:.1f} s: after it each alarm is "
                "taken as it was last recorded"
            )
    return result


def _request(stream: Sequence[RecordedEvent], deployment_id: str) -> DeploymentRequested:
    for recorded in stream:
        event = recorded.event
        if isinstance(event, DeploymentRequested) and event.deployment_id == deployment_id:
            if event.desired is None:
                raise UsageError(f"deployment {deployment_id} deletes its function: no traffic")
            return event
    raise UsageError(f"no deployment {deployment_id} in this function's stream")


def _before_traffic(
    stream: Sequence[RecordedEvent], request: DeploymentRequested
) -> tuple[SagaState, datetime]:
    """The saga's state as the deployment was about to move traffic, folded with its request
    replaced by ``request``, and when that was."""
    stream_name = stream[0].stream
    state = initial_state(parse_function_stream(stream_name)[2])
    did = request.deployment_id
    finished: DeploymentFinished | None = None
    for recorded in stream:
        event = recorded.event
        if isinstance(event, DeploymentRequested) and event.deployment_id == did:
            event = request
        state = evolve(state, event)
        dep = state.active
        ours = dep is not None and dep.deployment_id == did and not dep.rollback
        if ours and dep is not None and dep.phase in TRAFFIC_PHASES:
            return state, recorded.recorded_at
        if isinstance(event, DeploymentFinished) and event.deployment_id == did:
            finished = event
            break
    if finished is None:
        raise UsageError(f"deployment {did} has not moved traffic yet: nothing to replay")
    raise UsageError(
        f"deployment {did} never moved traffic: it finished {finished.outcome}"
        + (f" ({finished.reason})" if finished.reason else "")
        + "; a what-if replays the shift from old version to new"
    )


def _recorded(own: Sequence[RecordedEvent], start: datetime) -> Verdict:
    for recorded in own:
        if isinstance(recorded.event, DeploymentFinished):
            event = recorded.event
            return Verdict(event.outcome, event.reason, _seconds(recorded.recorded_at, start))
    return Verdict("running", "", None)


class _Pace:
    """How long each AWS call of the replay takes: as long as the same call took in the
    recorded deployment (its k-th shift ends when the recorded k-th shift ended, where the
    replay is still on the recorded path), else the median of the recorded calls."""

    def __init__(self, own: Sequence[RecordedEvent], start: datetime) -> None:
        self._ends: dict[str, list[datetime]] = {}
        started: dict[str, datetime] = {}
        took: list[float] = []
        for recorded in own:
            event, at = recorded.event, recorded.recorded_at
            if at < start:
                continue
            if isinstance(event, StepStarted):
                started[str(event.step)] = at
            elif isinstance(event, StepSucceeded | StepFailed) and not event.step.is_wait:
                self._ends.setdefault(str(event.step), []).append(at)
                if str(event.step) in started:
                    took.append((at - started.pop(str(event.step))).total_seconds())
        took.sort()
        self._typical = timedelta(seconds=took[len(took) // 2] if took else 0.0)
        self._made: dict[str, int] = {}

    def after(self, call: Call, now: datetime) -> datetime:
        step = str(call.step)
        k = self._made.get(step, 0)
        self._made[step] = k + 1
        ends = self._ends.get(step, [])
        return max(now, ends[k]) if k < len(ends) else now + self._typical


class _Hooks:
    """What each traffic hook answered in the recorded deployment: the replay's hook answers
    the same; one the recorded deployment never reached is taken to succeed (noted)."""

    def __init__(self, own: Sequence[RecordedEvent]) -> None:
        self._answers: dict[str, HookAnswer] = {}
        for recorded in own:
            event = recorded.event
            hook = isinstance(event, StepSucceeded) and event.step.step in _HOOK_STEPS
            if hook and isinstance(event, StepSucceeded):
                answer = HookAnswer.model_validate(event.result)
                self._answers[answer.point] = answer

    def answer(self, hook: InvokeHook, result: WhatIf) -> HookAnswer:
        recorded = self._answers.get(hook.point)
        if recorded is not None:
            return recorded
        result.notes.append(
            f"hook {hook.point} of {hook.function} was never invoked in the recorded "
            "deployment: taken to succeed"
        )
        return HookAnswer(point=hook.point, function=hook.function, status="succeeded")


class _Gate:
    """What a traffic gate's reads found in the recorded deployment: the replay's read at a
    moment is answered with the count of the last recorded read at or before it (0 before the
    first), noted once: the replay cannot know traffic the recording never measured."""

    def __init__(self, own: Sequence[RecordedEvent]) -> None:
        self._reads = sorted(
            (
                InvocationsCounted.model_validate(r.event.result)
                for r in own
                if isinstance(r.event, StepSucceeded) and r.event.step.step == "gate"
            ),
            key=lambda read: read.until,
        )
        self._noted = False

    def answer(self, count: CountInvocations, result: WhatIf) -> InvocationsCounted:
        seen = [read.invocations for read in self._reads if read.until <= count.until]
        if not self._noted:
            self._noted = True
            result.notes.append(
                "the traffic gate's reads are answered with the counts the recorded "
                "deployment read by then"
            )
        return InvocationsCounted(
            version=count.version,
            invocations=seen[-1] if seen else 0,
            since=count.since,
            until=count.until,
        )


def _drive(
    state: SagaState,
    now: datetime,
    alarms: AlarmTimeline,
    pace: _Pace,
    hooks: _Hooks,
    result: WhatIf,
    gate: _Gate | None = None,
) -> None:
    start = now
    poll = timedelta(seconds=DEFAULT_POLICY.alarm_poll_seconds)
    for _ in range(_MAX_EFFECTS):
        effect = next_effect(state, now)
        events: Sequence[Event]
        match effect:
            case Done():
                return
            case Record(events=events):
                pass
            case Wait():
                if effect.intent is not None:
                    state = evolve(state, effect.intent)
                outcome, now = _wait(effect, now, poll, alarms, result, start)
                events = on_outcome(state, effect, outcome, SagaContext(now))
            case Call():
                if effect.intent is not None:
                    state = evolve(state, effect.intent)
                if isinstance(effect.operation, InvokeHook):
                    answer = Ok(hooks.answer(effect.operation, result))
                elif isinstance(effect.operation, CountInvocations):
                    answer = Ok((gate or _Gate(())).answer(effect.operation, result))
                else:
                    answer = Ok(_answer(effect))
                now = pace.after(effect, now)
                events = on_outcome(state, effect, answer, SagaContext(now))
        for event in events:
            _note(event, _seconds(now, start), result)
            state = evolve(state, event)
            ours = getattr(event, "deployment_id", None) == result.deployment_id
            if isinstance(event, DeploymentFinished) and ours:
                result.verdict = Verdict(event.outcome, event.reason, _seconds(now, start))
                return
    raise RuntimeError("the what-if replay did not end: a saga loop (report this)")


def _wait(
    wait: Wait,
    now: datetime,
    poll: timedelta,
    alarms: AlarmTimeline,
    result: WhatIf,
    start: datetime,
) -> tuple[Waited, datetime]:
    """How ``wait`` would have ended: at the first moment an alarm it watches reads ALARM
    (polled as the engine polls, and at each moment a reading could change), else at its end.
    A release member's wait for the other members ends at once: the what-if replays one
    deployment, and takes the other members to have kept in step."""
    if wait.purpose == "release":
        result.timeline.append(Moment(_seconds(now, start), "release: the other members in step"))
        return Waited(completed=True), now
    until = max(wait.until, now)
    moments = {now, until}
    tick = now + poll
    while tick < until:
        moments.add(tick)
        tick += poll
    for name in wait.alarms:
        moments.update(alarms.changes(name, now, until))
    states: dict[str, str] = {}
    for moment in sorted(moments):
        readings = {name: alarms.read(name, moment) for name in wait.alarms}
        states = {name: r.state for name, r in readings.items()}
        fired = {n: r for n, r in readings.items() if r.state == "ALARM"}
        if fired:
            for name, reading in sorted(fired.items()):
                result.timeline.append(
                    Moment(_seconds(moment, start), f"alarm {name} in ALARM ({reading.why})")
                )
            return Waited(completed=False, alarms=states), moment
    return Waited(completed=True, alarms=states), until


def _answer(call: Call) -> CallResult:
    """What AWS answers the call with, had it been made."""
    match call.operation:
        case UpdateAlias(alias=alias, version=version, routing=routing):
            return AliasRead(name=alias, function_version=version, routing=dict(routing or {}))
        case DeleteVersion() | DeleteFunction():
            return Deleted()
        case ReconcileSources() | DetachSources():
            return SourcesChanged()
        case operation:
            raise RuntimeError(f"a what-if cannot answer {operation.method} (report this)")


def _note(event: Event, at: float, result: WhatIf) -> None:
    match event:
        case TrafficShifted(weight=weight, new_version=new, stable_version=stable):
            if weight >= 1:
                what = f"promote: the alias on version {new}, routing cleared"
            elif weight <= 0:
                what = f"the alias back on version {stable}, routing cleared"
            else:
                what = f"shift: {weight:.0%} to version {new}"
            result.timeline.append(Moment(at, what))
        case StepSucceeded() if event.step.is_wait:
            purpose = str(event.step).removeprefix("wait:")
            quiet = "alarms read: none in ALARM" if purpose == "alarms" else ""
            what = quiet or f"{purpose} ended quietly"
            result.timeline.append(Moment(at, what))
        case RollbackStarted(reason=reason):
            result.timeline.append(Moment(at, f"rollback: {reason}"))
        case AlarmObserved():
            pass  # the wait's own line says which alarm and why
        case DeploymentFinished(outcome=outcome):
            result.timeline.append(Moment(at, f"finished: {outcome.replace('_', ' ')}"))


def _describe(traffic: TrafficShifting | None, steps: tuple[float, ...] | None) -> str:
    if traffic is None:
        text = "no trafficShiftingConfig: the switch alone"
    else:
        text = f"{traffic.type} {traffic.percent} %, bake {traffic.wait_interval} s"
    if steps is not None:
        shares = ", ".join(f"{w:.0%}" for w in steps)
        text += f"; steps {shares or 'none'} then promote"
    return text


def _seconds(moment: datetime, start: datetime) -> float:
    return round((moment - start).total_seconds(), 3)
