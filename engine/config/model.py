"""What ``glam.toml`` says, as frozen pydantic models: the engine's settings, the repositories
and branches it watches, and the AWS accounts it deploys to.

    [engine]            the flags of ``glam run``: db (and db_password), data_dir, region,
                        max_parallel, poll, endpoint_url, rate, poll_rate
    [[repository]]      url (or path), branches, token, poll, paths
    [[account]]         id, role_arn, external_id, session_name, regions, rate
    [server]            listen, api_token, webhook_secret, auth_reads, allow_remote
    [traces]            otlp_endpoint, headers: deployments as OpenTelemetry traces

Each model checks its own fields (a field validator raises ``ValueError`` with the message
the user reads); what needs several entries at once (the same repository twice, one account
twice) is checked by ``engine.config.load`` on the raw table, so that every mistake of a file
is reported in one go.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.redact import repository_id
from engine.store import POSTGRES_SCHEMES
from engine.tokens import TokenRef, parse_token_ref

ACCOUNT_ID = re.compile(r"^\d{12}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>\d{12}):role/[\w+=,.@/-]{1,512}$")
SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
BRANCH_BAD = re.compile(r"(^[/.-])|(\.\.)|([\s~^:?*\[\\])|(/$)|(\.lock$)|(@\{)")

DEFAULT_POLL = 30.0
DEFAULT_MAX_PARALLEL = 10
DEFAULT_SESSION_NAME = "glam"

PositiveSeconds = Annotated[float, Field(gt=0, le=86_400)]
Rate = Annotated[float, Field(gt=0, le=1_000)]


def _url_password(url: str) -> bool:
    """Whether the database URL ``url`` holds a password (``user:PASSWORD@`` or
    ``?password=``)."""
    parts = urlsplit(url)
    try:
        inline = parts.password
    except ValueError:
        inline = None
    query = parse_qs(parts.query, keep_blank_values=True)
    return bool(inline) or "password" in query


def _reference(value: str | None) -> str | None:
    """``value`` if it names a secret (``engine.tokens``), else ``ValueError`` saying why."""
    if value is not None:
        parse_token_ref(value)
    return value


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def check_region(value: str) -> str:
    """``value`` if it reads as an AWS region name (``eu-west-1``), else ``ValueError``."""
    if not REGION.match(value):
        raise ValueError(f"{value!r} is not an AWS region name (like eu-west-1)")
    return value


class EngineSettings(_Model):
    """``[engine]``: what ``glam run``'s flags set. A flag given on the command line wins.
    Relative paths are relative to the configuration file's folder."""

    db: Path | str | None = None  # an SQLite file, or a postgresql:// URL without password
    db_password: str | None = None  # a reference, as a repository's token (engine.tokens)
    data_dir: Path | None = None
    region: str | None = None
    max_parallel: int = Field(DEFAULT_MAX_PARALLEL, ge=1, le=1_000)
    poll: PositiveSeconds = DEFAULT_POLL
    endpoint_url: str | None = None
    rate: Rate | None = None
    poll_rate: Rate | None = None
    # Seconds between two drift sweeps (0: none); None: the engine's default, 5 minutes.
    drift_interval: float | None = Field(None, ge=0)
    public_url: str | None = None  # where the engine's API is reached: links in notifications

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("public_url must be an http:// or https:// URL")
        return None if value is None else value.rstrip("/")

    shared: bool = False  # one of several engines on a PostgreSQL log (docs/scaling.md)
    lease_ttl: PositiveSeconds = 15.0

    @field_validator("db", mode="before")
    @classmethod
    def _db(cls, value: object) -> object:
        """A ``postgresql://`` URL stays a string (a path would fold its ``//``), without a
        password in it; anything else is the path of an SQLite file."""
        if not isinstance(value, str):
            return value
        if not value.startswith(POSTGRES_SCHEMES):
            return Path(value)
        if _url_password(value):
            raise ValueError(
                "db must not hold the password (a password in a file that is shared is a "
                "leaked password): write postgresql://USER@HOST:PORT/DATABASE and name the "
                "password with db_password (an environment variable, or a Secrets Manager or "
                "SSM ARN), or leave it to PGPASSWORD / PGPASSFILE (~/.pgpass)"
            )
        return value

    @field_validator("db_password")
    @classmethod
    def _db_password(cls, value: str | None) -> str | None:
        return _reference(value)

    @model_validator(mode="after")
    def _password_for_postgres(self) -> EngineSettings:
        if self.db_password is not None and not isinstance(self.db, str):
            raise ValueError("db_password is for a postgresql:// db only")
        return self

    @property
    def db_password_ref(self) -> TokenRef | None:
        return None if self.db_password is None else parse_token_ref(self.db_password)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return None if value is None else check_region(value)

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("endpoint_url must be an http:// or https:// URL")
        return value


NOTIFY_EVENTS = ("started", "promoted", "rolled_back", "failed", "drift", "deletes_held")


