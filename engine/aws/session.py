"""aiobotocore clients for one account and region, configured the way glam needs them.

botocore's own retries are switched off (``total_max_attempts=1``; botocore's ``max_attempts``
counts retries after the first call, so ``max_attempts=1`` would still repeat once): a blind
retry of a mutation whose first attempt timed out could publish a second version or shift an
alias twice. glam retries itself, knowing which calls are safe to repeat
(engine/aws/lambda_api.py). Timeouts are explicit so a silent endpoint becomes an error instead
of a hung saga. Credentials come from the usual chain (environment, profile, SSO, instance role)
unless given explicitly for a local endpoint.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiobotocore.session import AioSession  # noqa: TID251 - this is the AWS adapter
from botocore.config import Config
from botocore.loaders import create_loader

from engine.aws.errors import THROTTLING_CODES, translate
from engine.aws.ratelimit import DEFAULT_POLL_RATE, DEFAULT_RATE
from engine.errors import AwsError
from engine.metrics import NO_METRICS, Metrics
from engine.sources_plan import SOURCE_CLIENTS

# Every client glam uses: Lambda, CloudWatch for alarms, the event sources' services, STS.
ALL_SERVICES: tuple[str, ...] = tuple(
    dict.fromkeys(("lambda", "cloudwatch", *SOURCE_CLIENTS, "sts"))
)


@dataclass(frozen=True)
class AwsConfig:
    """Where and how to talk to AWS. ``endpoint_url`` points every client at one endpoint
    (the embedded AWS of ``glam aws-local``); ``None`` means real AWS."""

    region: str = "us-east-1"
    endpoint_url: str | None = None
    profile: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_rate: float = DEFAULT_RATE  # mutating calls per second, per account and region
    poll_rate: float = DEFAULT_POLL_RATE  # GetFunction polls per second
    max_pool_connections: int = 50
    # Explicit credentials, for a local endpoint only; never printed (repr=False).
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    def botocore_config(self) -> Config:
        """The botocore ``Config``: no botocore retries, explicit timeouts."""
        return Config(
            region_name=self.region,
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_pool_connections=self.max_pool_connections,
            user_agent_extra="glam",
        )


@dataclass
class AwsClients:
    """Open aiobotocore clients by botocore service name (``clients["elbv2"]``), with
    accessors for the ones the engine itself uses."""

    config: AwsConfig
    _clients: dict[str, Any]
    _account: str | None = None

    def __getitem__(self, service: str) -> Any:
        try:
            return self._clients[service]
        except KeyError:
            raise KeyError(f"AWS client {service!r} was not opened") from None

    @property
    def lambda_(self) -> Any:
        return self["lambda"]

    @property
    def cloudwatch(self) -> Any:
        return self["cloudwatch"]

    @property
    def sts(self) -> Any:
        return self["sts"]

    async def caller_account(self) -> str:
        """The account id of the credentials in use (STS GetCallerIdentity), cached."""
        if self._account is None:
            self._account = await caller_account(self["sts"])
        return self._account


# The service models are read-only data: parse their JSON once per process, not once per
# session (a few tenths of a second per client otherwise).
_LOADER = create_loader()


def new_session(config: AwsConfig) -> AioSession:
    """An aiobotocore session with the engine's own credentials: the usual chain (or the
    profile of ``config``), unless ``config`` gives explicit ones (passed per client)."""
    session = AioSession(profile=config.profile) if config.profile else AioSession()
    session.register_component("data_loader", _LOADER)
    return session


@asynccontextmanager
async def open_clients(
    config: AwsConfig,
    services: Sequence[str] = ALL_SERVICES,
    *,
    session: AioSession | None = None,
    metrics: Metrics = NO_METRICS,
) -> AsyncIterator[AwsClients]:
    """Open one client per service for ``config``; all are closed on exit. ``session`` gives
    other credentials than the engine's own (an assumed role's, ``engine.aws.accounts``): its
    clients then ignore ``config``'s explicit keys. Every request each client makes is
    reported to ``metrics`` (``watch_calls``)."""
    assumed = session is not None
    session = session if session is not None else new_session(config)
    kwargs: dict[str, Any] = {
        "region_name": config.region,
        "config": config.botocore_config(),
    }
    if config.endpoint_url:
        kwargs["endpoint_url"] = config.endpoint_url
    if not assumed and config.access_key_id and config.secret_access_key:
        kwargs["aws_access_key_id"] = config.access_key_id
        kwargs["aws_secret_access_key"] = config.secret_access_key
        if config.session_token:
            kwargs["aws_session_token"] = config.session_token
    async with AsyncExitStack() as stack:
        clients: dict[str, Any] = {}
        for service in services:
            try:
                client = await stack.enter_async_context(session.create_client(service, **kwargs))
            except AwsError:
                raise
            except Exception as exc:  # profile not found, bad region, unknown service...
                raise translate(exc, f"open {service} client", mutating=False) from exc
            if metrics is not NO_METRICS:
                watch_calls(client, metrics)
            clients[service] = client
        yield AwsClients(config, clients)


_STARTED = "glam_started"  # where the request's start time waits in botocore's context


def watch_calls(client: Any, metrics: Metrics) -> None:
    """Report every request ``client`` makes to ``metrics``: its service, operation, HTTP
    status (``error`` when no answer came) and latency, and each throttling answer. Hooked on
    botocore's own call events, so no adapter can make a call that is not counted."""
    service = str(client.meta.service_model.service_name)

    def before(context: dict[str, Any], model: Any = None, **_: Any) -> None:
        context[_STARTED] = (time.perf_counter(), getattr(model, "name", "?"))

    def after(
        http_response: Any, parsed: Any, context: dict[str, Any], model: Any = None, **_: Any
    ) -> None:
        started, operation = context.get(_STARTED, (time.perf_counter(), "?"))
        status = getattr(http_response, "status_code", None)
        metrics.aws_call(service, operation, str(status or "error"), time.perf_counter() - started)
        code = (parsed or {}).get("Error", {}).get("Code") if isinstance(parsed, dict) else None
        if status == 429 or code in THROTTLING_CODES:
            metrics.throttled(service, operation)

    def failed(context: dict[str, Any], **_: Any) -> None:
        started, operation = context.get(_STARTED, (time.perf_counter(), "?"))
        metrics.aws_call(service, operation, "error", time.perf_counter() - started)

    events = client.meta.events
    events.register("before-call", before)
    events.register("after-call", after)
    events.register("after-call-error", failed)


