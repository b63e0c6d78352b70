"""The server's settings: where it listens, its API token and webhook secrets (by reference,
never the value), and its limits. Pure: no aiohttp here, so the engine's configuration can
name a server without loading it.

    parse_listen("8080")            ("127.0.0.1", 8080)
    parse_listen(":8080")           ("127.0.0.1", 8080)
    parse_listen("[::1]:8080")      ("::1", 8080)
    parse_listen("0.0.0.0:8080")    refused by ``check`` unless ``allow_remote`` and a token

A secret is named by reference, as a repository token is (``engine.tokens.TokenRef``: an
environment variable's name, a Secrets Manager secret's or SSM parameter's ARN); the engine
reads the value when it is needed (``Engine.read_secret``), so a rotated value is used soon
after, never shown.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from engine.errors import ConfigError
from engine.tokens import TokenRef

DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_BODY = 1024 * 1024  # bytes: a GitHub push payload is at most 25 MB, most are < 100 kB
DEFAULT_STUCK_AFTER = 900.0  # seconds a deployment may go without a step before /readyz says so


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """What ``glam run --listen`` (or the configuration's ``[server]``) says.

    ``api_token``: the bearer token every write needs (and every read when ``auth_reads``);
    without one, the write endpoints answer 401. ``webhook_secret``: what GitHub signs push
    payloads with (``X-Hub-Signature-256``), GitLab sends (``X-Gitlab-Token``) and the generic
    receiver signs with; without one the receivers answer 401. ``allow_remote``: bind an
    address other than loopback (needs ``api_token``). ``stuck_after``: seconds a deployment
    in flight may go without a new step (past its timers) before ``/readyz`` reports it.
    """

    host: str = DEFAULT_HOST
    port: int = 0  # 0: any free port (tests); the bound one is ``Engine.listening``
    api_token: TokenRef | None = None
    auth_reads: bool = False
    webhook_secret: TokenRef | None = None
    allow_remote: bool = False
    max_body: int = DEFAULT_MAX_BODY
    stuck_after: float = DEFAULT_STUCK_AFTER
    # Seconds between keep-alive comments on an idle event stream.
    heartbeat: float = field(default=15.0)

    def check(self) -> ServerSettings:
        """``self``, or ``ConfigError`` for a bind that would expose the engine."""
        if not is_loopback(self.host):
            if not self.allow_remote:
                raise ConfigError(
                    f"refusing to listen on {self.host}: glam serves 127.0.0.1 unless told",
                    hint="listen on 127.0.0.1 (a proxy in front), or allow remote clients "
                    "explicitly and configure an API token",
                )
            if self.api_token is None:
                raise ConfigError(
                    f"listening on {self.host} needs an API token",
                    hint="name the environment variable that holds it (--api-token-env)",
                )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range", hint="use 1 to 65535")
        if self.max_body < 1024:
            raise ConfigError("the body limit must be at least 1024 bytes")
        return self


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost could resolve anywhere


def parse_listen(text: str) -> tuple[str, int]:
    """``(host, port)`` of ``PORT``, ``:PORT``, ``HOST:PORT`` or ``[IPv6]:PORT``; the host
    defaults to 127.0.0.1. ``ConfigError`` says what is wrong."""
    value = text.strip()
    host, port_text = DEFAULT_HOST, value
    if value.startswith("["):
        inner, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigError(f"{text!r} is not [HOST]:PORT", hint="e.g. [::1]:8080")
        host, port_text = inner, rest[1:]
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
        host = host or DEFAULT_HOST
    if not port_text.isdigit():
        raise ConfigError(f"{text!r} has no port", hint="e.g. 8080 or 127.0.0.1:8080")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range", hint="use 1 to 65535")
    return host, port
