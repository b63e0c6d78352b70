"""Which events become notifications, and how each is written (pure: no I/O, no clock).

    DeploymentRequested                 started
    DeploymentFinished succeeded        promoted (the new version serves all traffic)
    DeploymentFinished rolled_back      rolled_back, with the reason
    DeploymentFinished failed           failed, with the reason
    DriftDetected                       drift (AWS no longer matches what was deployed)
    DeletesHeld                         deletes_held, with the command that releases them

A superseded deployment is not announced: the newer one that replaced it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.events import RecordedEvent
from engine.events.function import DeploymentFinished, DeploymentRequested, FunctionOwner
from engine.events.repo import DeletesHeld
from engine.streams import is_function_stream, parse_function_stream, parse_repo_stream

# The drift events arrive with drift detection; matched by name so that this module needs
# nothing from it.
DRIFT_TYPES = frozenset({"DriftDetected"})

_TITLES = {
    "started": "deployment started",
    "promoted": "deployment promoted",
    "rolled_back": "deployment rolled back",
    "failed": "deployment failed",
    "drift": "drift found",
    "deletes_held": "deletes held for an operator",
}
_EMOJI = {
    "started": ":rocket:",
    "promoted": ":white_check_mark:",
    "rolled_back": ":rewind:",
    "failed": ":x:",
    "drift": ":warning:",
    "deletes_held": ":raised_hand:",
}


@dataclass(frozen=True, slots=True)
class Notification:
    """One thing worth telling people, with what it is about."""

    kind: str  # started, promoted, rolled_back, failed, drift, deletes_held
    event_type: str
    position: int
    at: datetime
    stream: str
    repository: str | None = None  # the repository id (never a token), when known
    branch: str | None = None
    function: str | None = None  # the function's name
    account: str | None = None
    region: str | None = None
    deployment_id: str | None = None
    commit: str | None = None
    action: str | None = None
    reason: str = ""

    @property
    def title(self) -> str:
        return _TITLES[self.kind]

    def link(self, public_url: str | None) -> str | None:
        """Where the deployment (or the function's events) is seen through the engine's API."""
        if public_url is None:
            return None
        if self.deployment_id is not None:
            return f"{public_url}/api/v1/deployments/{self.deployment_id}"
        return f"{public_url}/api/v1/events?stream={self.stream}"


def notification_for(
    record: RecordedEvent,
    owners: dict[str, FunctionOwner],
    commits: dict[str, tuple[str, str]],
) -> Notification | None:
    """The notification ``record`` makes, or None. ``owners`` (function stream → owner) and
    ``commits`` (deployment id → its commit and action) are kept up to date from
    DeploymentRequested here, so that a finished deployment's notification names them too."""
    event = record.event
    if isinstance(event, DeploymentRequested):
        if event.owner is not None:
            owners[record.stream] = event.owner
        commits[event.deployment_id] = (event.commit, event.action)
    match event:
        case DeploymentRequested():
            return _make(
                "started",
                record,
                owners,
                deployment_id=event.deployment_id,
                commit=event.commit,
                action=event.action,
            )
        case DeploymentFinished(outcome="superseded"):
            commits.pop(event.deployment_id, None)
            return None
        case DeploymentFinished():
            known = commits.pop(event.deployment_id, None)  # a long-running engine keeps none
            commit, action = known if known is not None else (record.meta.commit, None)
            return _make(
                "promoted" if event.outcome == "succeeded" else event.outcome,
                record,
                owners,
                deployment_id=event.deployment_id,
                commit=commit,
                action=action,
                reason=event.reason,
            )
        case DeletesHeld():
            repository, branch = parse_repo_stream(record.stream)
            what = ", ".join(event.prefixes)
            return _make(
                "deletes_held",
                record,
                owners,
                commit=event.sha,
                reason=f"{what}: glam allow-deletes {event.sha[:12]} --reason '…' releases them",
                repository=repository,
                branch=branch,
            )
        case _ if record.type in DRIFT_TYPES:
            data = event.model_dump(mode="json")
            reason = str(data.get("reason") or data.get("summary") or data.get("detail") or "")
            return _make("drift", record, owners, reason=reason)
        case _:
            return None


def _make(
    kind: str, record: RecordedEvent, owners: dict[str, FunctionOwner], **extra: Any
) -> Notification:
    where: dict[str, Any] = {}
    if is_function_stream(record.stream):
        account, region, name = parse_function_stream(record.stream)
        where = {"function": name, "account": account, "region": region}
    owner = owners.get(record.stream)
    if owner is not None:
        where |= {"repository": owner.repository, "branch": owner.branch}
    return Notification(
        kind=kind,
        event_type=record.type,
        position=record.position,
        at=record.recorded_at,
        stream=record.stream,
        **(where | extra),
    )


def webhook_payload(n: Notification, public_url: str | None) -> dict[str, Any]:
    """glam's webhook JSON: what happened, to which function and deployment, and a link."""
    return {
        "source": "glam",
        "kind": n.kind,
        "title": n.title,
        "event": {
            "type": n.event_type,
            "position": n.position,
            "recorded_at": n.at.isoformat(),
            "stream": n.stream,
        },
        "function": None
        if n.function is None
        else {"name": n.function, "account": n.account, "region": n.region},
        "deployment": None
        if n.deployment_id is None
        else {"id": n.deployment_id, "action": n.action, "commit": n.commit},
        "commit": n.commit,
        "reason": n.reason,
        "repository": n.repository,
        "branch": n.branch,
        "link": n.link(public_url),
    }


def _headline(n: Notification) -> str:
    subject = n.function or (f"{n.repository} {n.branch}" if n.repository else n.stream)
    place = f" ({n.region})" if n.region else ""
    return f"{_EMOJI[n.kind]} {n.title}: {subject}{place}"


def slack_payload(n: Notification, public_url: str | None) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook message: ``text`` (notifications, clients without
    blocks) and ``blocks`` (a section with the reason, a context line, a link button)."""
    headline = _headline(n)
    text = headline + (f" — {n.reason}" if n.reason else "")
    section = f"*{headline}*" + (f"\n{n.reason}" if n.reason else "")
    facts = []
    if n.commit:
        facts.append(f"commit `{n.commit[:12]}`")
    if n.deployment_id:
        facts.append(f"deployment `{n.deployment_id}`")
    if n.repository:
        facts.append(f"{n.repository} {n.branch or ''}".strip())
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": section}},
    ]
    if facts:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(facts)}]}
        )
    link = n.link(public_url)
    if link is not None:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in glam"},
                        "url": link,
                    }
                ],
            }
        )
    return {"text": text, "blocks": blocks}
