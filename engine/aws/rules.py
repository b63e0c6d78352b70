"""Lambda rules glam enforces itself, in the adapter and the fake alike.

They are deployment invariants that must never be trusted to an emulator:
an alias never routes to ``$LATEST``, has at most one additional version, with a weight in
[0, 1], never to the version it already points at. Checking them before the request is sent
turns a saga bug into a clear ``AwsInvalid`` instead of a half-applied change.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from engine.errors import AwsInvalid

LATEST = "$LATEST"


def refuse_unsafe_alias(
    operation: str, version: str, routing: Mapping[str, float] | None
) -> dict[str, float]:
    """The routing to send, or ``AwsInvalid`` when the alias would break an invariant.

    The adapter's line of defence, in front of AWS and the fake alike. The core has its own
    assert in the saga (``engine.saga.state``), which raises ``InvariantViolation`` before a
    call is even planned; this one stops whatever gets past it from reaching AWS."""
    hint = "an alias points at one published version and routes to at most one other"
    if version == LATEST or not version:
        raise AwsInvalid(
            f"{operation}: an alias must point at a published version, not {version!r}",
            operation=operation,
            hint=hint,
        )
    weights = dict(routing or {})
    if len(weights) > 1:
        raise AwsInvalid(
            f"{operation}: routing to {len(weights)} additional versions (at most one)",
            operation=operation,
            hint=hint,
        )
    for extra, weight in weights.items():
        if extra == LATEST:
            raise AwsInvalid(
                f"{operation}: $LATEST cannot receive routed traffic",
                operation=operation,
                hint=hint,
            )
        if extra == version:
            raise AwsInvalid(
                f"{operation}: version {extra} is both the target and the additional version",
                operation=operation,
                hint=hint,
            )
        if not 0.0 <= float(weight) <= 1.0:
            raise AwsInvalid(
                f"{operation}: weight {weight} for version {extra} is outside [0, 1]",
                operation=operation,
                hint=hint,
            )
    return {k: float(v) for k, v in weights.items()}


def zip_bytes(code: Mapping[str, Any]) -> bytes | None:
    """The zip archive of a ``Code`` request, if inline. JSON definitions hold ``ZipFile`` as
    base64 text (like the AWS CLI's JSON input); botocore wants the raw bytes."""
    value = code.get("ZipFile")
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError as exc:
        raise AwsInvalid(
            "Code.ZipFile is not valid base64",
            operation="Code",
            hint="put the zip archive in Code.ZipFile as base64 text, or use S3Bucket/S3Key",
        ) from exc


def code_sha256(code: Mapping[str, Any]) -> str:
    """What Lambda reports as CodeSha256 for inline code (base64 of the archive's SHA-256);
    for S3 or image code, a stable digest of the reference (the fake's stand-in)."""
    archive = zip_bytes(code)
    if archive is None:
        archive = json.dumps(dict(code), sort_keys=True, default=str).encode()
    return base64.b64encode(hashlib.sha256(archive).digest()).decode()
