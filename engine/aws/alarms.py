"""``AlarmsApi`` on aiobotocore: CloudWatch alarm states, read in batches of 100;
``AlarmReadingsApi``: what each metric alarm evaluates, with its metric's datapoints; and
``InvocationsApi``: the invocations a version served through an alias (a traffic gate)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.aws.errors import translate
from engine.aws.ratelimit import RateLimiter
from engine.events.alarms import AlarmDatapoint, AlarmMetric
from engine.ports import AlarmReading

BATCH = 100  # DescribeAlarms accepts at most 100 AlarmNames per request


class AwsAlarms:
    """Alarm states by name (``engine.ports.AlarmsApi``). CloudWatch's quotas are not Lambda's,
    so the runtime gives this adapter its own limiter rather than the Lambda one."""

    def __init__(self, client: Any, limiter: RateLimiter | None = None) -> None:
        self._client = client
        self._limiter = limiter or RateLimiter(rate=5.0, poll_rate=5.0)

    async def alarm_states(self, names: Sequence[str]) -> dict[str, str]:
        """State by alarm name (OK, ALARM, INSUFFICIENT_DATA); a missing alarm is absent.

        Metric and composite alarms both count. A failure is translated and raised: the saga
        decides whether an unreadable alarm is a reason to roll back."""
        unique = list(dict.fromkeys(names))
        states: dict[str, str] = {}
        for start in range(0, len(unique), BATCH):
            batch = unique[start : start + BATCH]
            token: str | None = None
            while True:
                kwargs: dict[str, Any] = {
                    "AlarmNames": batch,
                    "AlarmTypes": ["MetricAlarm", "CompositeAlarm"],
                    "MaxRecords": BATCH,
                }
                if token:
                    kwargs["NextToken"] = token
                await self._limiter.acquire(poll=True)
                try:
                    answer = await self._client.describe_alarms(**kwargs)
                except Exception as exc:  # translated at the boundary
                    raise translate(exc, "DescribeAlarms", mutating=False) from None
                for kind in ("MetricAlarms", "CompositeAlarms"):
                    for alarm in answer.get(kind) or []:
                        name = alarm.get("AlarmName")
                        if name in batch:
                            states[str(name)] = str(alarm.get("StateValue", "INSUFFICIENT_DATA"))
                token = answer.get("NextToken")
                if not token:
                    break
        return states

    async def alarm_readings(
        self, names: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, AlarmReading]:
        """Each metric alarm's metric (DescribeAlarms) and its datapoints from its
        evaluation window before ``start`` to ``end`` (GetMetricStatistics, at the alarm's
        period and statistic): what it evaluated at ``start`` and since. An alarm on a
        metric math expression has no single metric: left out, like composite ones."""
        readings: dict[str, AlarmReading] = {}
        for alarm in await self._metric_alarms(names):
            metric = _metric_of(alarm)
            if metric is None:
                continue
            since = start - timedelta(seconds=metric.period * metric.evaluation_periods)
            # CloudWatch answers datapoints stamped before EndTime, compared at a second's
            # precision: one put in the last second would be left out without the margin.
            until = end + timedelta(seconds=1)
            readings[str(alarm["AlarmName"])] = (
                metric,
                await self._datapoints(metric, since, until),
            )
        return readings

    async def invocations(
        self, name: str, alias: str, version: str, since: datetime, until: datetime
    ) -> int:
        """``Invocations`` of function ``name`` with the dimensions ``Resource`` (name:alias)
        and ``ExecutedVersion``, summed over one-minute periods from the minute ``since`` is
        in to ``until``: Lambda publishes its metrics by the minute, so the minute a window
        begins in counts whole."""
        name = name.rsplit(":", 1)[-1] if name.startswith("arn:") else name
        start = since.replace(second=0, microsecond=0)
        end = max(until + timedelta(seconds=1), start + timedelta(seconds=60))
        # At most 1,440 datapoints per read: a window longer than a day is read by the hour.
        period = 60 if end - start <= timedelta(days=1) else 3600
        await self._limiter.acquire(poll=True)
        try:
            answer = await self._client.get_metric_statistics(
                Namespace="AWS/Lambda",
                MetricName="Invocations",
                Dimensions=[
                    {"Name": "FunctionName", "Value": name},
                    {"Name": "Resource", "Value": f"{name}:{alias}"},
                    {"Name": "ExecutedVersion", "Value": version},
                ],
                StartTime=start,
                EndTime=end,
                Period=period,
                Statistics=["Sum"],
            )
        except Exception as exc:  # translated at the boundary
            raise translate(exc, "GetMetricStatistics", mutating=False) from None
        return int(sum(float(p.get("Sum") or 0) for p in answer.get("Datapoints") or []))

    async def _metric_alarms(self, names: Sequence[str]) -> list[dict[str, Any]]:
        unique = list(dict.fromkeys(names))
        alarms: list[dict[str, Any]] = []
        for begin in range(0, len(unique), BATCH):
            batch = unique[begin : begin + BATCH]
            await self._limiter.acquire(poll=True)
            try:
                answer = await self._client.describe_alarms(
                    AlarmNames=batch, AlarmTypes=["MetricAlarm"], MaxRecords=BATCH
                )
            except Exception as exc:  # translated at the boundary
                raise translate(exc, "DescribeAlarms", mutating=False) from None
            alarms += [a for a in answer.get("MetricAlarms") or [] if a.get("AlarmName") in batch]
        return alarms

    async def _datapoints(
        self, metric: AlarmMetric, start: datetime, end: datetime
    ) -> tuple[AlarmDatapoint, ...]:
        extended = metric.statistic.startswith(("p", "tm", "tc", "ts", "wm", "PR", "TM"))
        kwargs: dict[str, Any] = {
            "Namespace": metric.namespace,
            "MetricName": metric.name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in metric.dimensions.items()],
            "StartTime": start,
            "EndTime": end,
            "Period": metric.period,
        }
        key = "ExtendedStatistics" if extended else "Statistics"
        kwargs[key] = [metric.statistic]
        await self._limiter.acquire(poll=True)
        try:
            answer = await self._client.get_metric_statistics(**kwargs)
        except Exception as exc:  # translated at the boundary
            raise translate(exc, "GetMetricStatistics", mutating=False) from None
        points: list[AlarmDatapoint] = []
        for point in answer.get("Datapoints") or []:
            value = (point.get("ExtendedStatistics") or {}).get(metric.statistic)
            if value is None:
                value = point.get(metric.statistic)
            stamp = point.get("Timestamp")
            if value is None or not isinstance(stamp, datetime):
                continue
            at = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
            points.append(AlarmDatapoint(at=at.astimezone(UTC), value=float(value)))
        return tuple(sorted(points, key=lambda p: p.at))


def _metric_of(alarm: dict[str, Any]) -> AlarmMetric | None:
    """The metric a metric alarm evaluates, or None for one on a math expression."""
    statistic = alarm.get("Statistic") or alarm.get("ExtendedStatistic")
    if not alarm.get("MetricName") or not statistic or alarm.get("Threshold") is None:
        return None
    return AlarmMetric(
        namespace=str(alarm.get("Namespace", "")),
        name=str(alarm["MetricName"]),
        statistic=str(statistic),
        period=int(alarm.get("Period") or 60),
        threshold=float(alarm["Threshold"]),
        comparison=str(alarm.get("ComparisonOperator", "GreaterThanOrEqualToThreshold")),
        evaluation_periods=int(alarm.get("EvaluationPeriods") or 1),
        datapoints_to_alarm=alarm.get("DatapointsToAlarm"),
        treat_missing_data=str(alarm.get("TreatMissingData") or "missing"),
        dimensions={str(d["Name"]): str(d["Value"]) for d in alarm.get("Dimensions") or []},
    )
