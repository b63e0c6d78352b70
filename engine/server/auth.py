"""Who may use the API: a bearer token for every write, and for reads when configured.

    Authorization: Bearer <token>                  what glam's own clients send
    Authorization: Basic base64(<any>:<token>)     what a Gitmoxi client sends when the token
                                                   is in its endpoint URL
                                                   (http://glam:<token>@host:8080)

The token is read by reference at each request (``Engine.read_secret``: a rotated value
counts at once, or within the token cache's seconds for one kept in AWS) and compared in
constant time (``hmac.compare_digest``). A wrong or missing token is a 401 with
``WWW-Authenticate: Bearer`` and nothing recorded: the check runs before any handler. Each
route says what it needs (``access``); a route that says nothing needs a write token, so a
route added without thought is closed, not open.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from aiohttp import web

from engine.tokens import TokenRef

Access = Literal["open", "read", "write"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

_ACCESS = "glam_access"


def access(level: Access) -> Callable[[H], H]:
    """Mark a handler as needing ``level``: ``open`` (health probes, webhooks, which check
    their own signatures), ``read`` or ``write``."""

    def mark(handler: H) -> H:
        setattr(handler, _ACCESS, level)
        return handler

    return mark


def access_of(handler: object) -> Access:
    level: Access = getattr(handler, _ACCESS, "write")
    return level


def presented_token(request: web.Request) -> str | None:
    """The token the request carries (bearer, or the password of basic auth), or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, sep, password = decoded.partition(":")
        return password if sep and password else None
    return None


def token_matches(given: str | None, expected: str | None) -> bool:
    """Whether ``given`` is ``expected``, in time that does not depend on where they differ.
    No expected token (none configured, or its variable unset) matches nothing."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class Auth:
    """The API token check (see the module docstring)."""

    def __init__(
        self,
        token: TokenRef | None,
        *,
        reads: bool,
        read: Callable[[TokenRef], Awaitable[str | None]],
    ) -> None:
        self._token = token
        self._reads = reads
        self._read = read

    @property
    def configured(self) -> bool:
        """Whether a token is configured at all (writes are possible)."""
        return self._token is not None

    async def expected(self) -> str | None:
        """The token's current value (None: none configured, or it cannot be read now)."""
        return await self._read(self._token) if self._token is not None else None

    def needs_token(self, level: Access) -> bool:
        return level == "write" or (level == "read" and self._reads)

    async def check(self, request: web.Request, level: Access) -> None:
        """Return when ``request`` may use a route of ``level``; else raise a 401."""
        if not self.needs_token(level):
            return
        expected = await self.expected()
        if token_matches(presented_token(request), expected):
            return
        if self._token is None:
            message = "this endpoint needs an API token, and none is configured"
            hint = "start glam with --api-token-env NAME (the variable holding the token)"
        elif expected is None:
            message = f"the API token ({self._token.describe()}) is not set or cannot be read"
            hint = "set it where the engine runs, readable with the engine's credentials"
        else:
            message = "missing or wrong API token"
            hint = "send Authorization: Bearer <token>"
        raise web.HTTPUnauthorized(
            headers={"WWW-Authenticate": 'Bearer realm="glam"', "Content-Type": "application/json"},
            text=_error_text(message, hint),
        )


def _error_text(message: str, hint: str) -> str:
    import json

    return json.dumps({"error": message, "hint": hint})
