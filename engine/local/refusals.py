"""AWS-shaped answers the proxy gives instead of moto's: errors in each service's protocol.

botocore parses an error by the protocol of the service it called (JSON with
``x-amzn-ErrorType`` for Lambda, SQS and most others, XML for IAM, STS, S3, ELBv2 and EC2,
CBOR for CloudWatch), so a refusal is written in that protocol or the client would not see
its code.
"""

from __future__ import annotations

import json
import time

from aiohttp import web

from engine.local.fidelity import Refusal
from engine.local.operations import Operation


def throttle_code(service: str) -> str:
    return {
        "lambda": "TooManyRequestsException",
        "apigatewayv2": "TooManyRequestsException",
        "s3": "SlowDown",
    }.get(service, "Throttling")


def service_error(op: Operation) -> Refusal:
    code = "ServiceException" if op.service == "lambda" else "InternalFailure"
    return Refusal(500, code, "An internal error occurred (injected fault).", "")


def lambda_body(kind: str, message: str, **extra: str) -> bytes:
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
            body = lambda_body("User" if sender else "Service", refusal.message, **extra)
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


def forbidden(reason: str) -> web.Response:
    """403 for a request the guard refuses (see ``engine.local.control``)."""
    return web.json_response(
        {"__type": "AccessDeniedException", "message": reason},
        status=403,
        headers={"x-amzn-ErrorType": "AccessDeniedException"},
    )
