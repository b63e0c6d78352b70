"""The proxy's control endpoint (``/_glam/...``) and the guard in front of every request.

The embedded AWS listens on loopback only, but a web page open in the developer's browser
can still send it requests: a cross-origin "simple" POST (``text/plain``, no preflight)
reaches any loopback port, and DNS rebinding makes a foreign name resolve to 127.0.0.1 so
the page can read the answers too. So every request, control or AWS API, must:

- name this server in ``Host``: ``127.0.0.1``, ``localhost`` or ``[::1]`` with the proxy's
  port (the AWS API also takes ``*.localhost``, always loopback); anything else is 403;
- come from no web page or from this server's own: a foreign ``Origin`` (or ``null``), or
  ``Sec-Fetch-Site`` other than ``same-origin``/``none``, is 403.

SDK clients send neither header (botocore sends ``Host: 127.0.0.1:<port>``), so they pass.

Control requests carry at most 64 KiB (413 above it; a body is never echoed in an error),
and what they set is validated: a setting that would wedge the emulator (a quota of 0, a
latency of years, a clock moved back) is 400 and changes nothing. moto's own management API
(``/moto-api/...``: state dump, seed, recorder) is not reachable through the proxy: 404.

    GET  /_glam/health              {"ok": true}
    GET  /_glam/journal             {"entries": [...]}      every call so far
    GET  /_glam/faults              {"spec": "seed=0;..."}
    POST /_glam/faults              body: a fault spec string, or {"spec": "..."}
    GET  /_glam/fidelity            the Fidelity settings
    POST /_glam/fidelity            body: {"field": value, ...} changes those settings
    GET  /_glam/clock               {"now": seconds, "offset": seconds}
    POST /_glam/clock               body: {"advance": seconds} moves the clock forward
    POST /_glam/reset               empty moto, the journal and the proxy's own state
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from aiohttp import web

from engine.errors import GlamError
from engine.local.fidelity import Fidelity

if TYPE_CHECKING:
    from engine.local.proxy import Proxy

CONTROL_BODY_MAX = 64 * 1024
"""The largest body a control request may carry, in bytes."""

_NAMES = ("127.0.0.1", "localhost", "[::1]")
_FETCH_SITES_OK = frozenset({"same-origin", "none"})

_SECONDS_MAX = 3600.0
_RPS_MAX = 100_000
_FIDELITY_NUMBERS = {
    "pending_seconds": _SECONDS_MAX,
    "update_seconds": _SECONDS_MAX,
}
_FIDELITY_RATES = {"control_rps", "get_function_rps"}
_FIDELITY_SWITCHES = {
    "alias_rules",
    "protect_referenced_versions",
    "unique_event_sources",
    "quota",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _shown(text: str, limit: int = 40) -> str:
    """A piece of the caller's input fit to quote in an error: short, never the whole body."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


# -- the guard --------------------------------------------------------------------------------


def _split_host(value: str) -> tuple[str, str | None]:
    """``(name, port or None)`` of a Host header value, IPv6 literals in brackets kept."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        rest = value[end + 1 :]
        return value[: end + 1], (rest[1:] if rest.startswith(":") else None)
    name, sep, port = value.rpartition(":")
    return (name, port) if sep else (value, None)


def host_allowed(value: str | None, port: int, *, subdomains: bool = False) -> bool:
    """Whether ``value`` (a Host header, or an Origin's host and port) names this server."""
    if not value:
        return False
    name, given = _split_host(value.strip().lower())
    if given is None:
        if port != 80:
            return False
    elif given != str(port):
        return False
    return name in _NAMES or (subdomains and name.endswith(".localhost") and name != ".localhost")


def refusal_reason(request: web.Request, port: int, *, control: bool) -> str | None:
    """Why the guard refuses ``request`` (see the module docstring), or None to let it in."""
    if not host_allowed(request.headers.get("Host"), port, subdomains=not control):
        return "the Host header does not name this server (127.0.0.1, localhost or [::1])"
    origin = request.headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin.strip())
        if parts.scheme != "http" or not host_allowed(parts.netloc, port):
            return "cross-origin requests are refused"
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.strip().lower() not in _FETCH_SITES_OK:
        return "cross-site requests are refused"
    return None


def is_moto_api(raw_path: str) -> bool:
    """Whether a path reaches moto's own management API (or its favicon) once decoded."""
    path = unquote(raw_path.split("?", 1)[0])
    return path.startswith("/moto-api") or path == "/favicon.ico"


# -- bodies and settings ----------------------------------------------------------------------


