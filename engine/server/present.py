"""How the API shows the log's records and the views' rows as JSON, and what it never shows.

Function environment values are masked (``****``, the names stay) wherever an event carries a
definition or an AWS request or answer: they are the place secrets live in a function. Tokens
and webhook secrets are never in the log to begin with, and repository URLs in it are already
redacted. Every answer of the API goes through here.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from engine.events import RecordedEvent
from projections.commits import CommitRow
from projections.deployments import DeploymentRow
from projections.functions import FunctionRow

MASKED = "****"


def mask_environment(value: Any) -> Any:
    """A deep copy of a JSON-like value with the value of every function environment variable
    (``"Environment": {"Variables": {...}}`` at any depth) replaced by ``****``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "Environment" and isinstance(item, dict):
                out[key] = {
                    k: (_masked(v) if k == "Variables" else mask_environment(v))
                    for k, v in item.items()
                }
            else:
                out[key] = mask_environment(item)
        return out
    if isinstance(value, list | tuple):
        return [mask_environment(item) for item in value]
    return value


def _masked(variables: Any) -> Any:
    return dict.fromkeys(variables, MASKED) if isinstance(variables, dict) else MASKED


def event_json(record: RecordedEvent) -> dict[str, Any]:
    """One event as ``glam events --json`` shows it, environment values masked."""
    data = record.event.model_dump(mode="json", exclude={"type"})
    return {
        "position": record.position,
        "stream": record.stream,
        "version": record.version,
        "type": record.type,
        "recorded_at": record.recorded_at.isoformat(),
        "data": mask_environment(data),
        "meta": record.meta.model_dump(mode="json"),
        "hash": record.hash,
    }


def row_json(row: FunctionRow | DeploymentRow | CommitRow) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(row.model_dump_json())
    return data


def function_json(row: FunctionRow) -> dict[str, Any]:
    return row_json(row)


def deployment_json(
    row: DeploymentRow, *, repository: str | None, timeline: bool
) -> dict[str, Any]:
    data = row_json(row)
    if not timeline:
        data.pop("steps", None)
    account, region, name = _split_function(row.function)
    data.update(account=account, region=region, name=name, repository=repository)
    return data


def commit_json(row: CommitRow, *, repository: str | None) -> dict[str, Any]:
    data = row_json(row)
    data["repository"] = repository
    return data


def _split_function(stream: str) -> tuple[str, str, str]:
    parts = stream.split(":", 3)
    if len(parts) == 4:
        return parts[1], parts[2], parts[3]
    return "", "", stream


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
