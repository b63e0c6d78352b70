"""Log records are scrubbed of credentials before they are printed."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from engine.logs import redact, setup_logging

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    handler = setup_logging(verbose=True, stream=out)
    yield out
    root.removeHandler(handler)
    root.handlers[:] = before[0]
    root.setLevel(before[1])


def test_record_with_key_and_secret_prints_redacted(captured: io.StringIO) -> None:
    logging.getLogger("glam.test").info("using %s and %s", ACCESS_KEY, SECRET)
    logging.getLogger("glam.test").info(
        "headers %s",
        {
            "Authorization": "AWS4-HMAC-SHA256 Credential=abc, Signature=def",
            "X-Amz-Security-Token": "FQoGZXIvYXdzEXAMPLETOKEN",
        },
    )
    logging.getLogger("glam.test").warning("cloning https://deploy:ghp_s3cr3tT0ken@example.com/r")
    text = captured.getvalue()
    assert ACCESS_KEY not in text
    assert SECRET not in text
    assert "Signature=def" not in text
    assert "FQoGZXIvYXdzEXAMPLETOKEN" not in text
    assert "ghp_s3cr3tT0ken" not in text
    assert text.count("****") >= 5
    assert "https://deploy:****@example.com/r" in text


def test_exception_text_is_redacted(captured: io.StringIO) -> None:
    try:
        raise RuntimeError(f"aws_secret_access_key={SECRET}")
    except RuntimeError:
        logging.getLogger("glam.test").exception("failed")
    assert SECRET not in captured.getvalue()
    assert "RuntimeError" in captured.getvalue()


def test_third_party_loggers_are_quiet(captured: io.StringIO) -> None:
    logging.getLogger("botocore.endpoint").debug("signed request %s", "SECRETSTUFF")
    assert logging.getLogger("botocore").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("aiobotocore").getEffectiveLevel() == logging.WARNING
    assert "SECRETSTUFF" not in captured.getvalue()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("commit 3f786850e387550fdab836ed7e6dc881de23001b", id="git-sha"),
        pytest.param("CodeSha256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", id="sha256"),
        pytest.param("arn:aws:lambda:us-east-1:123456789012:function:orders:live", id="arn"),
    ],
)
def test_ordinary_values_are_left_alone(text: str) -> None:
    assert redact(text) == text
