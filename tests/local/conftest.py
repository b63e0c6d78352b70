"""Fixtures of the embedded-AWS tests: one component on a manual clock for the whole module
set, emptied before each test, and aiobotocore clients that never retry (so every fault and
refusal is seen as it is)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from engine.local import Fidelity, LocalAwsThread
from engine.local.clients import aws_client


class ManualClock:
    """A clock the test moves: fidelity timers and the quota window read it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# Timers long enough that nothing expires unless the test moves the clock.
FIDELITY = Fidelity(pending_seconds=5, update_seconds=5)


@pytest.fixture(scope="session")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def _manual_aws(clock: ManualClock) -> Iterator[LocalAwsThread]:
    with LocalAwsThread(fidelity=FIDELITY, clock=clock) as aws:
        yield aws


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


@pytest.fixture
async def clients(aws: LocalAwsThread) -> AsyncIterator[Clients]:
    async with AsyncExitStack() as stack:
        made = {
            name: await stack.enter_async_context(aws_client(name, aws.endpoint_url))
            for name in ("lambda", "iam", "sqs")
        }
        yield Clients(made)


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
