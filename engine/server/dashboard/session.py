"""Who may press the dashboard's operator buttons: a browser that gave the server's write
token once, on the sign-in form.

The cookie it then carries holds no token: it holds an HMAC of a fixed label keyed by the
token (``glam_session``), which the server recomputes from the token it reads at each request.
So the token never sits in the browser, a rotated token signs every browser out, and a forged
cookie needs the token. The cookie is ``HttpOnly`` and ``SameSite=Strict``, and every form
post must come from the dashboard's own origin (``Origin`` or ``Referer``), so another site
cannot make a signed-in browser press a button.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from aiohttp import web

from engine.server.auth import presented_token, token_matches

COOKIE = "glam_session"
_LABEL = b"glam dashboard session v1"


def session_value(token: str) -> str:
    """What the cookie holds for ``token``."""
    return hmac.new(token.encode("utf-8"), _LABEL, hashlib.sha256).hexdigest()


def signed_in(request: web.Request, expected: str | None) -> bool:
    """Whether ``request`` carries the write token (``expected``): the session cookie, or a
    bearer token as the API takes it."""
    if expected is None:
        return False
    if token_matches(presented_token(request), expected):
        return True
    cookie = request.cookies.get(COOKIE)
    return cookie is not None and token_matches(cookie, session_value(expected))


def same_origin(request: web.Request) -> bool:
    """Whether a form post comes from a page of this server."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return False
    parts = urlsplit(source)
    return parts.netloc == request.host and parts.scheme in ("http", "https")


def sign_in(response: web.StreamResponse, token: str, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        session_value(token),
        httponly=True,
        samesite="Strict",
        secure=secure,
        path="/dashboard",
    )


def sign_out(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/dashboard")
