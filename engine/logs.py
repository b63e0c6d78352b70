"""Logging for glam: one format, quiet third-party loggers, and credentials never printed.

botocore's debug logging prints signed headers and request bodies, and a Git URL may carry a
token (``https://user:token@host``). glam therefore keeps botocore, aiobotocore, urllib3 and
aiohttp at WARNING and installs a :class:`RedactingFilter` on its handler, so every record that
reaches the output — glam's own or a third party's — is scrubbed first. :func:`redact` is also
used directly where text crosses into an event or an error message.

The database drivers are quieted too: at DEBUG aiosqlite and psycopg print every statement
with its parameters, and an appended event's parameters hold the function's whole definition,
environment values included. Those values are masked in every output that shows events or
definitions (:func:`mask_environment`) unless a command is asked to show them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

REDACTED = "****"

# The loggers of the AWS and HTTP stack (at DEBUG they print credentials and signatures) and of
# the database drivers (at DEBUG they print every statement's parameters: event data).
NOISY_LOGGERS = (
    "botocore",
    "aiobotocore",
    "boto3",
    "urllib3",
    "aiohttp",
    "s3transfer",
    "aiosqlite",
    "psycopg",
)
MASKED = "****"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Credentials in a URL: scheme://user:secret@host -> scheme://user:****@host. A token alone
    # in the user part (https://token@host) is redacted too.
    (
        re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/\s:@]+):[^/\s@]+@"),
        rf"\g<scheme>\g<user>:{REDACTED}@",
    ),
    (
        re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]{20,}@"),
        rf"\g<scheme>{REDACTED}@",
    ),
    # Authorization / security-token headers, in header or dict-repr form.
    (
        re.compile(
            r"(?P<key>['\"]?(?:authorization|x-amz-security-token|x-amz-signature|proxy-authorization)"
            # The value runs to its closing quote or the end of the line: an Authorization
            # value has commas and spaces inside (Credential=..., Signature=...).
            r"['\"]?\s*[:=]\s*['\"]?)[^'\"\n]+",
            re.IGNORECASE,
        ),
        rf"\g<key>{REDACTED}",
    ),
    # Secret-looking key/value pairs: aws_secret_access_key=..., "SecretAccessKey": "...",
    # SessionToken, password, token, api_key.
    (
        re.compile(
            r"(?P<key>['\"]?[\w-]*(?:secret|password|passwd|session[_-]?token|security[_-]?token"
            r"|api[_-]?key|access[_-]?token|private[_-]?key)[\w-]*['\"]?\s*[:=]\s*['\"]?)"
            r"[^'\"\s,}&]+",
            re.IGNORECASE,
        ),
        rf"\g<key>{REDACTED}",
    ),
    # AWS access key ids (long-term AKIA, temporary ASIA, and the other documented prefixes).
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b"), REDACTED),
    # A bare 40-character secret access key (base64 alphabet) standing on its own.
    # Mixed case with a non-hex letter, so a 40-digit Git commit id is left alone.
    (
        re.compile(
            r"(?<![A-Za-z0-9/+=])"
            r"(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])(?=[A-Za-z0-9/+]{0,39}[G-Zg-z/+])"
            r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
        ),
        REDACTED,
    ),
)


def redact(text: str) -> str:
    """``text`` with access keys, secrets, auth headers and URL credentials replaced."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Scrub every record: the formatted message, and the exception text if there is one.

    The record is rewritten in place (message rendered, args cleared) because a handler formats
    ``msg % args`` after filters ran, and an argument is exactly where a secret hides.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors (journald, CloudWatch, Loki): ``time``
    (UTC, ISO-8601), ``level``, ``logger``, ``message``, and ``exception`` when there is one.
    It formats what the :class:`RedactingFilter` has already scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


LogFormat = Literal["text", "json"]

_HANDLER_MARK = "_glam_handler"


def setup_logging(
    verbose: bool = False, *, stream: TextIO | None = None, log_format: LogFormat = "text"
) -> logging.Handler:
    """Configure the root logger once for the process; calling it again replaces glam's handler.

    ``verbose`` shows glam's DEBUG records; third-party AWS/HTTP loggers stay at WARNING either
    way, because their debug output contains signed requests. ``log_format`` ``json`` writes
    one JSON object per line (:class:`JsonFormatter`).
    """
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, _HANDLER_MARK, False):
            root.removeHandler(existing)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("glam").setLevel(logging.DEBUG if verbose else logging.INFO)
    quiet_third_party()
    return handler


def quiet_third_party() -> None:
    """Keep the AWS and HTTP stack and the database drivers at WARNING (their DEBUG output
    carries signatures and statement parameters)."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    """A logger under glam's namespace (``glam.<name>``)."""
    return logging.getLogger(f"glam.{name}")


def redact_mapping(value: Any) -> Any:
    """A deep copy of a JSON-like value with every string redacted (for events and output)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_mapping(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_mapping(v) for v in value]
    return value


def mask_environment(value: Any) -> Any:
    """A deep copy of a JSON-like value with the value of every function environment variable
    (``"Environment": {"Variables": {...}}`` at any depth: a definition, an AWS request or
    answer) replaced by ``****``. The names stay, so what is set is still visible."""
    if isinstance(value, dict):
        masked = {}
        for key, item in value.items():
            if key == "Environment" and isinstance(item, dict):
                item = {
                    k: (_masked_variables(v) if k == "Variables" else mask_environment(v))
                    for k, v in item.items()
                }
                masked[key] = item
            else:
                masked[key] = mask_environment(item)
        return masked
    if isinstance(value, list | tuple):
        return [mask_environment(item) for item in value]
    return value


def _masked_variables(variables: Any) -> Any:
    if isinstance(variables, dict):
        return dict.fromkeys(variables, MASKED)
    return MASKED
