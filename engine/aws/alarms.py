"""``AlarmsApi`` on aiobotocore: CloudWatch alarm states, read in batches of 100."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.aws.errors import translate
from engine.aws.ratelimit import RateLimiter

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
