"""A plain moto server for the AWS contract tests, and the LambdaApi/AlarmsApi under test.

The server is the session's ``moto_url`` (tests/conftest.py): moto over HTTP on loopback.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from engine.aws.alarms import AwsAlarms
from engine.aws.lambda_api import AwsLambda, CallRetry
from engine.aws.ratelimit import RateLimiter
from engine.aws.session import AwsConfig, open_clients
from engine.ports import AlarmsApi, LambdaApi
from engine.testing.aws import FakeAws

ACCOUNT = "123456789012"
REGION = "us-east-1"


def moto_config(url: str) -> AwsConfig:
    return AwsConfig(
        region=REGION,
        endpoint_url=url,
        access_key_id="testing",
        secret_access_key="testing",
        max_rate=200,
        poll_rate=200,
        read_timeout=20,
    )


def code_zip(body: str = "blue") -> str:
    """A tiny Python handler as base64 zip text, as a JSON definition holds it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("index.py", date_time=(2020, 1, 1, 0, 0, 0))
        zf.writestr(info, f"def handler(event, context):\n    return {body!r}\n")
    return base64.b64encode(buf.getvalue()).decode()


@dataclass
class Target:
    """One implementation of the ports, and how a test sets up the world around it."""

    kind: str
    api: LambdaApi
    alarms: AlarmsApi
    role: str
    _set_alarm: Any

    def request(self, name: str, body: str = "blue", **extra: Any) -> dict[str, Any]:
        return {
            "FunctionName": name,
            "Runtime": "python3.12",
            "Role": self.role,
            "Handler": "index.handler",
            "Code": {"ZipFile": code_zip(body)},
            "Description": "test function",
            "Timeout": 3,
            **extra,
        }

    async def set_alarm(self, name: str, state: str) -> None:
        await self._set_alarm(name, state)

    @staticmethod
    def new_name() -> str:
        return f"fn-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["fake", pytest.param("moto", marks=pytest.mark.integration)])
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    if request.param == "fake":
        fake = FakeAws(account=ACCOUNT, region=REGION)

        async def set_fake_alarm(name: str, state: str) -> None:
            fake.set_alarm(name, state)

        yield Target("fake", fake, fake, f"arn:aws:iam::{ACCOUNT}:role/glam-test", set_fake_alarm)
        return

    url = request.getfixturevalue("moto_url")
    async with open_clients(moto_config(url), ("lambda", "cloudwatch", "iam")) as clients:
        role = await clients["iam"].create_role(
            RoleName=f"glam-test-{uuid.uuid4().hex[:8]}",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )
        limiter = RateLimiter(rate=200, poll_rate=200)
        api = AwsLambda(
            clients.lambda_, limiter, policy=CallRetry(settle_poll=0.05, settle_timeout=10)
        )
        cloudwatch = clients.cloudwatch

        async def set_moto_alarm(name: str, state: str) -> None:
            await cloudwatch.put_metric_alarm(
                AlarmName=name,
                MetricName="Errors",
                Namespace="AWS/Lambda",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
            )
            await cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")

        yield Target(
            "moto",
            api,
            AwsAlarms(cloudwatch, RateLimiter(rate=200, poll_rate=200)),
            role["Role"]["Arn"],
            set_moto_alarm,
        )
