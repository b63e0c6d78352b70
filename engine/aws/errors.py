"""Translate botocore / aiobotocore failures into glam's error tree, at the adapter boundary.

    botocore / aiohttp failure                         glam error
    ────────────────────────────────────────────────   ────────────────────────────────────
    429, Throttling*, TooManyRequests*, RequestLimit…  AwsThrottled (retry_after from AWS)
    ResourceConflictException (update in progress)     AwsConflict (retryable: wait, retry)
    ResourceConflictException (already exists),        AwsConflict (not retryable: read it)
      PreconditionFailed (stale RevisionId)
    ResourceNotFound*, NotFound, 404                   AwsNotFound
    InvalidParameterValue, Validation*, other 4xx      AwsInvalid
    AccessDenied, bad/expired credentials              AwsError (not retryable)
    5xx, dropped connection, read timeout:
        on a mutating call                             AwsAmbiguous (read before repeating)
        on a read                                      AwsError (retryable)
    cannot connect at all (request never sent)         AwsError (retryable, even for mutations)
    no credentials / no region                         AwsError (not retryable)

Messages are passed through :func:`engine.logs.redact`, so nothing AWS echoes back (or an
endpoint URL with user info) can carry a credential into an event or the terminal.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from engine.errors import (
    AwsAmbiguous,
    AwsConflict,
    AwsError,
    AwsInvalid,
    AwsNotFound,
    AwsThrottled,
)
from engine.logs import redact

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "EC2ThrottledException",
        "ProvisionedThroughputExceededException",
        "BandwidthLimitExceeded",
        "LimitExceededException",  # API Gateway answers throttling with this code
        "PriorRequestNotComplete",
    }
)
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "ResourceNotFound",
        "NotFound",
        "NotFoundException",
        "TargetGroupNotFound",
        "TargetGroupNotFoundException",
        "ListenerNotFound",
        "LoadBalancerNotFound",
        "NoSuchEntity",
    }
)
INVALID_CODES = frozenset(
    {
        "InvalidParameterValueException",
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "InvalidParameterException",
        "InvalidRequestContentException",
        "ValidationException",
        "ValidationError",
        "BadRequestException",
        "InvalidCodeSignatureException",
        "CodeStorageExceededException",
        "UnsupportedMediaTypeException",
        "RequestTooLargeException",
    }
)
CREDENTIAL_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
        "MissingAuthenticationToken",
    }
)
# Lambda's "the function is not ready" answers: retryable like a conflict, after waiting.
NOT_READY_CODES = frozenset({"ResourceNotReadyException"})
SERVER_CODES = frozenset(
    {
        "ServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "InternalServiceError",
        "InternalServiceException",
        "EC2UnexpectedException",
    }
)

_AMBIGUOUS_HINT = (
    "the request may or may not have taken effect: read the resource before repeating it"
)
_RETRY_HINT = "a transient AWS failure: try again shortly"
_CREDENTIALS_HINT = (
    "check the AWS credentials and permissions (AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO login)"
)


# AWS messages are recorded in the log for good: keep them short.
MESSAGE_LIMIT = 500


def clip_message(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` without what AWS echoes of the request, at most ``limit`` characters.

    A too-large environment makes Lambda answer with every variable after "String measured:";
    that text must never reach the log.
    """
    cut = message.find("String measured:")
    if cut >= 0:
        message = message[:cut].rstrip(" :;,") + " (request text omitted)"
    if len(message) > limit:
        message = message[: limit - 1] + "…"
    return message


def translate(exc: BaseException, operation: str, *, mutating: bool) -> AwsError:
    """The glam error for ``exc`` raised by AWS ``operation`` (e.g. ``"UpdateAlias"``).

    ``mutating`` decides what an unknown outcome means: a 5xx or a dropped connection on a
    mutation is :class:`AwsAmbiguous` (the change may have happened: read before repeating), on
    a read it is simply retryable. An ``AwsError`` passes through unchanged.
    """
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, ClientError):
        return _from_client_error(exc, operation, mutating=mutating)
    if isinstance(exc, BotoCoreError | OSError | TimeoutError | aiohttp.ClientError):
        return _from_transport_error(exc, operation, mutating=mutating)
    # Something we did not foresee: if it interrupted a mutation we cannot know the outcome.
    text = f"{operation}: {type(exc).__name__}: {clip_message(redact(str(exc)))}"
    if mutating:
        return AwsAmbiguous(text, operation=operation, hint=_AMBIGUOUS_HINT)
    return AwsError(text, operation=operation, retryable=False, hint="report this as a bug")


