"""AwsBackend's own rules, with a stub client: pacing, retries, and "already gone"."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from engine.aws.lambda_api import RetryPolicy
from engine.aws.sources import AwsBackend
from engine.errors import AwsAmbiguous, AwsInvalid

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
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return AwsBackend(stub, None, None, policy=RetryPolicy(attempts=3), sleep=sleep)


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
