"""The configuration ``glam run`` builds: the engine's from flags and the configuration file
(``engine_config``, ``engine_config_from``), its HTTP server (``server_settings``,
``file_server``), its traces (``tracing``) and shared mode. Other commands that talk to AWS
as the engine does (``glam plan --live``, ``glam drift``) build theirs here too.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

from engine.cli.common import db_location
from engine.errors import UsageError

if TYPE_CHECKING:
    from engine.config.model import GlamConfig, TracesSection
    from engine.runtime.engine import EngineConfig
    from engine.server.settings import ServerSettings


def tracing(
    config: EngineConfig, flag: str | None, section: TracesSection | None = None
) -> EngineConfig:
    """``config`` exporting traces where ``engine.traces.exporter.settings_from`` says:
    ``--otlp-endpoint``, the OTel variable or the file's ``[traces]``; unchanged (off) else."""
    from engine.traces.exporter import settings_from

    settings = settings_from(flag, section)
    return config if settings is None else dataclasses.replace(config, traces=settings)


def with_server(config: EngineConfig, server: ServerSettings | None) -> EngineConfig:
    """``config`` serving HTTP with ``server`` (unchanged when None)."""
    return config if server is None else dataclasses.replace(config, server=server)


def file_server(glam: GlamConfig) -> ServerSettings | None:
    """The server a configuration file's ``[server]`` asks for (None without ``listen``),
    checked as ``--listen`` is."""
    section = glam.server
    if section.listen is None:
        return None
    from engine.server.settings import ServerSettings, parse_listen

    host, port = parse_listen(section.listen)
    return ServerSettings(
        host=host,
        port=port,
        api_token=section.api_token_ref,
        webhook_secret=section.webhook_secret_ref,
        auth_reads=section.auth_reads,
        allow_remote=section.allow_remote,
    ).check()


def server_settings(
    listen: str,
    *,
    api_token_env: str | None = None,
    webhook_secret_env: str | None = None,
    auth_reads: bool = False,
    allow_remote: bool = False,
) -> ServerSettings:
    """The server's settings from ``glam run``'s options, checked (a non-loopback address
    needs ``--allow-remote`` and a token)."""
    from engine.server.settings import ServerSettings, parse_listen
    from engine.tokens import TokenRef

    host, port = parse_listen(listen)
    settings = ServerSettings(
        host=host,
        port=port,
        api_token=TokenRef("env", api_token_env) if api_token_env else None,
        webhook_secret=TokenRef("env", webhook_secret_env) if webhook_secret_env else None,
        auth_reads=auth_reads,
        allow_remote=allow_remote,
    )
    if auth_reads and settings.api_token is None:
        raise UsageError("--auth-reads needs --api-token-env", hint="name the token's variable")
    return settings.check()


def given_location(db: str | None) -> Path | str | None:
    """``--db``, else ``$GLAM_DB``: a database URL as it is, anything else as a path."""
    from engine.store import is_postgres_url

    value = db if db is not None else os.environ.get("GLAM_DB")
    if value is None:
        return None
    return value if is_postgres_url(value) else Path(value)


def with_sharing(config: EngineConfig, *, shared: bool, lease_ttl: float | None) -> EngineConfig:
    """``--shared`` and ``--lease-ttl`` over the configuration file's ``[engine]``."""
    from dataclasses import replace

    return replace(
        config,
        shared=shared or config.shared,
        lease_ttl=lease_ttl if lease_ttl is not None else config.lease_ttl,
    )


def engine_config(
    *,
    repo: str,
    branch: str | None = None,
    db: Path | str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    poll: float = 30.0,
    max_parallel: int = 10,
    token_env: str | None = None,
) -> EngineConfig:
    """The engine's configuration from ``glam run``'s options: the region falls back to
    ``$AWS_REGION``, ``$AWS_DEFAULT_REGION``, then us-east-1; an endpoint with no credentials
    in the environment gets dummy ones (only an emulator accepts them)."""
    region = (
        region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )
    endpoint_url = endpoint_url or None
    access_key = secret = None
    if endpoint_url and not os.environ.get("AWS_ACCESS_KEY_ID"):
        # The embedded AWS accepts anything; real credentials are never needed for it.
        access_key = "testing"
        secret = "testing"  # noqa: S105 - a dummy only an emulator accepts
    # Imported here, not at the top: the engine pulls in aiobotocore, aiohttp and rich, which
    # every other glam command (and `glam --help`) would otherwise pay for at start-up.
    from engine.runtime.engine import EngineConfig

    return EngineConfig(
        repo=repo,
        db=db_location(db),
        branch=branch,
        region=region,
        endpoint_url=endpoint_url,
        poll=poll,
        max_parallel=max_parallel,
        token_env=token_env,
        access_key_id=access_key,
        secret_access_key=secret,
    )


def engine_config_from(
    glam: GlamConfig,
    *,
    db: Path | str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    poll: float | None = None,
    max_parallel: int | None = None,
    server: ServerSettings | None = None,
    drift_interval: float | None = None,
) -> EngineConfig:
    """The engine's configuration from a configuration file, flags winning over it: the log
    is ``--db``, else ``$GLAM_DB``, else the file's ``db``; the region ``--region``, else the
    file's, else ``$AWS_REGION`` (as ``engine_config``). With ``server`` the file may list
    no repository (they are added through the API)."""
    from dataclasses import replace

    from engine.runtime.engine import Watch

    engine = glam.engine
    base = engine_config(
        repo="",
        db=db or (None if os.environ.get("GLAM_DB") else engine.db),
        endpoint_url=endpoint_url or engine.endpoint_url,
        region=region or engine.region,
        poll=poll if poll is not None else engine.poll,
        max_parallel=max_parallel if max_parallel is not None else engine.max_parallel,
    )
    watches = tuple(
        Watch(
            url=repo.location,
            branch=branch,
            token=repo.token_ref,
            poll=repo.poll,
            paths=repo.paths,
        )
        for repo, branch in glam.watches()
    )
    if not watches and server is None:
        raise UsageError(
            "the configuration watches no repository", hint="add a [[repository]] entry"
        )
    return replace(
        base,
        watches=watches,
        accounts=glam.account,
        data_dir=engine.data_dir,
        max_rate=engine.rate if engine.rate is not None else base.max_rate,
        poll_rate=engine.poll_rate if engine.poll_rate is not None else base.poll_rate,
        server=server,
        drift_interval=next(
            v for v in (drift_interval, engine.drift_interval, base.drift_interval) if v is not None
        ),
        shared=engine.shared,
        lease_ttl=engine.lease_ttl,
        db_password=engine.db_password_ref,
    )
