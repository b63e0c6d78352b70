"""AwsBackend's own rules, with a stub client: pacing, retries, and "already gone"."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from engine.aws.lambda_api import CallRetry
from engine.aws.ratelimit import LimiterRegistry, RateLimiter
from engine.aws.sources_backend import AwsBackend
from engine.errors import AwsAmbiguous, AwsInvalid
from tests.aws.test_ratelimit import FakeTime
from tests.builders import StepClock

pytestmark = pytest.mark.anyio


def client_error(code: str, status: int, operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


class StubLambda:
    """Answers from a script: each call pops the next exception or answer."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.calls: list[str] = []

    async def _next(self, name: str) -> dict[str, Any]:
        self.calls.append(name)
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return dict(item)

    async def create_event_source_mapping(self, **_: Any) -> dict[str, Any]:
        return await self._next("CreateEventSourceMapping")

    async def delete_event_source_mapping(self, **_: Any) -> dict[str, Any]:
        return await self._next("DeleteEventSourceMapping")


def backend(stub: StubLambda, sleeps: list[float]) -> AwsBackend:
    clock = StepClock(slept=sleeps)
    return AwsBackend({"lambda": stub}, policy=CallRetry(attempts=3), clock=clock)


async def test_throttling_is_retried_with_backoff() -> None:
    sleeps: list[float] = []
    stub = StubLambda(
        [client_error("TooManyRequestsException", 429, "CreateEventSourceMapping"), {"UUID": "u"}]
    )
    answer = await backend(stub, sleeps).create_mapping({"EventSourceArn": "arn"})
    assert answer == {"UUID": "u"}
    assert len(stub.calls) == 2
    assert len(sleeps) == 1


async def test_an_ambiguous_mutation_is_not_repeated() -> None:
    """A 5xx on a create may have created it: the next run reads instead of repeating."""
    stub = StubLambda([client_error("ServiceException", 500, "CreateEventSourceMapping")])
    with pytest.raises(AwsAmbiguous):
        await backend(stub, []).create_mapping({"EventSourceArn": "arn"})
    assert len(stub.calls) == 1


async def test_invalid_request_is_not_retried() -> None:
    stub = StubLambda([client_error("InvalidParameterValueException", 400, "Create")])
    with pytest.raises(AwsInvalid):
        await backend(stub, []).create_mapping({"EventSourceArn": "arn"})
    assert len(stub.calls) == 1


async def test_deleting_what_is_gone_succeeds() -> None:
    stub = StubLambda([client_error("ResourceNotFoundException", 404, "Delete")])
    await backend(stub, []).delete_mapping("u")
    assert stub.calls == ["DeleteEventSourceMapping"]


class StubClient:
    """Any operation answers ``{}`` and is noted with the clock's time."""

    def __init__(self, service: str, log: list[tuple[str, str, float]], time: FakeTime) -> None:
        self._service = service
        self._log = log
        self._time = time

    def __getattr__(self, name: str) -> Any:
        async def call(**_: Any) -> dict[str, Any]:
            self._log.append((self._service, name, self._time.time))
            return {}

        return call


def paced_backend() -> tuple[AwsBackend, dict[str, RateLimiter], FakeTime, list[Any]]:
    t = FakeTime()
    # Lambda at 1 call/s: a Lambda token taken by anything else makes the next Lambda call
    # wait a whole second, which the tests below would see.
    registry = LimiterRegistry(rate=1, clock=t)
    limiters = {
        s: registry.get("123456789012", "us-east-1", s) for s in ("lambda", "elbv2", "apigatewayv2")
    }
    log: list[Any] = []
    backend = AwsBackend({s: StubClient(s, log, t) for s in limiters}, limiters=limiters, clock=t)
    return backend, limiters, t, log


async def test_an_elb_call_does_not_take_a_lambda_token() -> None:
    backend, limiters, t, log = paced_backend()
    await limiters["lambda"].acquire()  # Lambda's only token of this second
    await backend.target_ids("arn:tg")
    await backend.register_target("arn:tg", "arn:fn:live")
    assert [(s, op) for s, op, _ in log] == [
        ("elbv2", "describe_target_health"),
        ("elbv2", "register_targets"),
    ]
    # Paced at ELB's own rate, not held back by Lambda's spent budget.
    assert log[0][2] == 1000.0
    assert log[1][2] == pytest.approx(1000.0 + 1 / limiters["elbv2"].rate)
    # Lambda's next slot is where its own last call left it: one second after it.
    await limiters["lambda"].acquire()
    assert t.time == pytest.approx(1001.0)


async def test_an_api_gateway_call_does_not_take_a_lambda_token() -> None:
    backend, limiters, t, log = paced_backend()
    await backend.integrations("api")
    await backend.get_route("api", "route")
    await limiters["lambda"].acquire()
    assert t.time == pytest.approx(1000.0 + 1 / limiters["apigatewayv2"].rate)
    assert [s for s, _, _ in log] == ["apigatewayv2", "apigatewayv2"]


async def test_lambda_source_calls_stay_on_lambdas_limiter() -> None:
    """ListEventSourceMappings and AddPermission spend Lambda's budget (its quota)."""
    backend, _, _, log = paced_backend()
    await backend.list_mappings("orders:live")
    await backend.add_permission("orders", "live", "sid", "elasticloadbalancing.amazonaws.com", "a")
    assert [(s, op) for s, op, _ in log] == [
        ("lambda", "list_event_source_mappings"),
        ("lambda", "add_permission"),
    ]
    assert log[1][2] == pytest.approx(1001.0)  # Lambda's 1/s pacing
