"""Fixtures of the embedded-AWS tests: one component on a frozen clock for the whole module
set, emptied before each test, and aiobotocore clients that never retry (so every fault and
refusal is seen as it is). Time passes only when a test moves the component's own clock."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from engine.local import Fidelity, LocalAwsThread
from engine.local.clients import Credentials, aws_client


def _frozen() -> float:
    """The base of the component's clock: it never moves on its own."""
    return 1000.0


class ManualClock:
    """The component's clock as a test moves it: fidelity timers, quota windows and
    latencies read it, and ``advance`` is the component's own ``advance_clock``."""

    def __init__(self, aws: LocalAwsThread) -> None:
        self._aws = aws

    def advance(self, seconds: float) -> None:
        self._aws.advance_clock(seconds)


# Timers long enough that nothing expires unless the test moves the clock.
FIDELITY = Fidelity(pending_seconds=5, update_seconds=5)


@pytest.fixture(scope="session")
def _manual_aws() -> Iterator[LocalAwsThread]:
    with LocalAwsThread(fidelity=FIDELITY, clock=_frozen) as aws:
        yield aws


@pytest.fixture
def clock(_manual_aws: LocalAwsThread) -> ManualClock:
    return ManualClock(_manual_aws)


@pytest.fixture
def aws(_manual_aws: LocalAwsThread, clock: ManualClock) -> LocalAwsThread:
    _manual_aws.reset()
    # A fresh second for every test, so the quota window never carries over.
    clock.advance(10)
    return _manual_aws


class Clients:
    """Plain aiobotocore clients pointed at the proxy, by service name: ``c.lambda_``."""

    def __init__(self, clients: dict[str, Any]) -> None:
        self._clients = clients

    def __getattr__(self, name: str) -> Any:
        return self._clients[name.rstrip("_")]


SERVICES = ("lambda", "iam", "sqs", "sts", "secretsmanager", "ssm")


async def open_clients(
    stack: AsyncExitStack, endpoint_url: str, credentials: Credentials = ("testing", "testing")
) -> Clients:
    """Clients of ``SERVICES`` acting with ``credentials``, closed with ``stack``."""
    made = {
        name: await stack.enter_async_context(
            aws_client(name, endpoint_url, credentials=credentials)
        )
        for name in SERVICES
    }
    return Clients(made)


@pytest.fixture
async def clients(aws: LocalAwsThread) -> AsyncIterator[Clients]:
    async with AsyncExitStack() as stack:
        yield await open_clients(stack, aws.endpoint_url)


def code() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("h.py", "def handler(event, context):\n    return 1\n")
    return buf.getvalue()


async def make_function(c: Clients, name: str = "fn") -> str:
    """Create a function; return its role ARN."""
    try:
        role = (await c.iam.get_role(RoleName="exec"))["Role"]["Arn"]
    except c.iam.exceptions.NoSuchEntityException:
        role = (await c.iam.create_role(RoleName="exec", AssumeRolePolicyDocument="{}"))["Role"][
            "Arn"
        ]
    await c.lambda_.create_function(
        FunctionName=name,
        Role=role,
        Runtime="python3.11",
        Handler="h.handler",
        Code={"ZipFile": code()},
    )
    return str(role)


async def published(c: Clients, clock: ManualClock, name: str = "fn", versions: int = 2) -> None:
    """A function that is Active with ``versions`` published versions."""
    await make_function(c, name)
    clock.advance(FIDELITY.pending_seconds)
    for i in range(versions):
        if i:
            await c.lambda_.update_function_configuration(FunctionName=name, Description=str(i))
            clock.advance(FIDELITY.update_seconds)
        await c.lambda_.publish_version(FunctionName=name)
