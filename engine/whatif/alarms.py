"""The alarm timeline a what-if replays: what each alarm was, when, as the log recorded it.

Two kinds of record feed it. Alarm states, as glam saw them: an ``AlarmObserved`` (an alarm
that fired, or a quiet one at the end of a watched bake) and the states a wait that ended
reports in its ``StepSucceeded`` (``AlarmsRead``). And, where glam recorded them, the metric an
alarm evaluates with the datapoints its evaluation saw (engine.events.alarms).

An alarm whose threshold the what-if leaves alone is taken as it was: its recorded state at a
moment is the last one recorded at or before it. An alarm given another threshold is evaluated
again, the way CloudWatch evaluates a metric alarm, from its recorded datapoints: the last
``evaluation_periods`` datapoints of the window, ``datapoints_to_alarm`` of them breaching (all
of them when unset) put it in ALARM, none at all is read as ``treat_missing_data`` says. A
datapoint counts from the moment its period is over, or from the moment glam read it if that
was sooner (glam read it, so it existed then).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engine.errors import UsageError
from engine.events.alarms import AlarmMetric
from engine.events.catalog import RecordedEvent
from engine.events.function import AlarmObserved, StepSucceeded
from engine.saga.results import AlarmsRead

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
_SYMBOL = {
    "GreaterThanOrEqualToThreshold": ">=",
    "GreaterThanThreshold": ">",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}


@dataclass(frozen=True, slots=True)
class Point:
    """One recorded datapoint: its period's start, its value, and when glam first read it."""

    at: datetime
    value: float
    seen: datetime


@dataclass(frozen=True, slots=True)
class Reading:
    """An alarm's state at a moment, and why (for the timeline)."""

    state: str
    why: str = ""


@dataclass(slots=True)
class _Alarm:
    states: list[tuple[datetime, str]] = field(default_factory=list)
    metric: AlarmMetric | None = None
    points: dict[datetime, Point] = field(default_factory=dict)


class AlarmTimeline:
    """The recorded alarms of one deployment, read at any moment of a replay."""

    def __init__(
        self, events: Iterable[RecordedEvent], thresholds: Mapping[str, float] | None = None
    ) -> None:
        self._alarms: dict[str, _Alarm] = {}
        self.recorded_until: datetime | None = None
        for recorded in events:
            self._record(recorded)
        self.thresholds = dict(thresholds or {})
        for name in self.thresholds:
            self._check_override(name)

    def _alarm(self, name: str) -> _Alarm:
        return self._alarms.setdefault(name, _Alarm())

    def _record(self, recorded: RecordedEvent) -> None:
        event, at = recorded.event, recorded.recorded_at
        match event:
            case AlarmObserved():
                alarm = self._alarm(event.alarm)
                alarm.states.append((at, event.state))
                if event.metric is not None:
                    alarm.metric = event.metric
                for p in event.datapoints:
                    alarm.points.setdefault(p.at, Point(p.at, p.value, at))
            case StepSucceeded() if event.step.is_wait and event.result:
                for name, state in AlarmsRead.model_validate(event.result).alarms.items():
                    self._alarm(name).states.append((at, state))
            case _:
                return
        if self.recorded_until is None or at > self.recorded_until:
            self.recorded_until = at

    def _check_override(self, name: str) -> None:
        alarm = self._alarms.get(name)
        if alarm is None:
            known = ", ".join(sorted(self._alarms)) or "none"
            raise UsageError(
                f"alarm {name} was not watched by this deployment (its alarms: {known})"
            )
        if alarm.metric is None:
            raise UsageError(
                f"alarm {name} has no recorded metric: it is a composite alarm, one on a metric "
                "math expression, or it was recorded by a glam before 0.3; its threshold "
                "cannot be changed, only its recorded states replayed"
            )
        if alarm.metric.comparison not in _COMPARE:
            raise UsageError(
                f"alarm {name} compares with {alarm.metric.comparison}, which a what-if does "
                "not evaluate (anomaly detection bands)"
            )

    def metric(self, name: str) -> AlarmMetric | None:
        alarm = self._alarms.get(name)
        return alarm.metric if alarm else None

    def describe(self, name: str) -> str:
        """One line on how ``name`` is replayed."""
        alarm = self._alarms.get(name)
        if name not in self.thresholds:
            seen = len(alarm.states) if alarm else 0
            return f"alarm {name}: as recorded ({seen} reading(s))"
        assert alarm is not None
        assert alarm.metric is not None
        m = alarm.metric
        return (
            f"alarm {name}: {m.statistic} of {m.namespace} {m.name} over {m.period} s "
            f"{_SYMBOL[m.comparison]} {self.thresholds[name]:g} (recorded threshold "
            f"{m.threshold:g}), {len(alarm.points)} recorded datapoint(s)"
        )

    def read(self, name: str, at: datetime) -> Reading:
        """The state of alarm ``name`` at ``at``, as recorded or evaluated again."""
        alarm = self._alarms.get(name)
        if alarm is None:
            return Reading("INSUFFICIENT_DATA", "never recorded")
        if name in self.thresholds:
            return self._evaluate(alarm, self.thresholds[name], at)
        state = "OK"
        for when, recorded in alarm.states:
            if when <= at:
                state = recorded
        return Reading(state, "as recorded")

    def _evaluate(self, alarm: _Alarm, threshold: float, at: datetime) -> Reading:
        m = alarm.metric
        assert m is not None
        period = timedelta(seconds=m.period)
        since = at - period * (m.evaluation_periods + 1)
        visible = sorted(
            (p for p in alarm.points.values() if min(p.at + period, p.seen) <= at and p.at > since),
            key=lambda p: p.at,
        )[-m.evaluation_periods :]
        if not visible:
            missing = "ALARM" if m.treat_missing_data == "breaching" else "INSUFFICIENT_DATA"
            return Reading(missing, f"no datapoints (treatMissingData {m.treat_missing_data})")
        compare = _COMPARE[m.comparison]
        breaching = [p for p in visible if compare(p.value, threshold)]
        needed = m.datapoints_to_alarm or m.evaluation_periods
        values = ", ".join(f"{p.value:g}" for p in visible)
        why = f"{values} {_SYMBOL[m.comparison]} {threshold:g}: {len(breaching)} of {needed}"
        return Reading("ALARM" if len(breaching) >= needed else "OK", why)

    def changes(self, name: str, start: datetime, end: datetime) -> list[datetime]:
        """The moments in (start, end] at which ``name``'s reading may change: a recorded
        state, or a datapoint becoming visible."""
        alarm = self._alarms.get(name)
        if alarm is None:
            return []
        moments = [when for when, _ in alarm.states]
        if alarm.metric is not None:
            period = timedelta(seconds=alarm.metric.period)
            moments += [min(p.at + period, p.seen) for p in alarm.points.values()]
        return sorted({m for m in moments if start < m <= end})