class NotifySettings(_Model):
    """``[[repository.notify]]``: where this repository's deployments are announced.

    ``kind`` ``webhook`` posts glam's JSON; ``slack`` posts a Slack-compatible incoming-webhook
    message (text and blocks; Mattermost and others take it too). ``url`` is a reference, as
    ``token`` is: an environment variable's name or a Secrets Manager / SSM ARN, because the
    URL of an incoming webhook is itself the credential. ``events``: which to send (default:
    every one of started, promoted, rolled_back, failed, drift, deletes_held)."""

    kind: Literal["webhook", "slack"]
    url: str
    events: tuple[str, ...] = NOTIFY_EVENTS

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "://" in value:
            raise ValueError(
                "url is a reference, not the URL (an incoming webhook's URL is a secret): "
                "name an environment variable, or a Secrets Manager or SSM ARN holding it"
            )
        parse_token_ref(value)  # ValueError says what is wrong with it
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in NOTIFY_EVENTS:
                raise ValueError(f"{name!r} is not one of {', '.join(NOTIFY_EVENTS)}")
        return value

    @property
    def url_ref(self) -> TokenRef:
        return parse_token_ref(self.url)


class RepositorySettings(_Model):
    """``[[repository]]``: one repository, the branches watched in it, how to read it.

    ``branches`` empty means the repository's default branch. ``token`` is a reference, never
    the token: a Secrets Manager or SSM Parameter Store ARN, or the name of an environment
    variable (``engine.tokens``). ``paths`` limits the functions this repository's branches
    own to prefixes under these folders (empty: the whole repository)."""

    url: str | None = None
    path: str | None = None
    branches: tuple[str, ...] = ()
    token: str | None = None
    poll: PositiveSeconds | None = None
    paths: tuple[str, ...] = ()
    notify: tuple[NotifySettings, ...] = ()

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("url must not be empty")
        if "://" in value and value.split("://", 1)[1].split("/", 1)[0].count("@"):
            scheme = value.split("://", 1)[0].lower()
            if scheme in ("http", "https"):
                raise ValueError(
                    "url must not hold credentials (a token in a file that is shared is a "
                    "leaked token): put the token in Secrets Manager, SSM or an environment "
                    "variable and name it with `token`"
                )
        return value

    @field_validator("branches")
    @classmethod
    def _branches(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for branch in value:
            if not branch or BRANCH_BAD.search(branch):
                raise ValueError(f"{branch!r} is not a valid branch name")
        seen: set[str] = set()
        for branch in value:
            if branch in seen:
                raise ValueError(f"branch {branch!r} is listed twice")
            seen.add(branch)
        return value

    @field_validator("token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        return _reference(value)

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for folder in value:
            clean = folder.strip().strip("/")
            if not clean or clean.startswith(".") or ".." in clean.split("/") or "\\" in clean:
                raise ValueError(f"{folder!r} is not a folder of the repository (like apps/orders)")
            out.append(clean)
        return tuple(out)

    @model_validator(mode="after")
    def _one_location(self) -> RepositorySettings:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of url or path")
        if self.token is not None and self.kind != "http":
            raise ValueError(
                "token is used only for an https:// repository (ssh uses the agent's keys, "
                "a local path needs none)"
            )
        return self

    @property
    def location(self) -> str:
        """The URL or path, as written (relative paths already resolved by the loader)."""
        location = self.url if self.url is not None else self.path
        assert location is not None  # _one_location
        return location

    @property
    def kind(self) -> str:
        """``http``, ``ssh`` or ``local``."""
        location = self.location
        if self.path is not None or location.startswith("file://"):
            return "local"
        if location.lower().startswith(("http://", "https://")):
            return "http"
        return "ssh" if "://" not in location or location.startswith(("ssh", "git+ssh")) else "?"

    @property
    def id(self) -> str:
        """The repository's identity (``engine.redact.repository_id``)."""
        return repository_id(self.location)

    @property
    def token_ref(self) -> TokenRef | None:
        return None if self.token is None else parse_token_ref(self.token)


class AccountSettings(_Model):
    """``[[account]]``: an AWS account the engine deploys to, through the role it assumes
    there. Without ``role_arn`` the entry describes the engine's own account (the one its
    credentials are for): its allowed regions and rate. ``regions`` empty: any region."""

    id: str
    role_arn: str | None = None
    external_id: str | None = Field(default=None, repr=False)
    session_name: str = DEFAULT_SESSION_NAME
    regions: tuple[str, ...] = ()
    rate: Rate | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ACCOUNT_ID.match(value):
            raise ValueError(f"{value!r} is not a 12-digit AWS account id (write it in quotes)")
        return value

    @field_validator("role_arn")
    @classmethod
    def _role(cls, value: str | None) -> str | None:
        if value is not None and not ROLE_ARN.match(value):
            raise ValueError(
                f"{value!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
            )
        return value

    @field_validator("external_id")
    @classmethod
    def _external(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[\w+=,.@:/-]{2,1224}$", value):
            raise ValueError("external_id must be 2 to 1224 of letters, digits and +=,.@:/-")
        return value

    @field_validator("session_name")
    @classmethod
    def _session(cls, value: str) -> str:
        if not SESSION_NAME.match(value):
            raise ValueError("session_name must be 2 to 64 of letters, digits and +=,.@_-")
        return value

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for region in value:
            check_region(region)
        return value

    @model_validator(mode="after")
    def _role_in_account(self) -> AccountSettings:
        if self.role_arn is not None:
            match = ROLE_ARN.match(self.role_arn)
            assert match is not None  # _role
            if match.group("account") != self.id:
                raise ValueError(
                    f"role_arn is in account {match.group('account')}, the entry is for "
                    f"{self.id}: the role to assume must be in the account deployed to"
                )
        if self.external_id is not None and self.role_arn is None:
            raise ValueError("external_id needs a role_arn (it is sent when assuming the role)")
        return self

    def allows(self, region: str) -> bool:
        return not self.regions or region in self.regions


class ServerSection(_Model):
    """``[server]``: the HTTP server ``glam run`` starts (health, metrics, the API, webhook
    receivers) when ``listen`` is set; ``glam run --listen`` and its flags win over it.
    ``api_token`` and ``webhook_secret`` are references, as a repository's ``token`` is (an
    environment variable's name, a Secrets Manager or SSM Parameter Store ARN), never the
    value. ``allow_remote``: listen on an address other than loopback (needs ``api_token``)."""

    listen: str | None = None
    api_token: str | None = None
    webhook_secret: str | None = None
    auth_reads: bool = False
    allow_remote: bool = False

    @field_validator("api_token", "webhook_secret")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is not None:
            parse_token_ref(value)  # ValueError says what is wrong with it
        return value

    @model_validator(mode="after")
    def _needs_listen(self) -> ServerSection:
        if self.listen is None and self.model_fields_set - {"listen"}:
            raise ValueError('the server\'s settings need listen (e.g. listen = "127.0.0.1:8080")')
        if self.auth_reads and self.api_token is None:
            raise ValueError("auth_reads needs api_token")
        return self

    @property
    def api_token_ref(self) -> TokenRef | None:
        return None if self.api_token is None else parse_token_ref(self.api_token)

    @property
    def webhook_secret_ref(self) -> TokenRef | None:
        return None if self.webhook_secret is None else parse_token_ref(self.webhook_secret)


class TracesSection(_Model):
    """``[traces]``: every deployment exported as an OpenTelemetry trace to ``otlp_endpoint``
    (OTLP/HTTP, e.g. ``http://127.0.0.1:4318/v1/traces``); off without it. ``headers`` maps
    a header's name to a reference holding its value (an environment variable's name, a
    Secrets Manager or SSM ARN), as a collector's API key is a secret. ``attempts``: how
    often one export is tried before it is given up."""

    otlp_endpoint: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    attempts: int = Field(5, ge=1, le=20)

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            check_otlp_endpoint(value)
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, ref in value.items():
            if not re.fullmatch(r"[A-Za-z0-9-]+", name):
                raise ValueError(f"{name!r} is not an HTTP header name")
            try:
                parse_token_ref(ref)
            except ValueError as exc:
                raise ValueError(
                    f"header {name}: a value is a reference (an environment variable's name, "
                    f"or a Secrets Manager or SSM ARN), never the secret itself: {exc}"
                ) from None
        return value

    @model_validator(mode="after")
    def _needs_endpoint(self) -> TracesSection:
        if self.otlp_endpoint is None and self.headers:
            raise ValueError("headers need otlp_endpoint")
        return self

    @property
    def header_refs(self) -> tuple[tuple[str, TokenRef], ...]:
        return tuple(sorted((k, parse_token_ref(v)) for k, v in self.headers.items()))


def check_otlp_endpoint(value: str) -> str:
    """``value`` if it reads as an OTLP/HTTP URL, else ``ValueError``."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("otlp_endpoint must be an http:// or https:// URL (OTLP over HTTP)")
    if "@" in value.split("://", 1)[1].split("/", 1)[0]:
        raise ValueError("otlp_endpoint must not hold credentials: send them as headers")
    return value


class GlamConfig(_Model):
    """A whole ``glam.toml`` (or ``glam run --repo``'s flags, as a one-repository one)."""

    engine: EngineSettings = EngineSettings()
    repository: tuple[RepositorySettings, ...] = ()
    account: tuple[AccountSettings, ...] = ()
    server: ServerSection = ServerSection()
    traces: TracesSection = TracesSection()

    @property
    def repositories(self) -> tuple[RepositorySettings, ...]:
        return self.repository

    @property
    def accounts(self) -> dict[str, AccountSettings]:
        """The ``[[account]]`` entries by account id."""
        return {a.id: a for a in self.account}

    def watches(self) -> list[tuple[RepositorySettings, str | None]]:
        """Every (repository, branch) the engine watches: one repository loop each; a branch
        of None is the repository's default branch."""
        out: list[tuple[RepositorySettings, str | None]] = []
        for repo in self.repository:
            out.extend((repo, b) for b in repo.branches or (None,))
        return out
