"""The alarm timeline a what-if replays: recorded states as they were, an alarm given another
threshold evaluated again from its datapoints the way CloudWatch evaluates a metric alarm."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.errors import UsageError
from engine.events import Event, Metadata
from engine.events.alarms import AlarmDatapoint, AlarmMetric
from engine.events.catalog import RecordedEvent
from engine.events.function import AlarmObserved, StepSucceeded
from engine.saga.steps import StepName
from engine.whatif import AlarmTimeline

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ERRORS = AlarmMetric(
    namespace="AWS/Lambda",
    name="Errors",
    statistic="Sum",
    period=60,
    threshold=1.0,
    comparison="GreaterThanOrEqualToThreshold",
    evaluation_periods=3,
    datapoints_to_alarm=2,
)


def recorded(event: Event, at: datetime, position: int = 1) -> RecordedEvent:
    return RecordedEvent(
        position=position,
        stream="fn:1:r:f",
        version=position,
        event=event,
        meta=Metadata(event_id=f"e{position}"),
        recorded_at=at,
        hash="",
    )


def observed(state: str, at: datetime, *points: tuple[datetime, float]) -> RecordedEvent:
    event = AlarmObserved(
        deployment_id="d",
        alarm="errors",
        state=state,
        metric=ERRORS,
        datapoints=tuple(AlarmDatapoint(at=p, value=v) for p, v in points),
    )
    return recorded(event, at)


def test_an_alarm_left_alone_reads_as_recorded() -> None:
    quiet = StepSucceeded(
        deployment_id="d", step=StepName.wait("bake"), result={"alarms": {"errors": "OK"}}
    )
    timeline = AlarmTimeline(
        [recorded(quiet, T0 + timedelta(seconds=30)), observed("ALARM", T0 + timedelta(minutes=2))]
    )
    assert timeline.read("errors", T0).state == "OK"
    assert timeline.read("errors", T0 + timedelta(minutes=1)).state == "OK"
    assert timeline.read("errors", T0 + timedelta(minutes=2)).state == "ALARM"
    assert timeline.recorded_until == T0 + timedelta(minutes=2)


def test_another_threshold_needs_datapoints_to_alarm_of_the_evaluation_periods() -> None:
    seen = T0 + timedelta(minutes=4)
    points = [(T0 + timedelta(minutes=k), v) for k, v in ((0, 1.0), (1, 4.0), (2, 6.0), (3, 2.0))]
    timeline = AlarmTimeline([observed("ALARM", seen, *points)], {"errors": 5.0})
    # At the end only the last three periods count: 4, 6, 2 -> one breaching of the two needed.
    assert timeline.read("errors", seen).state == "OK"
    lower = AlarmTimeline([observed("ALARM", seen, *points)], {"errors": 4.0})
    reading = lower.read("errors", seen)
    assert reading.state == "ALARM"
    assert reading.why == "4, 6, 2 >= 4: 2 of 2"


def test_a_datapoint_counts_once_its_period_is_over_or_glam_read_it() -> None:
    # Read by glam 10 s into its period: it existed then, though its period was not over.
    at = T0 + timedelta(minutes=1)
    single = ERRORS.model_copy(update={"evaluation_periods": 1, "datapoints_to_alarm": None})
    timeline = AlarmTimeline(
        [
            recorded(
                AlarmObserved(
                    deployment_id="d",
                    alarm="errors",
                    state="ALARM",
                    metric=single,
                    datapoints=(AlarmDatapoint(at=at, value=9.0),),
                ),
                at + timedelta(seconds=10),
            )
        ],
        {"errors": 5.0},
    )
    assert timeline.read("errors", at + timedelta(seconds=9)).state == "INSUFFICIENT_DATA"
    assert timeline.read("errors", at + timedelta(seconds=10)).state == "ALARM"
    assert timeline.changes("errors", at, at + timedelta(minutes=5)) == [at + timedelta(seconds=10)]


def test_missing_data_reads_as_the_alarm_treats_it() -> None:
    breaching = ERRORS.model_copy(update={"treat_missing_data": "breaching"})
    event = AlarmObserved(deployment_id="d", alarm="errors", state="OK", metric=breaching)
    timeline = AlarmTimeline([recorded(event, T0)], {"errors": 5.0})
    assert timeline.read("errors", T0).state == "ALARM"
    assert "treatMissingData breaching" in timeline.read("errors", T0).why


def test_an_override_needs_a_watched_metric_alarm() -> None:
    composite = AlarmObserved(deployment_id="d", alarm="health", state="OK")
    with pytest.raises(UsageError, match="was not watched by this deployment"):
        AlarmTimeline([recorded(composite, T0)], {"errors": 5.0})
    with pytest.raises(UsageError, match="has no recorded metric"):
        AlarmTimeline([recorded(composite, T0)], {"health": 5.0})
