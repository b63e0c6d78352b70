"""AwsLambda retries only what is safe to repeat, and waits out updates in progress."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from engine.aws.lambda_api import AwsLambda, CallRetry
from engine.aws.ratelimit import RateLimiter
from engine.errors import AwsAmbiguous, AwsConflict, AwsError, AwsThrottled
from tests.builders import StepClock

pytestmark = pytest.mark.anyio

_MODEL = botocore.session.get_session().get_service_model("lambda")


class Meta:
    service_model = _MODEL


def error(code: str, status: int, message: str = "x", **headers: str) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers},
    }
    return ClientError(response, "Op")


def config(status: str = "Successful", state: str = "Active") -> dict[str, Any]:
    return {
        "FunctionName": "f",
        "FunctionArn": "arn:f",
        "Version": "$LATEST",
        "State": state,
        "LastUpdateStatus": status,
        "CodeSha256": "c",
        "RevisionId": "r",
    }


class StubClient:
    """Answers each method from a script: an exception to raise or a value to return."""

    meta = Meta()

    def __init__(self, **scripts: list[Any]) -> None:
        self.scripts = {k: deque(v) for k, v in scripts.items()}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Any:
        async def call(**kwargs: Any) -> Any:
            self.calls.append((method, kwargs))
            item = self.scripts[method].popleft()
            if isinstance(item, BaseException):
                raise item
            return item

        return call

    def methods(self) -> list[str]:
        return [m for m, _ in self.calls]


Clock = StepClock


def adapter(client: StubClient, clock: Clock, **policy: Any) -> tuple[AwsLambda, RateLimiter]:
    limiter = RateLimiter(rate=1000, poll_rate=1000, clock=clock)
    api = AwsLambda(
        client,
        limiter,
        policy=CallRetry(**policy),
        clock=clock,
        rng=random.Random(7),
    )
    return api, limiter


async def test_throttling_is_retried_and_pauses_the_limiter() -> None:
    clock = Clock()
    client = StubClient(
        update_alias=[
            error("TooManyRequestsException", 429, **{"retry-after": "3"}),
            {"Name": "live", "FunctionVersion": "2", "AliasArn": "arn:f:live", "RevisionId": "a"},
        ]
    )
    api, limiter = adapter(client, clock)
    alias = await api.update_alias("f", "live", "2", None)
    assert alias.function_version == "2"
    assert client.methods() == ["update_alias", "update_alias"]
    assert limiter.paused_until == pytest.approx(3.0)
    assert clock.time >= 3.0
    # AIMD: the 429 halved the rate; it climbs back by 1 call/s per second from there.
    assert 500 <= limiter.current_rate() < 510
    assert client.calls[0][1]["RoutingConfig"] == {"AdditionalVersionWeights": {}}


async def test_throttling_gives_up_after_the_attempts() -> None:
    clock = Clock()
    client = StubClient(publish_version=[error("TooManyRequestsException", 429)] * 3)
    api, _ = adapter(client, clock, attempts=3)
    with pytest.raises(AwsThrottled):
        await api.publish_version("f", description="d", code_sha256=None, revision_id=None)
    assert len(client.calls) == 3
    assert all(0 < s <= 8.0 for s in clock.slept)


async def test_a_5xx_on_a_mutation_is_ambiguous_and_not_repeated() -> None:
    clock = Clock()
    client = StubClient(publish_version=[error("ServiceException", 500)])
    api, _ = adapter(client, clock)
    with pytest.raises(AwsAmbiguous):
        await api.publish_version("f", description="d-1", code_sha256="c", revision_id="r")
    assert len(client.calls) == 1
    assert client.calls[0][1] == {
        "FunctionName": "f",
        "Description": "d-1",
        "CodeSha256": "c",
        "RevisionId": "r",
    }


async def test_a_5xx_on_a_read_is_retried() -> None:
    clock = Clock()
    client = StubClient(
        get_alias=[
            error("ServiceException", 503),
            {
                "Name": "live",
                "FunctionVersion": "1",
                "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.1}},
            },
        ]
    )
    api, _ = adapter(client, clock)
    alias = await api.get_alias("f", "live")
    assert alias is not None
    assert alias.routing == {"2": 0.1}
    assert len(client.calls) == 2


async def test_conflict_waits_for_last_update_status_then_repeats() -> None:
    clock = Clock()
    in_progress = error("ResourceConflictException", 409, "An update is in progress")
    client = StubClient(
        update_function_code=[in_progress, config("InProgress")],
        get_function=[
            {"Configuration": config("InProgress")},
            {"Configuration": config("Successful")},
        ],
    )
    api, _ = adapter(client, clock, settle_poll=1.0)
    info = await api.update_function_code("f", {"ZipFile": b"zip"})
    assert info.last_update_status == "InProgress"
    assert client.methods() == [
        "update_function_code",
        "get_function",
        "get_function",
        "update_function_code",
    ]


async def test_conflict_gives_up_at_the_settle_deadline() -> None:
    clock = Clock()
    in_progress = error("ResourceConflictException", 409, "An update is in progress")
    client = StubClient(
        update_function_configuration=[in_progress] * 10,
        get_function=[{"Configuration": config("InProgress")}] * 20,
    )
    api, _ = adapter(client, clock, settle_poll=1.0, settle_timeout=5.0)
    with pytest.raises(AwsConflict):
        await api.update_function_configuration("f", {"Timeout": 3})
    assert clock.time <= 7.0


async def test_update_configuration_sends_only_fields_the_operation_accepts() -> None:
    clock = Clock()
    client = StubClient(update_function_configuration=[config()])
    api, _ = adapter(client, clock)
    await api.update_function_configuration(
        "f",
        {
            "FunctionName": "f",
            "Code": {"ZipFile": "eA=="},
            "Publish": True,
            "Tags": {},
            "Timeout": 9,
            "MemorySize": 256,
        },
        revision_id="r1",
    )
    sent = client.calls[0][1]
    assert sent == {"FunctionName": "f", "Timeout": 9, "MemorySize": 256, "RevisionId": "r1"}


async def test_base64_zip_text_is_sent_as_bytes() -> None:
    clock = Clock()
    client = StubClient(create_function=[config(state="Pending")])
    api, _ = adapter(client, clock)
    await api.create_function({"FunctionName": "f", "Role": "r", "Code": {"ZipFile": "aGVsbG8="}})
    assert client.calls[0][1]["Code"] == {"ZipFile": b"hello"}


async def test_missing_things_and_deletes() -> None:
    clock = Clock()
    missing = error("ResourceNotFoundException", 404)
    client = StubClient(get_function=[missing], delete_function=[missing])
    api, _ = adapter(client, clock)
    assert await api.get_function("f") is None
    await api.delete_version("f", "3")
    with pytest.raises(AwsError):
        await api.delete_version("f", "$LATEST")