def _from_client_error(exc: ClientError, operation: str, *, mutating: bool) -> AwsError:
    response: Mapping[str, Any] = exc.response or {}
    error: Mapping[str, Any] = response.get("Error") or {}
    code = str(error.get("Code") or "")
    meta: Mapping[str, Any] = response.get("ResponseMetadata") or {}
    status_raw = meta.get("HTTPStatusCode")
    status = int(str(status_raw)) if str(status_raw).isdigit() else None
    aws_message = clip_message(redact(str(error.get("Message") or error.get("message") or "")))
    text = f"{operation} failed: {code or status or 'error'}" + (
        f": {aws_message}" if aws_message else ""
    )
    kw: dict[str, Any] = {"code": code, "operation": operation, "status": status}

    if code in THROTTLING_CODES or status == 429:
        err = AwsThrottled(text, hint="AWS is throttling: glam slows down and retries", **kw)
        err.retry_after = _retry_after(response)
        return err
    if code == "ResourceConflictException":
        lowered = aws_message.lower()
        if "aliases reference it" in lowered or "alias references it" in lowered:
            # A refused version delete is not an update in progress: retrying cannot help.
            return AwsConflict(
                text,
                retryable=False,
                hint="an alias still references the version: keep it, or repoint the alias",
                **kw,
            )
        if "already exist" in lowered:
            return AwsConflict(
                text, retryable=False, hint="it already exists: read it and adopt it", **kw
            )
        return AwsConflict(
            text, hint="an update is in progress: wait until LastUpdateStatus settles", **kw
        )
    if code in ("PreconditionFailedException", "PreconditionFailed") or status == 412:
        return AwsConflict(
            text,
            retryable=False,
            hint="the resource changed since it was read (RevisionId): read it again",
            **kw,
        )
    if code in NOT_READY_CODES:
        return AwsConflict(text, hint="the function is not ready yet: wait and retry", **kw)
    if code in NOT_FOUND_CODES or status == 404:
        return AwsNotFound(text, hint="it does not exist (any more): read the current state", **kw)
    if code in CREDENTIAL_CODES or status in (401, 403):
        return AwsError(text, retryable=False, hint=_CREDENTIALS_HINT, **kw)
    if code in SERVER_CODES or (status is not None and status >= 500):
        if mutating:
            return AwsAmbiguous(text, hint=_AMBIGUOUS_HINT, **kw)
        return AwsError(text, retryable=True, hint=_RETRY_HINT, **kw)
    if code in INVALID_CODES or (status is not None and 400 <= status < 500):
        return AwsInvalid(text, hint="AWS refused the request: fix the definition", **kw)
    # No status and an unknown code: treat like a server failure, the safe direction.
    if mutating:
        return AwsAmbiguous(text, hint=_AMBIGUOUS_HINT, **kw)
    return AwsError(text, retryable=True, hint=_RETRY_HINT, **kw)


_CREDENTIAL_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    ProfileNotFound,
)
# The request may have reached AWS: a response was lost, cut off or never came.
_UNKNOWN_OUTCOME_ERRORS = (
    ReadTimeoutError,
    ConnectionClosedError,
    HTTPClientError,
    EndpointConnectionError,
    OSError,
    TimeoutError,
    aiohttp.ClientError,
)


def _from_transport_error(exc: BaseException, operation: str, *, mutating: bool) -> AwsError:
    text = f"{operation} failed: {type(exc).__name__}: {redact(str(exc))}"
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return AwsError(text, operation=operation, retryable=False, hint=_CREDENTIALS_HINT)
    if isinstance(exc, NoRegionError):
        return AwsError(
            text, operation=operation, retryable=False, hint="set a region (--region or AWS_REGION)"
        )
    if isinstance(exc, ParamValidationError):
        return AwsInvalid(
            text, operation=operation, hint="the request does not match the AWS API: fix it"
        )
    if _never_sent(exc):
        # The connection was never established, so the request cannot have been applied: safe
        # to repeat even when it is a mutation.
        return AwsError(
            text,
            operation=operation,
            retryable=True,
            hint="cannot reach AWS: check the endpoint and the network",
        )
    if isinstance(exc, _UNKNOWN_OUTCOME_ERRORS):
        if mutating:
            return AwsAmbiguous(text, operation=operation, hint=_AMBIGUOUS_HINT)
        return AwsError(text, operation=operation, retryable=True, hint=_RETRY_HINT)
    return AwsError(text, operation=operation, retryable=False, hint="check the AWS configuration")


def _never_sent(exc: BaseException) -> bool:
    if isinstance(exc, ConnectTimeoutError):
        return True
    if isinstance(exc, EndpointConnectionError):
        inner = getattr(exc, "kwargs", {}).get("error")
        return isinstance(
            inner, aiohttp.ClientConnectorError | socket.gaierror | ConnectionRefusedError
        )
    return isinstance(exc, ConnectionRefusedError | aiohttp.ClientConnectorError)


def _retry_after(response: Mapping[str, Any]) -> float | None:
    """Seconds to wait, from the Retry-After header or Lambda's ``retryAfterSeconds`` field."""
    meta: Mapping[str, Any] = response.get("ResponseMetadata") or {}
    headers: Mapping[str, Any] = meta.get("HTTPHeaders") or {}
    candidates = [
        headers.get("retry-after"),
        headers.get("Retry-After"),
        response.get("retryAfterSeconds"),
        (response.get("Error") or {}).get("retryAfterSeconds"),
    ]
    for value in candidates:
        if value is None:
            continue
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            continue  # an HTTP-date Retry-After: rare from AWS; the backoff covers it
        if seconds >= 0:
            return seconds
    return None
