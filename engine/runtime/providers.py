"""Where the engine gets its ports: per region, for the one account its credentials belong to.

A function names its region in its deployment definition (default: ``--region``), so the
engine needs a LambdaApi, AlarmsApi and SourcesApi per region, paced by limiters shared per
service, account and region (Lambda's calls on Lambda's, ELB's and API Gateway's on their
own). ``AwsProvider`` opens aiobotocore clients lazily, the first time a region is needed, and
closes them all on ``aclose``. ``engine.testing.FakeProvider`` serves the in-memory fakes
for the fast tests.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Protocol

import anyio

from engine.aws.ratelimit import LimiterRegistry
from engine.aws.session import AwsClients, AwsConfig, caller_account, open_clients
from engine.ports import AlarmsApi, Clock, CodeObjects, LambdaApi, SourcesApi
from engine.runtime.clock import SYSTEM_CLOCK
from engine.sources_plan import SOURCE_CLIENTS

# Services a region's ports use. STS only for the account, in the default region.
_REGION_SERVICES = tuple(dict.fromkeys(("lambda", "cloudwatch", "s3", *SOURCE_CLIENTS)))


@dataclass(frozen=True, slots=True)
class RegionPorts:
    """The ports of one account and region."""

    region: str
    lambda_api: LambdaApi
    alarms: AlarmsApi
    sources: SourcesApi
    # S3, for the CodeSha256 of code the log has no record of (None: such code counts as
    # changed).
    code: CodeObjects | None = None


class PortsProvider(Protocol):
    """What the engine asks for AWS access."""

    async def account(self) -> str:
        """The account id of the credentials in use."""
        ...

    async def region(self, region: str) -> RegionPorts:
        """The ports of ``region``, made on first use and then shared."""
        ...

    async def aclose(self) -> None: ...


class AwsProvider:
    """Real AWS (or the embedded one when ``config.endpoint_url`` is set). ``clock`` paces,
    backs off and times out every adapter (the engine passes its own)."""

    def __init__(
        self,
        config: AwsConfig,
        registry: LimiterRegistry | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.config = config
        self.clock = clock
        self.limiters = registry or LimiterRegistry(
            rate=config.max_rate, poll_rate=config.poll_rate, clock=clock
        )
        self._stack = AsyncExitStack()
        self._ports: dict[str, RegionPorts] = {}
        self._account: str | None = None
        # Two sagas may ask for a new region at once: open its clients only once.
        self._lock = anyio.Lock()

    async def account(self) -> str:
        if self._account is None:
            async with self._lock:
                if self._account is None:
                    clients = await self._open(self.config.region, ("sts",))
                    self._account = await caller_account(clients.sts)
        return self._account

    async def region(self, region: str) -> RegionPorts:
        ports = self._ports.get(region)
        if ports is not None:
            return ports
        account = await self.account()
        async with self._lock:
            ports = self._ports.get(region)
            if ports is None:
                ports = self._build(region, account, await self._open(region, _REGION_SERVICES))
                self._ports[region] = ports
        return ports

    async def _open(self, region: str, services: tuple[str, ...]) -> AwsClients:
        config = replace(self.config, region=region)
        # Shielded: a cancellation half way through would leave a client open outside the stack.
        with anyio.CancelScope(shield=True):
            clients = await self._stack.enter_async_context(open_clients(config, services))
        return clients

    def _build(self, region: str, account: str, clients: AwsClients) -> RegionPorts:
        # Imported here: only the runtime that talks to AWS needs the adapters loaded.
        from engine.aws.alarms import AwsAlarms
        from engine.aws.code_objects import AwsCodeObjects
        from engine.aws.lambda_api import AwsLambda
        from engine.aws.sources import AwsSources

        limiter = self.limiters.get(account, region)
        return RegionPorts(
            region=region,
            lambda_api=AwsLambda(clients.lambda_, limiter, clock=self.clock),
            # CloudWatch has quotas of its own: its polls must not eat Lambda's budget.
            alarms=AwsAlarms(clients.cloudwatch),
            sources=AwsSources(
                {service: clients[service] for service in SOURCE_CLIENTS},
                # Each service on its own limiter (Lambda's is the one above): ELB and API
                # Gateway have quotas of their own, and pacing them on Lambda's would spend
                # its 15 requests/second on other services.
                limiters={s: self.limiters.get(account, region, s) for s in SOURCE_CLIENTS},
                region=region,
                account=account,
                clock=self.clock,
            ),
            code=AwsCodeObjects(clients["s3"], self.limiters.get(account, region, "s3")),
        )

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._stack.aclose()
        self._ports.clear()