async def caller_account(sts_client: Any) -> str:
    """The 12-digit account id behind ``sts_client``'s credentials."""
    try:
        answer = await sts_client.get_caller_identity()
    except Exception as exc:
        raise translate(exc, "GetCallerIdentity", mutating=False) from exc
    return str(answer["Account"])


@dataclass
class AwsPorts:
    """Everything the runtime needs for one account and region, ready to use."""

    account: str
    region: str
    lambda_api: Any  # engine.aws.lambda_api.AwsLambda (a LambdaApi)
    alarms: Any  # engine.aws.alarms.AwsAlarms (an AlarmsApi)
    limiter: Any  # the shared RateLimiter of (account, region)
    clients: AwsClients


@asynccontextmanager
async def open_aws(
    config: AwsConfig, registry: Any | None = None, services: Sequence[str] = ALL_SERVICES
) -> AsyncIterator[AwsPorts]:
    """Open the clients, learn the account (STS), and build the adapters on the shared limiter
    of that account and region (from ``registry``, a ``LimiterRegistry``; a new one by default,
    with ``config.max_rate`` / ``config.poll_rate``)."""
    # Imported here: the adapters import this package's errors, not the other way round.
    from engine.aws.alarms import AwsAlarms
    from engine.aws.lambda_api import AwsLambda
    from engine.aws.ratelimit import LimiterRegistry, RateLimiter

    wanted = tuple(dict.fromkeys((*services, "lambda", "cloudwatch", "sts")))
    async with open_clients(config, wanted) as clients:
        account = await clients.caller_account()
        reg = (
            registry
            if registry is not None
            else LimiterRegistry(rate=config.max_rate, poll_rate=config.poll_rate)
        )
        limiter = reg.get(account, config.region)
        yield AwsPorts(
            account=account,
            region=config.region,
            lambda_api=AwsLambda(clients.lambda_, limiter),
            # CloudWatch has its own quotas; alarm polls must not eat Lambda's budget.
            alarms=AwsAlarms(clients.cloudwatch, RateLimiter(rate=5.0, poll_rate=5.0)),
            limiter=limiter,
            clients=clients,
        )
