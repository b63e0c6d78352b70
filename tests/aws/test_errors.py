"""botocore failures become glam's error tree with the right retryable flag and a hint."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from engine.aws.errors import translate
from engine.errors import (
    AwsAmbiguous,
    AwsConflict,
    AwsError,
    AwsInvalid,
    AwsNotFound,
    AwsThrottled,
)


def client_error(
    code: str, status: int, message: str = "boom", headers: dict[str, str] | None = None
) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
    }
    return ClientError(response, "Op")


@pytest.mark.parametrize(
    ("exc", "mutating", "kind", "retryable"),
    [
        pytest.param(
            client_error("TooManyRequestsException", 429), True, AwsThrottled, True, id="throttled"
        ),
        pytest.param(
            client_error("Throttling", 400), False, AwsThrottled, True, id="throttling-400"
        ),
        pytest.param(
            client_error("ResourceConflictException", 409, "An update is in progress for resource"),
            True,
            AwsConflict,
            True,
            id="update-in-progress",
        ),
        pytest.param(
            client_error("ResourceConflictException", 409, "Function already exist: f"),
            True,
            AwsConflict,
            False,
            id="already-exists",
        ),
        pytest.param(
            client_error("PreconditionFailedException", 412),
            True,
            AwsConflict,
            False,
            id="stale-revision",
        ),
        pytest.param(
            client_error("ResourceNotFoundException", 404),
            False,
            AwsNotFound,
            False,
            id="not-found",
        ),
        pytest.param(
            client_error("InvalidParameterValueException", 400),
            True,
            AwsInvalid,
            False,
            id="invalid",
        ),
        pytest.param(
            client_error("ValidationException", 400), False, AwsInvalid, False, id="validation"
        ),
        pytest.param(
            client_error("ServiceException", 500), True, AwsAmbiguous, True, id="5xx-mutation"
        ),
        pytest.param(client_error("ServiceException", 503), False, AwsError, True, id="5xx-read"),
        pytest.param(
            client_error("AccessDeniedException", 403), False, AwsError, False, id="denied"
        ),
        pytest.param(
            ReadTimeoutError(endpoint_url="http://x"),
            True,
            AwsAmbiguous,
            True,
            id="timeout-mutation",
        ),
        pytest.param(
            ConnectionClosedError(endpoint_url="http://x"), False, AwsError, True, id="dropped-read"
        ),
        pytest.param(
            ConnectionClosedError(endpoint_url="http://x"),
            True,
            AwsAmbiguous,
            True,
            id="dropped-mutation",
        ),
        pytest.param(
            EndpointConnectionError(
                endpoint_url="http://x",
                error=aiohttp.ClientConnectorError(None, OSError(111, "refused")),  # type: ignore[arg-type]
            ),
            True,
            AwsError,
            True,
            id="never-connected-mutation",
        ),
        pytest.param(NoCredentialsError(), False, AwsError, False, id="no-credentials"),
    ],
)
def test_translation(
    exc: BaseException, mutating: bool, kind: type[AwsError], retryable: bool
) -> None:
    err = translate(exc, "UpdateAlias", mutating=mutating)
    assert type(err) is kind
    assert err.retryable is retryable
    assert err.hint
    assert err.operation == "UpdateAlias"


def test_retry_after_is_attached() -> None:
    exc = client_error("TooManyRequestsException", 429, headers={"retry-after": "2"})
    err = translate(exc, "UpdateAlias", mutating=True)
    assert isinstance(err, AwsThrottled)
    assert err.retry_after == 2.0
    assert err.status == 429


def test_lambda_retry_after_seconds_field() -> None:
    exc = client_error("TooManyRequestsException", 429)
    exc.response["retryAfterSeconds"] = "5"
    err = translate(exc, "PublishVersion", mutating=True)
    assert isinstance(err, AwsThrottled)
    assert err.retry_after == 5.0


def test_glam_errors_pass_through() -> None:
    original = AwsNotFound("gone")
    assert translate(original, "GetFunction", mutating=False) is original


def test_messages_never_carry_credentials() -> None:
    exc = client_error(
        "UnrecognizedClientException",
        403,
        "The security token AKIAIOSFODNN7EXAMPLE with secret "
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY is invalid",
    )
    err = translate(exc, "GetFunction", mutating=False)
    assert "AKIAIOSFODNN7EXAMPLE" not in str(err)
    assert "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" not in str(err)
    assert "****" in str(err)
