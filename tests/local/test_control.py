"""The control endpoint and the guard in front of every request, row by row of the hostile
cases a web page or a careless caller can send (P3-P10), over real HTTP."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from engine.local import LocalAwsThread
from engine.local.control import CONTROL_BODY_MAX, host_allowed
from engine.local.proxy import Proxy
from tests.local.conftest import Clients

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

# What a SigV4-signed Lambda call carries (moto routes on the scope, it checks no signature).
LAMBDA_AUTH = (
    "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/lambda/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _port(aws: LocalAwsThread) -> int:
    return int(aws.endpoint_url.rsplit(":", 1)[1])


async def _status(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, str]:
    async with http.request(method, url, **kwargs) as resp:
        return resp.status, await resp.text()


@pytest.mark.parametrize(
    ("host", "control", "allowed"),
    [
        pytest.param("127.0.0.1:{port}", True, True, id="ipv4"),
        pytest.param("localhost:{port}", True, True, id="localhost"),
        pytest.param("LOCALHOST:{port}", True, True, id="case-insensitive"),
        pytest.param("[::1]:{port}", True, True, id="ipv6"),
        pytest.param("attacker.example", True, False, id="foreign-name"),
        pytest.param("attacker.example:{port}", True, False, id="foreign-name-our-port"),
        pytest.param("127.0.0.1:1", True, False, id="other-port"),
        pytest.param("127.0.0.1", True, False, id="no-port"),
        pytest.param("127.0.0.1.attacker.example:{port}", True, False, id="suffix-trick"),
        pytest.param("bucket.localhost:{port}", True, False, id="subdomain-control"),
        pytest.param("bucket.localhost:{port}", False, True, id="subdomain-aws-api"),
        pytest.param("", True, False, id="empty"),
    ],
)
def test_host_names_this_server_only(host: str, control: bool, allowed: bool) -> None:
    """A Host header passes only when it names this server: a loopback name and its port."""
    assert host_allowed(host.format(port=4566), 4566, subdomains=not control) is allowed


async def test_p3_foreign_host_is_refused(aws: LocalAwsThread, http: aiohttp.ClientSession) -> None:
    """P3: a request whose Host is not this server (DNS rebinding) gets 403, on the control
    endpoint and on the AWS API alike; loopback names with the port are served."""
    base = aws.endpoint_url
    port = _port(aws)
    for path in ("/_glam/journal", "/_glam/health"):
        status, text = await _status(http, "GET", base + path, headers={"Host": "attacker.ex"})
        assert status == 403, text
        assert "entries" not in text
    status, _ = await _status(
        http,
        "GET",
        f"{base}/2015-03-31/functions/",
        headers={"Host": "attacker.ex", "Authorization": LAMBDA_AUTH},
    )
    assert status == 403
    for name in ("127.0.0.1", "localhost", "[::1]"):
        status, _ = await _status(
            http, "GET", base + "/_glam/journal", headers={"Host": f"{name}:{port}"}
        )
        assert status == 200
    assert aws.journal.entries == []  # refused requests are not AWS calls: nothing journaled


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": "http://attacker.example"}, id="foreign-origin"),
        pytest.param({"Origin": "null"}, id="null-origin"),
        pytest.param({"Origin": "http://127.0.0.1:1"}, id="other-loopback-port"),
        pytest.param({"Origin": "https://127.0.0.1:{port}"}, id="other-scheme"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, id="fetch-cross-site"),
        pytest.param({"Sec-Fetch-Site": "same-site"}, id="fetch-same-site"),
    ],
)
async def test_p4_cross_origin_simple_post_is_refused(
    aws: LocalAwsThread, clients: Clients, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    """P4: a cross-origin "simple" text/plain POST to /_glam/faults is refused with 403 and
    changes nothing: calls keep working."""
    sent = {k: v.format(port=_port(aws)) for k, v in headers.items()}
    sent["Content-Type"] = "text/plain"
    status, _ = await _status(
        http, "POST", aws.endpoint_url + "/_glam/faults", data="*:error=1", headers=sent
    )
    assert status == 403
    assert str(aws.aws.proxy.faults) == "seed=0"
    await clients.lambda_.list_functions()


async def test_p4_same_origin_is_served(aws: LocalAwsThread, http: aiohttp.ClientSession) -> None:
    """A page served by this same origin, or a tool saying so, is let in."""
    port = _port(aws)
    for headers in (
        {"Origin": f"http://127.0.0.1:{port}"},
        {"Origin": f"http://localhost:{port}"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
    ):
        status, _ = await _status(
            http, "POST", aws.endpoint_url + "/_glam/faults", data="seed=3", headers=headers
        )
        assert status == 200, headers
    assert str(aws.aws.proxy.faults) == "seed=3"


async def test_p4_cross_origin_aws_call_is_refused(
    aws: LocalAwsThread, http: aiohttp.ClientSession
) -> None:
    """A web page cannot reach the AWS API either: a preflight or a form POST from a foreign
    origin gets 403, so it can neither read nor change the emulator."""
    for method, extra in (
        ("OPTIONS", {"Access-Control-Request-Method": "POST"}),
        ("POST", {"Content-Type": "application/x-www-form-urlencoded"}),
    ):
        async with http.request(
            method,
            aws.endpoint_url + "/",
            data="Action=ListRoles&Version=2010-05-08",
            headers={"Origin": "http://attacker.example", **extra},
        ) as resp:
            assert resp.status == 403
            assert "Access-Control-Allow-Origin" not in resp.headers


async def test_p5_cross_origin_reset_is_refused(
    aws: LocalAwsThread, clients: Clients, http: aiohttp.ClientSession
) -> None:
    """P5: a cross-origin POST /_glam/reset is refused; the account is not wiped."""
    await clients.iam.create_role(RoleName="keep", AssumeRolePolicyDocument="{}")
    status, _ = await _status(
        http,
        "POST",
        aws.endpoint_url + "/_glam/reset",
        headers={"Origin": "http://attacker.example", "Content-Type": "text/plain"},
    )
    assert status == 403
    roles = (await clients.iam.list_roles())["Roles"]
    assert [r["RoleName"] for r in roles] == ["keep"]


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"control_rps": 0}, id="rps-zero"),
        pytest.param({"control_rps": "x"}, id="rps-string"),
        pytest.param({"control_rps": -3}, id="rps-negative"),
        pytest.param({"control_rps": 2.5}, id="rps-fraction"),
        pytest.param({"control_rps": True}, id="rps-bool"),
        pytest.param({"get_function_rps": 10**12}, id="rps-huge"),
        pytest.param({"pending_seconds": -1}, id="seconds-negative"),
        pytest.param({"update_seconds": 1e12}, id="seconds-huge"),
        pytest.param({"pending_seconds": "1"}, id="seconds-string"),
        pytest.param({"quota": "no"}, id="switch-string"),
        pytest.param({"no_such_setting": 1}, id="unknown"),
        pytest.param([1, 2], id="not-an-object"),
    ],
)
async def test_p6_invalid_fidelity_is_refused(
    aws: LocalAwsThread, clients: Clients, http: aiohttp.ClientSession, changes: Any
) -> None:
    """P6: a fidelity setting of the wrong type or out of range is 400 and changes nothing."""
    before = aws.fidelity
    async with http.post(aws.endpoint_url + "/_glam/fidelity", json=changes) as resp:
        assert resp.status == 400
        assert "error" in await resp.json()
    assert aws.fidelity == before
    await clients.lambda_.list_functions()


async def test_p6_nan_seconds_are_refused(aws: LocalAwsThread, http: aiohttp.ClientSession) -> None:
    """JSON's NaN (Python's json reads it) is not a duration."""
    async with http.post(
        aws.endpoint_url + "/_glam/fidelity", data='{"pending_seconds": NaN}'
    ) as resp:
        assert resp.status == 400


async def test_p6_valid_fidelity_applies(aws: LocalAwsThread, http: aiohttp.ClientSession) -> None:
    """In-range settings of the right type are applied and echoed back."""
    async with http.post(
        aws.endpoint_url + "/_glam/fidelity",
        json={"control_rps": 3, "pending_seconds": 0.5, "quota": False},
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["control_rps"] == 3
    assert (aws.fidelity.control_rps, aws.fidelity.pending_seconds, aws.fidelity.quota) == (
        3,
        0.5,
        False,
    )


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param("*:latency=99999999999999999999s", id="latency-astronomic"),
        pytest.param("*:latency=301s", id="latency-over-limit"),
        pytest.param("*:latency=200s,latency=200s", id="latencies-add-up"),
        pytest.param("*:throttle=nan", id="share-nan"),
    ],
)
async def test_p7_unbounded_fault_is_refused(
    aws: LocalAwsThread, http: aiohttp.ClientSession, spec: str
) -> None:
    """P7: a latency past the bound (or a share that is no probability) is 400; the rules in
    force stay."""
    aws.set_faults("seed=9")
    status, text = await _status(http, "POST", aws.endpoint_url + "/_glam/faults", data=spec)
    assert status == 400, text
    assert str(aws.aws.proxy.faults) == "seed=9"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"spec": ', id="broken-json"),
        pytest.param(b'{"spec": 5}', id="spec-not-a-string"),
        pytest.param(b'{"spec": "x:y=z"}', id="bad-spec-in-json"),
        pytest.param(b"\xff\xfe*:error=1", id="not-utf8"),
    ],
)
async def test_p8_invalid_fault_body_is_400(
    aws: LocalAwsThread, http: aiohttp.ClientSession, body: bytes
) -> None:
    """P8: a body that is not a spec (broken JSON included) is 400, never 500."""
    status, _ = await _status(http, "POST", aws.endpoint_url + "/_glam/faults", data=body)
    assert status == 400


async def test_p8_bad_clock_and_fidelity_json_is_400(
    aws: LocalAwsThread, http: aiohttp.ClientSession
) -> None:
    """Broken JSON on the other posting endpoints is 400 too."""
    for path in ("/_glam/fidelity", "/_glam/clock"):
        status, _ = await _status(http, "POST", aws.endpoint_url + path, data=b"{nope")
        assert status == 400, path


async def _chunks(total: int, piece: bytes) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)


async def _refused_upload(
    http: aiohttp.ClientSession, url: str, body: AsyncIterator[bytes]
) -> tuple[int, str]:
    """POST ``body`` chunked, which the server refuses while it is still being sent, and drop
    the connection once the answer is read.

    The client stops sending there, and aiohttp closes such a connection gracefully: its
    transport first flushes the request bytes it still buffers (the server reads them
    within milliseconds). The test's event loop often ends sooner, and the transport, still
    closing, is then collected with its socket open: a ResourceWarning that fails some later
    test. Aborting it closes the socket at once."""
    async with http.post(url, data=body) as resp:
        protocol = resp.connection.protocol if resp.connection is not None else None
        try:
            return resp.status, await resp.text()
        finally:
            closed = protocol.closed if protocol is not None else None
            if protocol is not None:
                protocol.abort()
            if closed is not None:
                with contextlib.suppress(aiohttp.ClientError):
                    await closed


@pytest.mark.parametrize("path", ["/_glam/faults", "/_glam/fidelity", "/_glam/reset"])
async def test_p9_big_body_is_413_and_not_echoed(
    aws: LocalAwsThread, http: aiohttp.ClientSession, path: str
) -> None:
    """P9: a control body past 64 KiB is 413, whether its length is declared or it comes
    chunked, and the answer does not repeat it."""
    marker = b"CANARY-BODY-" * 10
    declared = marker * (CONTROL_BODY_MAX // len(marker) + 1)
    status, text = await _status(http, "POST", aws.endpoint_url + path, data=declared)
    assert status == 413
    assert "CANARY" not in text
    try:
        status, text = await _refused_upload(
            http, aws.endpoint_url + path, _chunks(4 * 1024**2, marker * 100)
        )
    except aiohttp.ClientError:
        # The server may close the connection while the client is still sending: refused too.
        status, text = 413, ""
    assert status == 413
    assert "CANARY" not in text
    assert str(aws.aws.proxy.faults) == "seed=0"


async def test_p9_errors_quote_only_a_little(
    aws: LocalAwsThread, http: aiohttp.ClientSession
) -> None:
    """A bad spec just under the cap is refused with a message that quotes a few characters
    of it, not the body."""
    spec = "x" * (CONTROL_BODY_MAX - 10)
    status, text = await _status(http, "POST", aws.endpoint_url + "/_glam/faults", data=spec)
    assert status == 400
    assert len(text) < 1000


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/moto-api/", id="dashboard"),
        pytest.param("GET", "/moto-api/data.json", id="state-dump"),
        pytest.param("POST", "/moto-api/seed?a=42", id="seed"),
        pytest.param("POST", "/moto-api/reset", id="reset"),
        pytest.param("POST", "/moto-api/recorder/start-recording", id="recorder-start"),
        pytest.param("POST", "/moto-api/recorder/upload-recording", id="recorder-upload"),
        pytest.param("GET", "/moto-api/recorder/download-recording", id="recorder-download"),
        pytest.param("GET", "/%6Doto-api/data.json", id="percent-encoded"),
        pytest.param("GET", "/favicon.ico", id="favicon"),
        pytest.param("GET", "/_glam/nothing-here", id="unknown-control"),
        pytest.param("PUT", "/_glam/faults", id="control-wrong-method"),
    ],
)
async def test_p10_moto_management_api_is_not_reachable(
    aws: LocalAwsThread, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    """P10: moto's management API (state dump, seed, recorder, reset) is 404 through the
    proxy, in any spelling; unknown control paths are 404 rather than forwarded."""
    status, text = await _status(http, method, aws.endpoint_url + path, data=b"{}")
    assert status == 404, text
    assert aws.journal.entries == []


async def test_p10_moto_itself_serves_only_the_reset(
    aws: LocalAwsThread, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Behind the proxy, moto too refuses its management API except the reset the proxy
    uses; the recorder never writes a file, and moto adds no CORS headers."""
    before = set(os.listdir(os.getcwd()))
    for method, path in (
        ("GET", "/moto-api/data.json"),
        ("POST", "/moto-api/recorder/start-recording"),
        ("POST", "/moto-api/recorder/upload-recording"),
    ):
        status, _ = await _status(http, method, aws.moto_url + path, data=b"x")
        assert status == 404, path
    assert "moto_recording" not in set(os.listdir(os.getcwd())) - before
    status, _ = await _status(http, "POST", aws.moto_url + "/moto-api/reset")
    assert status == 200
    async with http.get(
        aws.moto_url + "/2015-03-31/functions/",
        headers={"Origin": "http://attacker.example", "Authorization": LAMBDA_AUTH},
    ) as resp:
        assert resp.status == 200
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_sdk_clients_pass_the_guard(aws: LocalAwsThread, clients: Clients) -> None:
    """botocore sends Host 127.0.0.1:<port> and no Origin: every SDK call is served."""
    await clients.iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    assert (await clients.lambda_.list_functions())["Functions"] == []
    assert (await clients.sts.get_caller_identity())["Account"] == "123456789012"
    assert [e.status for e in aws.journal] == [200, 200, 200]


async def test_unreachable_backend_does_not_name_moto() -> None:
    """When moto cannot be reached the answer is 502 without moto's address in it."""
    proxy = Proxy("http://127.0.0.1:9")  # the discard port: nothing listens there
    await proxy.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"http://127.0.0.1:{proxy.port}/2015-03-31/functions/",
                headers={"Authorization": LAMBDA_AUTH},
            ) as resp,
        ):
            assert resp.status == 502
            text = await resp.text()
        assert ":9" not in text
        assert json.loads(text)["Type"] == "Service"
    finally:
        await proxy.stop()


async def test_refused_call_is_aws_shaped(aws: LocalAwsThread) -> None:
    """A refused AWS call (here by a botocore client sent to a foreign Host through a
    header) is an AccessDenied error botocore can parse."""
    from engine.local.clients import aws_client

    async with aws_client("lambda", aws.endpoint_url) as lam:
        lam.meta.events.register(
            "before-send.lambda.ListFunctions",
            lambda request, **_: request.headers.__setitem__("Origin", "http://evil.example"),
        )
        with pytest.raises(ClientError) as exc:
            await lam.list_functions()
    assert exc.value.response["Error"]["Code"] == "AccessDeniedException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
