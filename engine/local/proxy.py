"""The fidelity and fault proxy: an aiohttp server on 127.0.0.1 in front of moto.

Every request passes the guard (``engine.local.control``: Host, Origin, no moto management
API), is named (``operations.identify``), placed in its account (``engine.local.accounts``),
journaled, possibly delayed or failed by the fault injector, checked against the fidelity
rules, forwarded to moto byte for byte, and its answer possibly rewritten
(``State: Pending``, ``LastUpdateStatus: InProgress``).

Order of checks for one call: quota (AWS throttles before anything else), injected
throttle/error, fidelity rules, forward, then injected apply-then-fail / apply-then-drop.
The fidelity state (timers, event source mappings) and the quota are kept per account and
region, as AWS keeps them. Time is the proxy's ``MovableClock`` (``engine.local.clock``).

The control endpoint (``/_glam/...``, JSON; never journaled or throttled) is described in
``engine.local.control``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from engine.errors import LocalAwsError
from engine.local.accounts import AccountResolver
from engine.local.clock import MovableClock
from engine.local.control import ControlEndpoint, is_moto_api, refusal_reason
from engine.local.faults import FaultInjector, FaultSpec, parse_faults
from engine.local.fidelity import (
    Fidelity,
    LambdaState,
    Monotonic,
    ProxyQuota,
    Refusal,
    check_alias,
    conflict_while_busy,
    duplicate_mapping,
    referenced_version,
)
from engine.local.journal import DATA_PLANE, Journal, JournalEntry, identifying_params
from engine.local.operations import Operation, function_arn, identify, split_function
from engine.local.refusals import (
    error_response,
    forbidden,
    lambda_body,
    service_error,
    throttle_code,
)

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "expect",
        "content-length",
        "date",
        "server",
    }
)

_BUSY_GUARDED = frozenset({"UpdateFunctionCode", "UpdateFunctionConfiguration", "PublishVersion"})
_SHOWS_STATE = frozenset(
    {
        "CreateFunction",
        "GetFunction",
        "GetFunctionConfiguration",
        "UpdateFunctionCode",
        "UpdateFunctionConfiguration",
    }
)
_API = "/2015-03-31"

AWS_BODY_MAX = 256 * 1024**2
"""The largest AWS API request body, in bytes (Lambda takes zips of up to 50 MB inline)."""


def _is_control(path: str) -> bool:
    return path == "/_glam" or path.startswith("/_glam/")


class Proxy:
    """The proxy server. ``await start()`` binds 127.0.0.1; ``await stop()`` closes it."""

    def __init__(
        self,
        upstream: str,
        *,
        fidelity: Fidelity | None = None,
        faults: FaultSpec | str = "",
        clock: Monotonic = time.monotonic,
        journal: Journal | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.fidelity = fidelity or Fidelity()
        self.journal = journal if journal is not None else Journal()
        self.clock = clock if isinstance(clock, MovableClock) else MovableClock(clock)
        self._injector = FaultInjector(parse_faults(faults) if isinstance(faults, str) else faults)
        self._accounts = AccountResolver(self.upstream)
        # Per account: what moto does not remember about Lambda, and the quota windows.
        self._states: dict[str, LambdaState] = {}
        self._limiters: dict[str, ProxyQuota] = {}
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1:``port`` (0: a free one); return the port."""
        app = web.Application(client_max_size=AWS_BODY_MAX, middlewares=[self._guard])
        ControlEndpoint(self).add_routes(app)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # moto answers with "Connection: close"; a fresh connection per call is what it wants.
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=120),
            connector=aiohttp.TCPConnector(force_close=True),
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            raise LocalAwsError(
                f"cannot listen on 127.0.0.1:{port}: {exc.strerror}",
                hint="choose another --port, or 0 for a free one",
            ) from exc
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        """Close the listener, open connections and the upstream session."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- control ----------------------------------------------------------------------------

    def set_faults(self, spec: FaultSpec | str) -> FaultSpec:
        """Replace the fault rules; the RNG restarts from the spec's seed."""
        parsed = parse_faults(spec) if isinstance(spec, str) else spec
        self._injector = FaultInjector(parsed)
        return parsed

    @property
    def faults(self) -> FaultSpec:
        return self._injector.spec

    def advance_clock(self, seconds: float) -> float:
        """Move the proxy's clock forward (never back); return its new reading."""
        return self.clock.advance(seconds)

    async def reset(
        self, *, faults: FaultSpec | str = "", fidelity: Fidelity | None = None, moto: bool = True
    ) -> None:
        """Empty moto and forget every call and timer, as if just started (the clock stays
        where it is: it never moves back). With ``moto=False`` moto keeps what it holds and
        only the proxy forgets (a caller that puts moto back itself, cheaper than rebuilding)."""
        assert self._session is not None, "start() the proxy first"
        if moto:
            async with self._session.post(f"{self.upstream}/moto-api/reset") as resp:
                if resp.status != 200:
                    raise LocalAwsError(
                        f"moto refused the reset ({resp.status})",
                        hint="restart the embedded AWS",
                    )
        self.journal.clear()
        self._states.clear()
        self._limiters.clear()
        self._accounts.clear()
        self.set_faults(faults)
        if fidelity is not None:
            self.fidelity = fidelity

    def _state(self, account: str) -> LambdaState:
        return self._states.setdefault(account, LambdaState())

    # -- the proxy --------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        control = _is_control(request.path)
        reason = refusal_reason(request, self.port, control=control)
        if reason is not None:
            return (
                web.json_response({"error": reason}, status=403) if control else forbidden(reason)
            )
        if is_moto_api(request.raw_path):
            return web.json_response({"error": "not found"}, status=404)
        response: web.StreamResponse = await handler(request)
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if _is_control(request.path):  # a /_glam/ path or method the endpoint does not have
            return web.json_response({"error": "not found"}, status=404)
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            op = identify(request.method, request.raw_path, request.query_string, headers, body)
        except Exception:  # naming is best effort; the call must still reach moto
            op = Operation(service="unknown", name="Unknown", region="us-east-1")
        assert self._session is not None
        account = await self._accounts.account_of(self._session, op.access_key, headers)
        op = dataclasses.replace(op, account=account)
        now = self.clock()
        started = time.perf_counter()
        self._seq += 1
        record: dict[str, Any] = {
            "seq": self._seq,
            "t": now,
            "at": datetime.now(UTC).isoformat(),
            "service": op.service,
            "operation": op.name,
            "region": op.region,
            "account": account,
            "function": op.function,
            "qualifier": op.qualifier,
            "params": identifying_params(body, headers.get("content-type", "")),
        }
        if op.name in ("CreateAlias", "UpdateAlias"):
            record.update(_alias_request(body))
        if op.name in ("CreateAlias", "UpdateAlias", "GetAlias", "DeleteAlias"):
            record["qualifier"] = op.param("Name")
        try:
            response = await self._process(request, op, body, headers, now, record)
        finally:
            record["duration"] = time.perf_counter() - started
            record.setdefault("status", 0)
            self.journal.append(JournalEntry(**record))
        return response

    async def _process(
        self,
        request: web.Request,
        op: Operation,
        body: bytes,
        headers: dict[str, str],
        now: float,
        record: dict[str, Any],
    ) -> web.StreamResponse:
        fidelity = self.fidelity
        is_lambda = op.service == "lambda"
        if is_lambda and fidelity.quota and op.name not in DATA_PLANE:
            get_fn = op.name == "GetFunction"
            refusal = self._limiters.setdefault(op.account, ProxyQuota()).admit(
                op.region,
                "get_function" if get_fn else "control",
                fidelity.get_function_rps if get_fn else fidelity.control_rps,
                now,
            )
            if refusal:
                return self._refuse(op, refusal, record)

        decision = self._injector.decide(op.name)
        if decision.latency:
            await self.clock.sleep(decision.latency)
            now = self.clock()  # the call reaches "AWS" only now
        if decision.kind == "throttle":
            record["fault"] = "throttle"
            return self._refuse(
                op,
                Refusal(429, throttle_code(op.service), "Rate exceeded", "", retry_after=1),
                record,
            )
        if decision.kind == "error":
            record["fault"] = "error"
            return self._refuse(op, service_error(op), record)

        if is_lambda:
            refusal = await self._lambda_rules(op, body, headers, now, record)
            if refusal:
                return self._refuse(op, refusal, record)

        status, resp_headers, resp_body = await self._forward(request, body, headers)
        record["status"] = status
        record["error"] = resp_headers.get("x-amzn-ErrorType") or None
        if is_lambda and 200 <= status < 300:
            resp_body = self._after_success(op, body, resp_body, now, record)

        if decision.kind == "apply_then_fail":
            record["fault"] = "apply_then_fail"
            record["forwarded_status"] = status
            return self._refuse(op, service_error(op), record)
        if decision.kind == "apply_then_drop":
            record["fault"] = "apply_then_drop"
            record["forwarded_status"] = status
            record["status"] = 0
            # Closing the transport without an answer is what a dropped connection looks like
            # to the client: it cannot tell whether the call took effect.
            if request.transport is not None:
                request.transport.abort()
            # Nothing reaches the client: aiohttp drops writes to an aborted transport.
            return web.Response(status=500)

        response = web.Response(status=status, body=resp_body)
        for key, value in resp_headers.items():
            if key.lower() not in _HOP_BY_HOP:
                response.headers.add(key, value)
        return response

    async def _forward(
        self, request: web.Request, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        out = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            async with self._session.request(
                request.method,
                f"{self.upstream}{request.raw_path}",
                headers=out,
                data=body,
                allow_redirects=False,
            ) as resp:
                data = await resp.read()
                return resp.status, {k: v for k, v in resp.headers.items()}, data
        except aiohttp.ClientError:
            return (
                502,
                {"x-amzn-ErrorType": "ServiceException"},
                # Not the exception's text: it would name moto's own address.
                lambda_body("Service", "the embedded AWS backend is unreachable"),
            )

    def _refuse(self, op: Operation, refusal: Refusal, record: dict[str, Any]) -> web.Response:
        record["status"] = refusal.status
        record["error"] = refusal.code
        if refusal.rule:
            record["rule"] = refusal.rule
        return error_response(op, refusal)

    # -- Lambda fidelity --------------------------------------------------------------------

    async def _lambda_rules(
        self,
        op: Operation,
        body: bytes,
        headers: dict[str, str],
        now: float,
        record: dict[str, Any],
    ) -> Refusal | None:
        fidelity = self.fidelity
        name = op.function
        auth = headers.get("authorization", "")
        if name and op.name in _BUSY_GUARDED:
            refusal = conflict_while_busy(
                fidelity,
                self._state(op.account),
                op.region,
                name,
                function_arn(op.region, name, account=op.account),
                now,
            )
            if refusal:
                return refusal
        if name and op.name in ("CreateAlias", "UpdateAlias") and fidelity.alias_rules:
            version: str | None = record.get("version")
            routing: dict[str, float] | None = record.get("routing")
            request = _json(body)
            if op.name == "UpdateAlias" and (version is None or "RoutingConfig" not in request):
                current = await self._get_alias(op, name, op.param("Name") or "", auth)
                if current is not None:
                    version = version or current[0]
                    if "RoutingConfig" not in request:
                        routing = current[1]
            published = await self._published_versions(op, name, auth)
            return check_alias(version, routing, published)
        if name and op.name == "DeleteFunction" and op.qualifier and op.qualifier.isdigit():
            aliases = await self._aliases(op, name, auth)
            users = referenced_version(aliases, op.qualifier)
            record["referenced_by"] = tuple(users)
            if users and fidelity.protect_referenced_versions:
                return Refusal(
                    409,
                    "ResourceConflictException",
                    "Unable to delete version because the following aliases reference it: "
                    f"[{', '.join(users)}]",
                    "referenced_version",
                )
        if op.name == "CreateEventSourceMapping" and fidelity.unique_event_sources:
            request = _json(body)
            source = str(request.get("EventSourceArn", ""))
            fn, qualifier = split_function(str(request.get("FunctionName", "")))
            record["function"], record["qualifier"] = fn, qualifier
            return duplicate_mapping(
                self._state(op.account), op.region, source, fn, qualifier or "$LATEST"
            )
        return None

    def _after_success(
        self, op: Operation, body: bytes, resp_body: bytes, now: float, record: dict[str, Any]
    ) -> bytes:
        fidelity = self.fidelity
        state = self._state(op.account)
        result = _json(resp_body)
        if op.name == "CreateFunction":
            op = dataclasses.replace(op, function=str(result.get("FunctionName", "")))
            record["function"] = op.function
            state.created(op.region, op.function or "", now)
        elif op.name in ("UpdateFunctionCode", "UpdateFunctionConfiguration") and op.function:
            state.updated(op.region, op.function, now)
        elif op.name == "PublishVersion":
            record["version"] = result.get("Version")
        elif op.name == "DeleteFunction" and op.function and not op.qualifier:
            state.deleted(op.region, op.function)
        elif op.name == "CreateEventSourceMapping" and "UUID" in result:
            request = _json(body)
            fn, qualifier = split_function(str(request.get("FunctionName", "")))
            state.mappings[str(result["UUID"])] = (
                op.region,
                str(request.get("EventSourceArn", "")),
                fn,
                qualifier or "$LATEST",
            )
        elif op.name == "DeleteEventSourceMapping":
            state.mappings.pop(op.param("UUID") or "", None)

        if op.name in _SHOWS_STATE and op.function and op.qualifier in (None, "$LATEST"):
            config = result.get("Configuration") if op.name == "GetFunction" else result
            if isinstance(config, dict):
                changed = False
                if state.pending(fidelity, op.region, op.function, now):
                    config.update(
                        State="Pending",
                        StateReason="The function is being created.",
                        StateReasonCode="Creating",
                        LastUpdateStatus="InProgress",
                        LastUpdateStatusReason="The function is being created.",
                        LastUpdateStatusReasonCode="Creating",
                    )
                    changed = True
                elif state.in_progress(fidelity, op.region, op.function, now):
                    config.update(
                        LastUpdateStatus="InProgress",
                        LastUpdateStatusReason="The function is being updated.",
                        LastUpdateStatusReasonCode="Updating",
                    )
                    changed = True
                if changed:
                    return json.dumps(result).encode()
        return resp_body

    async def _read(self, path: str, op: Operation, auth: str) -> dict[str, Any] | None:
        """A read straight from moto, outside the journal and the quota."""
        assert self._session is not None
        # moto routes by the SigV4 scope of the Authorization header (the caller's does), and
        # the account header pins the read to the account the call was placed in.
        async with self._session.get(
            f"{self.upstream}{path}",
            headers={"Authorization": auth, "x-moto-account-id": op.account},
        ) as resp:
            if resp.status != 200:
                return None
            data = await resp.read()
        return _json(data)

    async def _published_versions(self, op: Operation, name: str, auth: str) -> set[str]:
        data = await self._read(
            f"{_API}/functions/{quote(name, safe='')}/versions?MaxItems=10000", op, auth
        )
        versions = (data or {}).get("Versions", [])
        return {str(v.get("Version")) for v in versions}

    async def _aliases(
        self, op: Operation, name: str, auth: str
    ) -> dict[str, tuple[str, dict[str, float]]]:
        data = await self._read(
            f"{_API}/functions/{quote(name, safe='')}/aliases?MaxItems=10000", op, auth
        )
        return {
            str(a["Name"]): (
                str(a.get("FunctionVersion")),
                dict((a.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}),
            )
            for a in (data or {}).get("Aliases", [])
        }

    async def _get_alias(
        self, op: Operation, name: str, alias: str, auth: str
    ) -> tuple[str, dict[str, float]] | None:
        return (await self._aliases(op, name, auth)).get(alias)


# -- request details ----------------------------------------------------------------------------


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data) if data else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _alias_request(body: bytes) -> dict[str, Any]:
    request = _json(body)
    out: dict[str, Any] = {}
    if request.get("FunctionVersion"):
        out["version"] = str(request["FunctionVersion"])
    routing = (request.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    if isinstance(routing, dict):
        out["routing"] = {str(k): float(v) for k, v in routing.items()}
    return out