class _TooLarge(Exception):
    pass


async def read_body(request: web.Request, limit: int = CONTROL_BODY_MAX) -> bytes:
    """The body, or ``_TooLarge`` past ``limit`` bytes (read no further than that)."""
    if request.content_length is not None and request.content_length > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _TooLarge
    return b"".join(chunks)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        raise ValueError("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError("the body must be a JSON object")
    return value


def _number(key: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{key} must be between {low:g} and {high:g}")
    return float(value)


def fidelity_with(current: Fidelity, changes: dict[str, Any]) -> Fidelity:
    """``current`` with ``changes`` applied, each checked for type and range (ValueError)."""
    checked: dict[str, Any] = {}
    for key, value in changes.items():
        if key in _FIDELITY_NUMBERS:
            checked[key] = _number(key, value, 0, _FIDELITY_NUMBERS[key])
        elif key in _FIDELITY_RATES:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{key} must be a whole number of requests per second")
            checked[key] = int(_number(key, value, 1, _RPS_MAX))
        elif key in _FIDELITY_SWITCHES:
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false")
            checked[key] = value
        else:
            known = ", ".join(f.name for f in dataclasses.fields(Fidelity))
            raise ValueError(f"unknown setting {_shown(str(key))}; known: {known}")
    return dataclasses.replace(current, **checked)


# -- the endpoint -----------------------------------------------------------------------------


class ControlEndpoint:
    """The ``/_glam/...`` routes of one proxy."""

    def __init__(self, proxy: Proxy) -> None:
        self._proxy = proxy

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/_glam/health", self._health)
        app.router.add_get("/_glam/journal", self._get_journal)
        app.router.add_get("/_glam/faults", self._get_faults)
        app.router.add_post("/_glam/faults", self._post(self._post_faults))
        app.router.add_get("/_glam/fidelity", self._get_fidelity)
        app.router.add_post("/_glam/fidelity", self._post(self._post_fidelity))
        app.router.add_get("/_glam/clock", self._get_clock)
        app.router.add_post("/_glam/clock", self._post(self._post_clock))
        app.router.add_post("/_glam/reset", self._post(self._post_reset))

    @staticmethod
    def _post(
        handler: Callable[[bytes], Awaitable[web.Response]],
    ) -> Handler:
        """A POST handler given the capped body; a bad setting answers 400, never 500."""

        async def run(request: web.Request) -> web.StreamResponse:
            try:
                body = await read_body(request)
            except _TooLarge:
                return _error(413, f"the body is larger than {CONTROL_BODY_MAX} bytes")
            try:
                return await handler(body)
            except (ValueError, GlamError) as exc:
                message = exc.one_line() if isinstance(exc, GlamError) else str(exc)
                return _error(400, message)

        return run

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _get_journal(self, _: web.Request) -> web.Response:
        return web.json_response({"entries": [e.to_json() for e in self._proxy.journal]})

    async def _get_faults(self, _: web.Request) -> web.Response:
        return web.json_response({"spec": str(self._proxy.faults)})

    async def _post_faults(self, body: bytes) -> web.Response:
        try:
            text = body.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ValueError("the body is not UTF-8 text") from None
        if text.startswith("{"):
            spec = _json_object(body).get("spec", "")
            if not isinstance(spec, str):
                raise ValueError('"spec" must be a fault spec string')
            text = spec
        parsed = self._proxy.set_faults(text)
        return web.json_response({"spec": str(parsed)})

    async def _get_fidelity(self, _: web.Request) -> web.Response:
        return web.json_response(dataclasses.asdict(self._proxy.fidelity))

    async def _post_fidelity(self, body: bytes) -> web.Response:
        self._proxy.fidelity = fidelity_with(self._proxy.fidelity, _json_object(body))
        return web.json_response(dataclasses.asdict(self._proxy.fidelity))

    def _clock_json(self) -> web.Response:
        clock = self._proxy.clock
        return web.json_response({"now": clock(), "offset": clock.offset})

    async def _get_clock(self, _: web.Request) -> web.Response:
        return self._clock_json()

    async def _post_clock(self, body: bytes) -> web.Response:
        request = _json_object(body)
        unknown = set(request) - {"advance"}
        if unknown or "advance" not in request:
            raise ValueError('the body must be {"advance": seconds}')
        self._proxy.advance_clock(request["advance"])
        return self._clock_json()

    async def _post_reset(self, _: bytes) -> web.Response:
        await self._proxy.reset()
        return web.json_response({"ok": True})
