"""Repository tokens by reference, resolved the way Gitmoxi resolves them, at use time.

    arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME   Secrets Manager, GetSecretValue: a plain
                                                         string, or a JSON object of one key
    arn:aws:ssm:REGION:ACCOUNT:parameter/NAME           SSM Parameter Store, GetParameter with
                                                         decryption (a SecureString)
    anything else                                        the name of an environment variable

Configuration names a token only by its reference; the value is read when a fetch needs it
(``TokenResolver.resolve``), kept at most ``ttl`` seconds, so a rotated secret is picked up by
the next fetch after that. The value goes to the Git adapter and nowhere else: never into an
event, a log line, an error message or the output (errors name the reference instead).

The AWS calls are behind the ``SecretsApi`` port (``engine.ports``); the aiobotocore adapter is
``engine.aws.secrets``. This module is pure apart from reading the environment.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from engine.errors import AwsError, SourceError, SourceUnreachable

if TYPE_CHECKING:
    from engine.ports import SecretsApi

TokenKind = Literal["secretsmanager", "ssm", "env"]

_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):"
    r"(?P<account>\d{12}):(?P<resource>.+)$"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_TTL = 30.0  # seconds a resolved token is reused: a rotation is seen within this


@dataclass(frozen=True, slots=True)
class TokenRef:
    """Where a token is: ``kind`` and ``ref`` (the ARN or the variable name, as written), and
    the region of an ARN. Safe to show: it is a name, never the value."""

    kind: TokenKind
    ref: str
    region: str | None = None

    def describe(self) -> str:
        """The reference as ``glam config check`` and error messages show it."""
        match self.kind:
            case "secretsmanager":
                return f"Secrets Manager secret {self.ref}"
            case "ssm":
                return f"SSM parameter {self.ref}"
            case "env":
                return f"environment variable {self.ref}"


def parse_token_ref(text: str) -> TokenRef:
    """The reference ``text`` names; ``ValueError`` saying what is wrong with it."""
    if text.startswith("arn:"):
        match = _ARN.match(text)
        if match is None:
            raise ValueError(
                f"{text!r} is not an ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME "
                "or arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)"
            )
        service, region, resource = match["service"], match["region"], match["resource"]
        if not region:
            raise ValueError(f"{text!r} names no region")
        if service == "secretsmanager":
            if not resource.startswith("secret:") or len(resource) <= len("secret:"):
                raise ValueError(f"{text!r} is not a secret's ARN (…:secret:NAME)")
            return TokenRef("secretsmanager", text, region)
        if service == "ssm":
            if not resource.startswith("parameter/") or len(resource) <= len("parameter/"):
                raise ValueError(f"{text!r} is not a parameter's ARN (…:parameter/NAME)")
            return TokenRef("ssm", text, region)
        raise ValueError(
            f"{text!r} is a {service} ARN: a token is read from secretsmanager or ssm only"
        )
    if not _ENV_NAME.match(text):
        raise ValueError(
            f"{text!r} is neither a Secrets Manager or SSM ARN nor an environment variable name"
        )
    return TokenRef("env", text)


@dataclass
class _Cached:
    value: str
    at: float


@dataclass
class TokenResolver:
    """Reads tokens by reference (see the module docstring). ``secrets`` is needed only for
    ARNs; ``clock`` is monotonic seconds; ``environ`` defaults to the process environment."""

    secrets: SecretsApi | None = None
    ttl: float = DEFAULT_TTL
    clock: Callable[[], float] = time.monotonic
    environ: Mapping[str, str] | None = None
    _cache: dict[str, _Cached] = field(default_factory=dict, repr=False)

    async def resolve(self, ref: TokenRef) -> str:
        """The token's value now. ``SourceError`` when it cannot be used as configured (an
        empty variable, a secret glam cannot read as a token), ``SourceUnreachable`` when AWS
        could not answer now (retried at the next poll). Messages name ``ref``, never a
        value."""
        if ref.kind == "env":
            value = (self.environ if self.environ is not None else os.environ).get(ref.ref)
            if not value:
                raise SourceError(
                    f"environment variable {ref.ref} is empty",
                    hint=f"export {ref.ref} with a token that can read the repository",
                )
            return value
        now = self.clock()
        cached = self._cache.get(ref.ref)
        if cached is not None and now - cached.at < self.ttl:
            return cached.value
        value = await self._read(ref)
        self._cache[ref.ref] = _Cached(value, now)
        return value

    def forget(self, ref: TokenRef) -> None:
        """Drop a cached value (the remote refused it: read it afresh next time)."""
        self._cache.pop(ref.ref, None)

    async def _read(self, ref: TokenRef) -> str:
        if self.secrets is None:
            raise SourceError(
                f"cannot read {ref.describe()}: no AWS access configured for tokens",
                hint="run the engine with AWS credentials that may read it",
            )
        assert ref.region is not None  # parse_token_ref: every ARN names one
        try:
            if ref.kind == "secretsmanager":
                text = await self.secrets.secret_string(ref.ref, ref.region)
                return _token_of_secret(text, ref)
            text = await self.secrets.parameter_value(ref.ref, ref.region)
        except AwsError as exc:
            error = SourceUnreachable if exc.retryable else SourceError
            raise error(
                f"cannot read {ref.describe()}: {exc.code or 'error'}: {exc.message}",
                hint="check that the secret exists and that the engine's role may read it "
                "(secretsmanager:GetSecretValue / ssm:GetParameter, kms:Decrypt)",
            ) from None
        if not text:
            raise SourceError(f"{ref.describe()} is empty", hint="store the token in it")
        return text


def _token_of_secret(text: str, ref: TokenRef) -> str:
    """A secret's string as a token: the string itself, or the one value of a JSON object."""
    if not text:
        raise SourceError(f"{ref.describe()} is empty", hint="store the token in it")
    if not text.lstrip().startswith("{"):
        return text
    try:
        data = json.loads(text)
    except ValueError:
        return text  # not JSON after all: a token that starts with a brace
    if not isinstance(data, dict) or len(data) != 1:
        keys = ", ".join(sorted(str(k) for k in data)) if isinstance(data, dict) else ""
        raise SourceError(
            f"{ref.describe()} is a JSON object with {len(data)} keys ({keys})",
            hint="store the token alone, or as a JSON object with one key",
        )
    (value,) = data.values()
    if not isinstance(value, str) or not value:
        raise SourceError(
            f"{ref.describe()}: the value of its one key is not a string",
            hint="store the token as a string",
        )
    return value
