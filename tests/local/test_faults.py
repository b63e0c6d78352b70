"""The fault spec, the seeded injector, and each fault kind against the running proxy."""

from __future__ import annotations

import time

import aiohttp
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from engine.errors import UsageError
from engine.local import LocalAwsThread, parse_faults
from engine.local.faults import FaultInjector
from tests.local.conftest import Clients, ManualClock, make_function, published


def test_spec_round_trip() -> None:
    """A spec parses into rules and prints back in canonical form."""
    spec = parse_faults(
        "seed=7; UpdateAlias:throttle=0.3 ;PublishVersion:apply_then_fail=0.5;*:latency=50ms"
    )
    assert spec.seed == 7
    assert [r.operation for r in spec.rules] == ["UpdateAlias", "PublishVersion", "*"]
    assert spec.rules[2].latency == pytest.approx(0.05)
    assert str(spec) == (
        "seed=7;UpdateAlias:throttle=0.3;PublishVersion:apply_then_fail=0.5;*:latency=50ms"
    )
    assert parse_faults(str(spec)) == spec


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("seed=x", id="seed"),
        pytest.param("UpdateAlias", id="no-rule"),
        pytest.param("UpdateAlias:explode=0.1", id="unknown-kind"),
        pytest.param("UpdateAlias:throttle=1.5", id="share-above-one"),
        pytest.param("*:latency=fast", id="bad-duration"),
    ],
)
def test_bad_spec_is_a_usage_error(bad: str) -> None:
    """A malformed spec is refused with a hint showing the grammar."""
    with pytest.raises(UsageError) as exc:
        parse_faults(bad)
    assert "seed=" in (exc.value.hint or "")


def test_same_seed_same_faults() -> None:
    """The injector's choices depend only on the spec and the order of calls: replayable."""
    spec = parse_faults("seed=42;UpdateAlias:throttle=0.3,error=0.2;*:apply_then_fail=0.1")
    ops = ["UpdateAlias", "GetFunction", "PublishVersion"] * 50

    def run() -> list[str | None]:
        injector = FaultInjector(spec)
        return [injector.decide(op).kind for op in ops]

    first = run()
    assert first == run()
    assert {"throttle", "error", "apply_then_fail", None} <= set(first)
    other = FaultInjector(
        parse_faults("seed=43;UpdateAlias:throttle=0.3,error=0.2;*:apply_then_fail=0.1")
    )
    assert [other.decide(op).kind for op in ops] != first


@pytest.mark.anyio
@pytest.mark.integration
async def test_throttle_and_error(clients: Clients, aws: LocalAwsThread) -> None:
    """throttle answers 429 TooManyRequestsException, error 500 ServiceException; neither
    reaches moto."""
    aws.set_faults("CreateFunction:throttle=1")
    with pytest.raises(ClientError) as exc:
        await make_function(clients)
    assert exc.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    aws.set_faults("CreateFunction:error=1")
    with pytest.raises(ClientError) as exc:
        await make_function(clients)
    assert exc.value.response["Error"]["Code"] == "ServiceException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert (await clients.lambda_.list_functions())["Functions"] == []
    faults = [(e.operation, e.fault, e.status) for e in aws.journal if e.fault]
    assert faults == [("CreateFunction", "throttle", 429), ("CreateFunction", "error", 500)]


@pytest.mark.anyio
@pytest.mark.integration
async def test_apply_then_fail(clients: Clients, aws: LocalAwsThread, clock: ManualClock) -> None:
    """apply_then_fail forwards the call (it takes effect) and then answers 500."""
    await published(clients, clock, versions=1)
    aws.set_faults("CreateAlias:apply_then_fail=1")
    with pytest.raises(ClientError) as exc:
        await clients.lambda_.create_alias(FunctionName="fn", Name="PROD", FunctionVersion="1")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    aws.set_faults("")
    alias = await clients.lambda_.get_alias(FunctionName="fn", Name="PROD")
    assert alias["FunctionVersion"] == "1"
    (entry,) = aws.journal.calls("CreateAlias")
    assert (entry.fault, entry.status, entry.forwarded_status) == ("apply_then_fail", 500, 201)


@pytest.mark.anyio
@pytest.mark.integration
async def test_apply_then_drop(clients: Clients, aws: LocalAwsThread, clock: ManualClock) -> None:
    """apply_then_drop forwards the call and closes the connection without an answer."""
    await published(clients, clock, versions=1)
    aws.set_faults("CreateAlias:apply_then_drop=1")
    with pytest.raises(ConnectionClosedError):
        await clients.lambda_.create_alias(FunctionName="fn", Name="PROD", FunctionVersion="1")
    aws.set_faults("")
    alias = await clients.lambda_.get_alias(FunctionName="fn", Name="PROD")
    assert alias["FunctionVersion"] == "1"
    entry = aws.journal.calls("CreateAlias")[0]
    assert (entry.fault, entry.forwarded_status) == ("apply_then_drop", 201)


@pytest.mark.anyio
@pytest.mark.integration
async def test_latency(clients: Clients, aws: LocalAwsThread) -> None:
    """latency delays the answer by at least the given time."""
    aws.set_faults("ListFunctions:latency=300ms")
    started = time.perf_counter()
    await clients.lambda_.list_functions()
    assert time.perf_counter() - started >= 0.3
    assert aws.journal.calls("ListFunctions")[0].duration >= 0.3


@pytest.mark.anyio
@pytest.mark.integration
async def test_control_endpoint(aws: LocalAwsThread) -> None:
    """Faults are set and the journal is read over HTTP on the proxy itself."""
    base = aws.endpoint_url
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/_glam/faults", data="seed=5;GetFunction:throttle=1") as r:
            assert (await r.json())["spec"] == "seed=5;GetFunction:throttle=1"
        assert str(aws.aws.proxy.faults) == "seed=5;GetFunction:throttle=1"
        async with http.post(f"{base}/_glam/faults", data="x:y=z") as r:
            assert r.status == 400
        async with http.get(f"{base}/_glam/journal") as r:
            assert await r.json() == {"entries": []}
