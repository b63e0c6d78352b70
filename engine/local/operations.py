"""Name the AWS operation behind a raw HTTP request, the way the service itself would.

The proxy sees bytes, not botocore calls. The service comes from the SigV4 credential scope
(``Credential=AKID/20240101/us-east-1/lambda/aws4_request``), which also gives the region and
the access key (from which the proxy learns the account, see ``engine.local.accounts``).
The operation comes from botocore's own service model, so every operation of every service is
recognised without a hand-written table:

- REST protocols (Lambda, S3, API Gateway v2): HTTP method plus the model's ``requestUri``
  template, the most specific template winning;
- query protocol (IAM, ELBv2): the ``Action`` form field;
- JSON protocol (SQS, Secrets Manager, SSM): the ``X-Amz-Target`` header;
- Smithy RPC v2 CBOR (CloudWatch): the ``/service/<name>/operation/<op>`` path.

For Lambda it also pulls out the function name and qualifier, from any of the forms AWS
accepts: ``name``, ``name:qualifier``, a partial ARN or a full ARN, plus ``?Qualifier=``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import botocore.session

ACCOUNT_ID = "123456789012"
"""The account moto puts every resource in when credentials are dummies."""

_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")

# Signing names that differ from botocore's service names.
_SIGNING_TO_SERVICE = {
    "monitoring": "cloudwatch",
    "elasticloadbalancing": "elbv2",
    "apigateway": "apigatewayv2",
    "lambda": "lambda",
}


@dataclass(frozen=True)
class Operation:
    """What one request asks for."""

    service: str
    name: str
    region: str
    function: str | None = None
    qualifier: str | None = None
    path_params: tuple[tuple[str, str], ...] = ()
    access_key: str | None = None
    """The access key id the request was signed with (an identifier, not a secret)."""
    account: str = ACCOUNT_ID
    """The account the call is made in; ``identify`` cannot know it, the proxy fills it in."""

    def param(self, key: str) -> str | None:
        """A path parameter of the request URI, decoded."""
        return dict(self.path_params).get(key)


def split_function(name: str) -> tuple[str, str | None]:
    """``(function name, qualifier)`` from any name form Lambda accepts."""
    if name.startswith("arn:"):
        parts = name.split(":")
        # arn:aws:lambda:region:account:function:name[:qualifier]
        return parts[6], (parts[7] if len(parts) > 7 else None)
    parts = name.split(":")
    if len(parts) >= 3 and parts[1] == "function":
        # account:function:name[:qualifier]
        return parts[2], (parts[3] if len(parts) > 3 else None)
    if len(parts) == 2:
        return parts[0], parts[1]
    return name, None


def function_arn(
    region: str, name: str, qualifier: str | None = None, *, account: str = ACCOUNT_ID
) -> str:
    """The ARN moto (and AWS) give a function or one of its versions or aliases."""
    arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


@dataclass(frozen=True)
class _Route:
    method: str
    regex: re.Pattern[str]
    labels: tuple[str, ...]
    query_keys: tuple[str, ...]
    name: str
    specificity: tuple[int, int]


@functools.cache
def _model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


@functools.cache
def _routes(service: str) -> tuple[_Route, ...]:
    model = _model(service)
    routes: list[_Route] = []
    for op_name in model.operation_names:
        http = model.operation_model(op_name).http
        uri: str = http.get("requestUri", "/")
        path, _, query = uri.partition("?")
        pattern = ""
        literal = 0
        labels: list[str] = []
        for piece in re.split(r"(\{[^}]+\})", path):
            if piece.startswith("{"):
                label = piece[1:-1]
                greedy = label.endswith("+")
                # Labels such as "resource-arn" are not valid group names: capture by position.
                labels.append(label.rstrip("+"))
                pattern += "(.+)" if greedy else "([^/]+)"
            else:
                pattern += re.escape(piece)
                literal += len(piece)
        if not path.endswith("/"):
            pattern += "/?"  # Lambda's ListFunctions is "/functions/" and clients vary
        keys = tuple(k.split("=")[0] for k in query.split("&") if k)
        routes.append(
            _Route(
                method=http.get("method", "POST"),
                regex=re.compile(f"^{pattern}$"),
                labels=tuple(labels),
                query_keys=keys,
                name=op_name,
                specificity=(len(keys), literal),
            )
        )
    routes.sort(key=lambda r: r.specificity, reverse=True)
    return tuple(routes)


def identify(
    method: str, raw_path: str, query: str, headers: dict[str, str], body: bytes
) -> Operation:
    """Name the operation of one request; ``Unknown`` when nothing matches."""
    auth = headers.get("authorization", "")
    scope = _SCOPE.search(auth)
    access_key, region, signing = scope.groups() if scope else (None, "us-east-1", "")
    service = _SIGNING_TO_SERVICE.get(signing, signing)
    name = "Unknown"
    params: dict[str, str] = {}
    query_args = parse_qs(query, keep_blank_values=True)
    target = headers.get("x-amz-target", "")
    if target:
        name = target.rsplit(".", 1)[-1]
    elif raw_path.startswith("/service/") and "/operation/" in raw_path:
        name = raw_path.rsplit("/operation/", 1)[-1]
    elif service:
        try:
            protocol = _model(service).protocol
        except Exception:  # an unknown service name: moto answers it, we just cannot name it
            protocol = ""
        if protocol in ("query", "ec2"):
            form = parse_qs(body.decode("utf-8", "replace")) if body else {}
            action = form.get("Action") or query_args.get("Action")
            name = action[0] if action else "Unknown"
        elif protocol.startswith("rest"):
            path = raw_path.split("?", 1)[0]
            for route in _routes(service):
                if route.method != method or not all(k in query_args for k in route.query_keys):
                    continue
                match = route.regex.match(path)
                if match:
                    name = route.name
                    params = {
                        k: unquote(v) for k, v in zip(route.labels, match.groups(), strict=True)
                    }
                    break
    if "x-amz-copy-source" not in headers:
        # S3 tells a copy from an upload only by this header, not by the URI.
        name = {"CopyObject": "PutObject", "UploadPartCopy": "UploadPart"}.get(name, name)
    function = qualifier = None
    if service == "lambda":
        raw = params.get("FunctionName")
        if raw:
            function, qualifier = split_function(raw)
        q = query_args.get("Qualifier")
        if q and q[0]:
            qualifier = q[0]
    return Operation(
        service=service or "unknown",
        name=name,
        region=region,
        function=function,
        qualifier=qualifier,
        path_params=tuple(sorted(params.items())),
        access_key=access_key,
    )
