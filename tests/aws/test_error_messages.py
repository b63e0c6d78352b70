"""AWS error messages as they reach the log: cut, capped; refused version deletes are final."""

from __future__ import annotations

from botocore.exceptions import ClientError

from engine.aws.errors import MESSAGE_LIMIT, translate
from engine.errors import AwsConflict


def _client_error(code: str, message: str, status: int) -> ClientError:
    response: dict[str, object] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Op")


def test_echoed_environment_is_cut_off() -> None:
    """Lambda's "String measured:" echo of every variable never reaches the message."""
    message = (
        "Lambda was unable to configure your environment variables because the environment "
        'variables you have provided exceeded the 4KB limit. String measured: {"DB_PASSWORD":'
        '"hunter2-very-secret"}'
    )
    err = translate(
        _client_error("InvalidParameterValueException", message, 400),
        "UpdateFunctionConfiguration",
        mutating=True,
    )
    assert "hunter2" not in str(err)
    assert "exceeded the 4KB limit" in str(err)


def test_long_messages_are_capped() -> None:
    err = translate(_client_error("ValidationException", "x" * 5000, 400), "Op", mutating=False)
    assert len(err.message) <= MESSAGE_LIMIT + len("Op failed: ValidationException: ")


def test_refused_version_delete_is_not_retryable() -> None:
    """409 "aliases reference it" is final, not an update in progress."""
    message = (
        "Unable to delete version because the following aliases reference it: "
        "[arn:aws:lambda:us-east-1:123456789012:function:orders:live]"
    )
    err = translate(
        _client_error("ResourceConflictException", message, 409), "DeleteFunction", mutating=True
    )
    assert isinstance(err, AwsConflict)
    assert err.retryable is False


def test_update_in_progress_stays_retryable() -> None:
    message = "The operation cannot be performed at this time. An update is in progress"
    err = translate(
        _client_error("ResourceConflictException", message, 409), "UpdateAlias", mutating=True
    )
    assert err.retryable is True
