"""The fidelity and fault proxy: an aiohttp server on 127.0.0.1 in front of moto.

Every request is named (``operations.identify``), journaled, possibly delayed or failed by
the fault injector, checked against the fidelity rules, forwarded to moto byte for byte, and
its answer possibly rewritten (``State: Pending``, ``LastUpdateStatus: InProgress``).

Order of checks for one call: quota (AWS throttles before anything else), injected
throttle/error, fidelity rules, forward, then injected apply-then-fail / apply-then-drop.

Control endpoint (JSON; not an AWS API, so it is never journaled or throttled)::

    GET  /_glam/health              {"ok": true}
    GET  /_glam/journal             {"entries": [...]}      every call so far
    GET  /_glam/faults              {"spec": "seed=0;..."}
    POST /_glam/faults              body: a fault spec string, or {"spec": "..."}
    GET  /_glam/fidelity            the Fidelity settings
    POST /_glam/fidelity            body: {"field": value, ...} changes those settings
    POST /_glam/reset               empty moto, the journal and the proxy's own state
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from engine.errors import GlamError, LocalAwsError
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
from engine.local.journal import DATA_PLANE, Journal, JournalEntry
from engine.local.operations import Operation, function_arn, identify, split_function

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
        self._clock = clock
        self._injector = FaultInjector(parse_faults(faults) if isinstance(faults, str) else faults)
        self._state = LambdaState()
        self._limiter = ProxyQuota()
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1:``port`` (0: a free one); return the port."""
        app = web.Application(client_max_size=1024**3)
        app.router.add_get("/_glam/health", self._health)
        app.router.add_get("/_glam/journal", self._get_journal)
        app.router.add_get("/_glam/faults", self._get_faults)
        app.router.add_post("/_glam/faults", self._post_faults)
        app.router.add_get("/_glam/fidelity", self._get_fidelity)
        app.router.add_post("/_glam/fidelity", self._post_fidelity)
        app.router.add_post("/_glam/reset", self._post_reset)
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

    async def reset(
        self, *, faults: FaultSpec | str = "", fidelity: Fidelity | None = None
    ) -> None:
        """Empty moto and forget every call and timer, as if just started."""
        assert self._session is not None, "start() the proxy first"
        async with self._session.post(f"{self.upstream}/moto-api/reset") as resp:
            if resp.status != 200:
                raise LocalAwsError(
                    f"moto refused the reset ({resp.status})",
                    hint="restart the embedded AWS",
                )
        self.journal.clear()
        self._state = LambdaState()
        self._limiter.clear()
        self.set_faults(faults)
        if fidelity is not None:
            self.fidelity = fidelity

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _get_journal(self, _: web.Request) -> web.Response:
        return web.json_response({"entries": [e.to_json() for e in self.journal]})

    async def _get_faults(self, _: web.Request) -> web.Response:
        return web.json_response({"spec": str(self.faults)})

    async def _post_faults(self, request: web.Request) -> web.Response:
        text = (await request.text()).strip()
        if text.startswith("{"):
            text = str(json.loads(text).get("spec", ""))
        try:
            parsed = self.set_faults(text)
        except GlamError as exc:
            return web.json_response({"error": exc.one_line()}, status=400)
        return web.json_response({"spec": str(parsed)})

    async def _get_fidelity(self, _: web.Request) -> web.Response:
        return web.json_response(dataclasses.asdict(self.fidelity))

    async def _post_fidelity(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            self.fidelity = dataclasses.replace(self.fidelity, **changes)
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(dataclasses.asdict(self.fidelity))

    async def _post_reset(self, _: web.Request) -> web.Response:
        await self.reset()
        return web.json_response({"ok": True})

    # -- the proxy --------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            op = identify(request.method, request.raw_path, request.query_string, headers, body)
        except Exception:  # naming is best effort; the call must still reach moto
            op = Operation(service="unknown", name="Unknown", region="us-east-1")
        now = self._clock()
        started = time.perf_counter()
        self._seq += 1
        record: dict[str, Any] = {
            "seq": self._seq,
            "t": now,
            "at": datetime.now(UTC).isoformat(),
            "service": op.service,
            "operation": op.name,
            "region": op.region,
            "function": op.function,
            "qualifier": op.qualifier,
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
            refusal = self._limiter.admit(
                op.region,
                "get_function" if get_fn else "control",
                fidelity.get_function_rps if get_fn else fidelity.control_rps,
                now,
            )
            if refusal:
                return self._refuse(op, refusal, record)

        decision = self._injector.decide(op.name)
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.kind == "throttle":
            record["fault"] = "throttle"
            return self._refuse(
                op,
                Refusal(429, _throttle_code(op.service), "Rate exceeded", "", retry_after=1),
                record,
            )
        if decision.kind == "error":
            record["fault"] = "error"
            return self._refuse(op, _service_error(op), record)

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
            return self._refuse(op, _service_error(op), record)
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
        except aiohttp.ClientError as exc:
            return (
                502,
                {"x-amzn-ErrorType": "ServiceException"},
                _lambda_body("Service", f"embedded AWS backend unreachable: {exc}"),
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
                fidelity, self._state, op.region, name, function_arn(op.region, name), now
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
            return duplicate_mapping(self._state, op.region, source, fn, qualifier or "$LATEST")
        return None

    def _after_success(
        self, op: Operation, body: bytes, resp_body: bytes, now: float, record: dict[str, Any]
    ) -> bytes:
        fidelity = self.fidelity
        result = _json(resp_body)
        if op.name == "CreateFunction":
            op = dataclasses.replace(op, function=str(result.get("FunctionName", "")))
            record["function"] = op.function
            self._state.created(op.region, op.function or "", now)
        elif op.name in ("UpdateFunctionCode", "UpdateFunctionConfiguration") and op.function:
            self._state.updated(op.region, op.function, now)
        elif op.name == "PublishVersion":
            record["version"] = result.get("Version")
        elif op.name == "DeleteFunction" and op.function and not op.qualifier:
            self._state.deleted(op.region, op.function)
        elif op.name == "CreateEventSourceMapping" and "UUID" in result:
            request = _json(body)
            fn, qualifier = split_function(str(request.get("FunctionName", "")))
            self._state.mappings[str(result["UUID"])] = (
                op.region,
                str(request.get("EventSourceArn", "")),
                fn,
                qualifier or "$LATEST",
            )
        elif op.name == "DeleteEventSourceMapping":
            self._state.mappings.pop(op.param("UUID") or "", None)

        if op.name in _SHOWS_STATE and op.function and op.qualifier in (None, "$LATEST"):
            config = result.get("Configuration") if op.name == "GetFunction" else result
            if isinstance(config, dict):
                changed = False
                if self._state.pending(fidelity, op.region, op.function, now):
                    config.update(
                        State="Pending",
                        StateReason="The function is being created.",
                        StateReasonCode="Creating",
                        LastUpdateStatus="InProgress",
                        LastUpdateStatusReason="The function is being created.",
                        LastUpdateStatusReasonCode="Creating",
                    )
                    changed = True
                elif self._state.in_progress(fidelity, op.region, op.function, now):
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
        # moto routes by the SigV4 scope of the Authorization header; the caller's does.
        async with self._session.get(
            f"{self.upstream}{path}", headers={"Authorization": auth}
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


# -- AWS-shaped errors ------------------------------------------------------------------------


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


def _throttle_code(service: str) -> str:
    return {
        "lambda": "TooManyRequestsException",
        "apigatewayv2": "TooManyRequestsException",
        "s3": "SlowDown",
    }.get(service, "Throttling")


def _service_error(op: Operation) -> Refusal:
    code = "ServiceException" if op.service == "lambda" else "InternalFailure"
    return Refusal(500, code, "An internal error occurred (injected fault).", "")


def _lambda_body(kind: str, message: str, **extra: str) -> bytes:
    return json.dumps({"Type": kind, "message": message, **extra}).encode()


def error_response(op: Operation, refusal: Refusal) -> web.Response:
    """An error shaped the way the service's protocol shapes it, so botocore parses the code."""
    headers = {"x-amzn-RequestId": f"glam-{time.monotonic_ns():x}"}
    if refusal.retry_after is not None:
        headers["Retry-After"] = str(refusal.retry_after)
    sender = refusal.status < 500
    if op.service in ("lambda", "apigatewayv2", "sqs") or op.service not in _XML_SERVICES:
        headers["x-amzn-ErrorType"] = refusal.code
        if op.service == "lambda":
            extra = {"Reason": "CallerRateLimitExceeded"} if refusal.status == 429 else {}
            body = _lambda_body("User" if sender else "Service", refusal.message, **extra)
        else:
            body = json.dumps({"__type": refusal.code, "message": refusal.message}).encode()
        if op.service == "cloudwatch":
            headers["smithy-protocol"] = "rpc-v2-cbor"
            return web.Response(
                status=refusal.status,
                body=_cbor_text_map({"__type": refusal.code, "message": refusal.message}),
                headers=headers,
                content_type="application/cbor",
            )
        return web.Response(
            status=refusal.status, body=body, headers=headers, content_type="application/json"
        )
    xml = (
        "<ErrorResponse><Error>"
        f"<Type>{'Sender' if sender else 'Receiver'}</Type>"
        f"<Code>{refusal.code}</Code><Message>{refusal.message}</Message>"
        f"</Error><RequestId>{headers['x-amzn-RequestId']}</RequestId></ErrorResponse>"
    )
    if op.service == "s3":
        xml = f"<Error><Code>{refusal.code}</Code><Message>{refusal.message}</Message></Error>"
    return web.Response(status=refusal.status, text=xml, headers=headers, content_type="text/xml")


_XML_SERVICES = frozenset({"iam", "elbv2", "s3", "sts", "ec2"})


def _cbor_text_map(values: dict[str, str]) -> bytes:
    """The few bytes of CBOR an error body needs: a map of text strings (RFC 8949)."""

    def head(major: int, length: int) -> bytes:
        if length < 24:
            return bytes([major << 5 | length])
        if length < 256:
            return bytes([major << 5 | 24, length])
        return bytes([major << 5 | 25]) + length.to_bytes(2, "big")

    out = bytearray(head(5, len(values)))
    for key, value in values.items():
        for text in (key, value):
            raw = text.encode()
            out += head(3, len(raw)) + raw
    return bytes(out)
