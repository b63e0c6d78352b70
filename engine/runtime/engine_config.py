"""What an engine is told to do (``EngineConfig``) and what it tells of a watched branch
(``WatchedBranch``): plain values, made by ``glam run`` from its flags or a configuration
file (``engine.config``) and read by ``engine.runtime.engine.Engine``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.aws.ratelimit import DEFAULT_POLL_RATE, DEFAULT_RATE
from engine.aws.session import AwsConfig
from engine.errors import ConfigError
from engine.runtime.drift import DEFAULT_DRIFT_INTERVAL
from engine.runtime.fleet import Watch
from engine.runtime.leases import DEFAULT_TTL
from engine.saga import DEFAULT_POLICY, SagaPolicy
from engine.tokens import TokenRef

if TYPE_CHECKING:
    from engine.config.model import AccountSettings
    from engine.server.settings import ServerSettings
    from engine.traces import TraceSettings

DEFAULT_DB = Path(".glam") / "glam.db"


@dataclass(frozen=True, slots=True)
class WatchedBranch:
    """One watched branch, as the server shows it: ``branch`` None until the default branch
    is known, ``stream`` its repository stream (None until then too), ``fetched`` whether it
    was read at least once since the engine started, ``unavailable`` why the last look could
    not read it."""

    url: str
    branch: str | None
    stream: str | None
    fetched: bool
    unavailable: str | None


@dataclass(frozen=True)
class EngineConfig:
    """What ``glam run`` is told. ``watches`` are the branches watched (a configuration file);
    without them, the one branch ``branch`` of ``repo`` (``glam run --repo``). ``accounts``
    are the configured AWS accounts (``[[account]]``); a definition naming another account
    than these and the engine's own is refused at plan time. ``data_dir`` holds the
    repository mirrors (default: the database's folder); ``policy`` tunes the sagas' polls
    and retries."""

    repo: str = ""
    db: Path | str = DEFAULT_DB  # an SQLite file, or a postgresql:// URL
    # Where a PostgreSQL log's password is (read once at start; else libpq's PGPASSWORD or
    # PGPASSFILE), never the password itself.
    db_password: TokenRef | None = None
    branch: str | None = None
    region: str = "us-east-1"
    endpoint_url: str | None = None
    poll: float = 30.0
    ops_poll: float = 1.0  # how often the ``ops`` stream is read for operator commands
    max_parallel: int = 10
    token_env: str | None = None
    data_dir: Path | None = None
    policy: SagaPolicy = DEFAULT_POLICY
    max_rate: float = DEFAULT_RATE
    poll_rate: float = DEFAULT_POLL_RATE
    # Explicit credentials, for a local endpoint only (repr=False: never printed).
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    watches: tuple[Watch, ...] = ()
    accounts: tuple[AccountSettings, ...] = ()
    server: ServerSettings | None = None  # serve HTTP while running (``glam run --listen``)
    # One of several engines on one PostgreSQL log, each on the shards it leases
    # (engine.runtime.shared); ``lease_ttl`` seconds without a renewal end a lease.
    shared: bool = False
    lease_ttl: float = DEFAULT_TTL
    engine_id: str | None = None  # the name in the lease table (default: host, pid, random)
    # Seconds between two drift sweeps (engine.runtime.drift); 0: no sweep.
    drift_interval: float = DEFAULT_DRIFT_INTERVAL
    # Each finished deployment sent as an OpenTelemetry trace (engine.traces); None: off.
    traces: TraceSettings | None = None

    def watched(self) -> tuple[Watch, ...]:
        """The branches to watch: ``watches``, else ``repo``'s one; none at all for an engine
        that serves HTTP (it may be given repositories through the API)."""
        if self.watches:
            return self.watches
        if not self.repo:
            if self.server is not None:
                return ()
            raise ConfigError(
                "no repository to watch", hint="pass --repo, or --config with [[repository]]"
            )
        token = TokenRef("env", self.token_env) if self.token_env else None
        return (Watch(self.repo, self.branch, token=token),)

    def aws_config(self) -> AwsConfig:
        return AwsConfig(
            region=self.region,
            endpoint_url=self.endpoint_url,
            max_rate=self.max_rate,
            poll_rate=self.poll_rate,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
        )
