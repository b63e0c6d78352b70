"""Where the engine gets its ports: per account and region.

A function names its region and account in its deployment definition (default: the engine's
region, and the account its own credentials are for), so the engine needs a LambdaApi,
AlarmsApi and SourcesApi per account and region, paced by limiters shared per service,
account and region (Lambda's calls on Lambda's, ELB's and API Gateway's on their own): every
saga of every repository in one account and region shares them. ``AwsProvider`` opens
aiobotocore clients lazily, the first time an account and region are needed, with the
engine's own credentials or those of the role it assumes in a configured account
(``engine.aws.accounts``), and closes them all on ``aclose``. ``engine.testing.FakeProvider``
serves the in-memory fakes for the fast tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import anyio

from engine.aws.ratelimit import LimiterRegistry
from engine.aws.session import AwsClients, AwsConfig, open_clients
from engine.metrics import NO_METRICS, Metrics
from engine.ports import AlarmsApi, Clock, CodeObjects, LambdaApi, SecretsApi, SourcesApi
from engine.runtime.clock import SYSTEM_CLOCK
from engine.sources_plan import SOURCE_CLIENTS

if TYPE_CHECKING:
    from engine.aws.accounts import AccountSessions
    from engine.config.model import AccountSettings

# Services a region's ports use.
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
    # The same ports on the background lane of the same limiters (engine.aws.ratelimit), for
    # reads no deployment waits on: the drift sweep. None: the drift sweep uses the ports above.
    background: RegionPorts | None = None


class PortsProvider(Protocol):
    """What the engine asks for AWS access."""

    async def account(self) -> str:
        """The account id of the engine's own credentials."""
        ...

    async def region(self, region: str, account: str | None = None) -> RegionPorts:
        """The ports of ``region`` in ``account`` (None: the engine's own), made on first
        use and then shared; ``AccountNotConfigured`` for an account the engine cannot act
        in."""
        ...

    def secrets(self) -> SecretsApi | None:
        """Where repository tokens kept in Secrets Manager or SSM are read, if anywhere."""
        ...

    def configure(self, accounts: Mapping[str, AccountSettings]) -> None:
        """The configured accounts changed (a configuration reloaded): act in these from now
        on."""
        ...

    async def aclose(self) -> None: ...


class AwsProvider:
    """Real AWS (or the embedded one when ``config.endpoint_url`` is set). ``accounts`` are
    the configured ones by id (``[[account]]``): each one's role is assumed with the engine's
    own credentials; ``registry`` paces every call; ``clock`` paces, backs off and times out
    every adapter (the engine passes its own)."""

    def __init__(
        self,
        config: AwsConfig,
        registry: LimiterRegistry | None = None,
        *,
        accounts: Mapping[str, AccountSettings] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        from engine.aws.accounts import AccountSessions

        self.config = config
        self.clock = clock
        accounts = dict(accounts or {})
        self.limiters = registry or LimiterRegistry(
            rate=config.max_rate,
            poll_rate=config.poll_rate,
            account_rates={a.id: a.rate for a in accounts.values() if a.rate is not None},
            clock=clock,
            on_wait=metrics.rate_wait,
        )
        self.metrics = metrics  # every AWS call and limiter wait is reported here
        self.sessions: AccountSessions = AccountSessions(config, accounts, metrics=metrics)
        self._stack = AsyncExitStack()
        self._ports: dict[tuple[str, str], RegionPorts] = {}
        self._secrets: SecretsApi | None = None
        # Two sagas may ask for a new account and region at once: open its clients only once.
        self._lock = anyio.Lock()

    async def account(self) -> str:
        return await self.sessions.own_account()

    async def region(self, region: str, account: str | None = None) -> RegionPorts:
        own = await self.account()
        account = account or own
        ports = self._ports.get((account, region))
        if ports is not None:
            return ports
        session = await self.sessions.session(account)  # AccountNotConfigured, AwsError
        async with self._lock:
            ports = self._ports.get((account, region))
            if ports is None:
                config = replace(self.config, region=region)
                # Shielded: a cancellation half way through would leave a client open.
                with anyio.CancelScope(shield=True):
                    clients = await self._stack.enter_async_context(
                        open_clients(
                            config, _REGION_SERVICES, session=session, metrics=self.metrics
                        )
                    )
                ports = self._build(region, account, clients)
                self._ports[(account, region)] = ports
        return ports

    def configure(self, accounts: Mapping[str, AccountSettings]) -> None:
        old = self.sessions.accounts
        changed = {a for a in set(old) | set(accounts) if old.get(a) != accounts.get(a)}
        # Ports made with a role that changed or went away are made again on next use (their
        # clients stay open until the provider closes: a reload is rare).
        for key in [k for k in self._ports if k[0] in changed]:
            del self._ports[key]
        self.sessions.configure(accounts)
        self.limiters.account_rates.update(
            {a.id: a.rate for a in accounts.values() if a.rate is not None}
        )

    def secrets(self) -> SecretsApi:
        if self._secrets is None:
            from engine.aws.secrets import AwsSecrets

            self._secrets = AwsSecrets(self.config, metrics=self.metrics)
        return self._secrets

    def _build(self, region: str, account: str, clients: AwsClients) -> RegionPorts:
        # Imported here: only the runtime that talks to AWS needs the adapters loaded.
        from engine.aws.alarms import AwsAlarms
        from engine.aws.code_objects import AwsCodeObjects
        from engine.aws.lambda_api import AwsLambda
        from engine.aws.ratelimit import Background
        from engine.aws.sources import AwsSources

        limiter = self.limiters.get(account, region)
        lanes = {s: self.limiters.get(account, region, s) for s in SOURCE_CLIENTS}
        background = RegionPorts(
            region=region,
            lambda_api=AwsLambda(clients.lambda_, Background(limiter), clock=self.clock),
            alarms=AwsAlarms(clients.cloudwatch),
            sources=AwsSources(
                {service: clients[service] for service in SOURCE_CLIENTS},
                limiters={s: Background(lane) for s, lane in lanes.items()},
                region=region,
                account=account,
                clock=self.clock,
            ),
        )
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
                limiters=dict(lanes),
                region=region,
                account=account,
                clock=self.clock,
            ),
            code=AwsCodeObjects(clients["s3"], self.limiters.get(account, region, "s3")),
            background=background,
        )

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._stack.aclose()
            if self._secrets is not None:
                from engine.aws.secrets import AwsSecrets

                assert isinstance(self._secrets, AwsSecrets)
                await self._secrets.aclose()
            await self.sessions.aclose()
        self._ports.clear()
