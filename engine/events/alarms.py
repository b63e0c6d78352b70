"""What an ``AlarmObserved`` can hold beyond the alarm's state: the metric a CloudWatch
metric alarm evaluates, and the datapoints its evaluation saw. Recorded so that a past
deployment can be replayed against another threshold (``glam whatif``); a composite alarm,
or a log written before these fields existed, has neither."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from engine.events.base import Frozen


class AlarmMetric(Frozen):
    """How a metric alarm evaluates its metric (DescribeAlarms' answer, trimmed to the
    evaluation): ``statistic`` is a statistic (``Sum``) or an extended one (``p99``);
    ``comparison`` is CloudWatch's ComparisonOperator; ``datapoints_to_alarm`` None means
    all of ``evaluation_periods``."""

    namespace: str
    name: str
    statistic: str
    period: int  # seconds
    threshold: float
    comparison: str
    evaluation_periods: int = 1
    datapoints_to_alarm: int | None = None
    treat_missing_data: str = "missing"
    dimensions: dict[str, str] = Field(default_factory=dict)


class AlarmDatapoint(Frozen):
    """One value of the alarm's metric: the statistic over the period starting at ``at``."""

    at: datetime
    value: float
