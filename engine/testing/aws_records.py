"""What ``FakeAws`` keeps for each function, and how it answers: records and helpers.

Split from engine.testing.aws so the fake's rules stay readable there.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import AwsConflict, AwsNotFound
from engine.ports import FunctionInfo, VersionInfo


@dataclass
class Version:
    number: str
    configuration: dict[str, Any]


@dataclass
class Alias:
    name: str
    version: str
    routing: dict[str, float]
    revision: str


@dataclass
class Function:
    name: str
    configuration: dict[str, Any]  # $LATEST, without the state fields
    code_sha256: str
    revision: str
    state: str = "Pending"
    last_update_status: str = "InProgress"
    state_reason: str = ""
    busy_polls: int = 0  # GetFunction calls until Pending/InProgress settles
    fail_next_settle: str | None = None  # reason, when the settle should end Failed
    versions: dict[str, Version] = field(default_factory=dict)
    next_version: int = 1
    aliases: dict[str, Alias] = field(default_factory=dict)
    # (code, configuration, version number) of the last publication.
    published_fingerprint: tuple[str, str, str] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    code_signing: str | None = None
    image_uri: str = ""


def info_of(configuration: Mapping[str, Any]) -> FunctionInfo:
    return FunctionInfo(
        name=configuration["FunctionName"],
        arn=configuration["FunctionArn"],
        version=configuration["Version"],
        state=configuration["State"],
        last_update_status=configuration["LastUpdateStatus"],
        code_sha256=configuration["CodeSha256"],
        revision_id=configuration["RevisionId"],
        description=configuration.get("Description", ""),
        state_reason=configuration.get("StateReason", ""),
        configuration=copy.deepcopy(dict(configuration)),
    )


def sha256_of(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def version_info_of(version: Version) -> VersionInfo:
    return VersionInfo(
        version=version.number,
        code_sha256=version.configuration["CodeSha256"],
        description=version.configuration.get("Description", ""),
        revision_id=version.configuration["RevisionId"],
    )


def not_found(operation: str, what: str) -> AwsNotFound:
    return AwsNotFound(
        f"{operation}: {what} not found",
        code="ResourceNotFoundException",
        operation=operation,
        status=404,
        hint="it does not exist (any more): read the current state",
    )


def precondition(operation: str) -> AwsConflict:
    return AwsConflict(
        f"{operation}: the RevisionId does not match the latest RevisionId",
        code="PreconditionFailedException",
        operation=operation,
        status=412,
        retryable=False,
        hint="the resource changed since it was read (RevisionId): read it again",
    )
