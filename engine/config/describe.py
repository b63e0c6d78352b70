"""What a configuration means, in words (``glam config check``) and as JSON (``--json``).

Tokens are shown only as their reference (which secret, parameter or variable), never
resolved; an external id only as "set".
"""

from __future__ import annotations

from typing import Any

from engine.aws.ratelimit import DEFAULT_POLL_RATE, DEFAULT_RATE
from engine.config.model import GlamConfig
from engine.redact import redact_url
from engine.store import describe_target


def _seconds(value: float) -> str:
    return f"{value:g} s"


def describe(config: GlamConfig) -> list[str]:
    """One line per fact of ``config``, grouped: engine, repositories, accounts, limits."""
    engine = config.engine
    rate = engine.rate or DEFAULT_RATE
    lines = ["engine:"]
    log = describe_target(engine.db) if engine.db else "$GLAM_DB, else ./.glam/glam.db"
    lines.append(f"  log: {log}")
    if (password := engine.db_password_ref) is not None:
        lines.append(f"  log's password: {password.describe()}")
    if engine.data_dir is not None:
        lines.append(f"  mirrors in: {engine.data_dir}")
    lines.append(
        f"  region for definitions that name none: {engine.region or '$AWS_REGION, else us-east-1'}"
    )
    lines.append(f"  AWS: {engine.endpoint_url or 'real AWS (the usual credential chain)'}")
    lines.append(f"  at most {engine.max_parallel} deployments at once")
    watches = config.watches()
    lines.append(
        f"repositories: {len(config.repository)} ({len(watches)} branch"
        f"{'' if len(watches) == 1 else 'es'} watched, one loop each)"
    )
    for repo in config.repository:
        lines.append(f"  {redact_url(repo.location)}")
        branches = ", ".join(repo.branches) if repo.branches else "the default branch (HEAD)"
        lines.append(f"    branches: {branches}")
        ref = repo.token_ref
        lines.append(f"    token: {ref.describe() if ref else 'none'}")
        lines.append(f"    polled every {_seconds(repo.poll or engine.poll)}")
        if repo.paths:
            lines.append(f"    owns only functions under: {', '.join(repo.paths)}")
        for notify in repo.notify:
            lines.append(
                f"    notifies {notify.kind} at the URL in {notify.url_ref.describe()}: "
                + ", ".join(notify.events)
            )
    roles = sum(1 for a in config.account if a.role_arn is not None)
    lines.append(f"accounts: the engine's own (its credentials) and {roles} through a role")
    for account in config.account:
        if account.role_arn is None:
            lines.append(f"  {account.id}: must be the engine's own account (no role to assume)")
        else:
            extra = ", external id set" if account.external_id else ""
            lines.append(
                f"  {account.id}: assumes {account.role_arn} "
                f"(session {account.session_name}{extra})"
            )
        regions = ", ".join(account.regions) if account.regions else "any"
        lines.append(f"    regions: {regions}")
    lines.append("  any other account is refused at plan time")
    lines.append("limits (shared by every repository's deployments):")
    lines.append(f"  Lambda: {rate:g} calls/s per account and region")
    for account in config.account:
        if account.rate is not None:
            lines.append(f"    {account.id}: {account.rate:g} calls/s per region")
    lines.append(f"  GetFunction polls: {engine.poll_rate or DEFAULT_POLL_RATE:g}/s")
    server = config.server
    if server.listen is not None:
        lines.append(f"server: http://{server.listen} (glam run; its --listen wins)")
        token = server.api_token_ref
        lines.append(
            f"  API token: {token.describe() if token else 'none: every write is refused'}"
        )
        lines.append(f"  reads: {'need the token' if server.auth_reads else 'open'}")
        secret = server.webhook_secret_ref
        lines.append(
            f"  webhook secret: {secret.describe() if secret else 'none: pushes are refused'}"
        )
        if server.allow_remote:
            lines.append("  listens beyond loopback (allow_remote)")
    if engine.public_url is not None:
        lines.append(f"links in notifications: {engine.public_url}")
    return lines


def as_json(config: GlamConfig) -> dict[str, Any]:
    """``config`` as plain data, tokens as references."""
    data = config.model_dump(mode="json")
    for repo, raw in zip(config.repository, data["repository"], strict=True):
        ref = repo.token_ref
        raw["id"] = repo.id
        raw["token"] = None if ref is None else {"kind": ref.kind, "ref": ref.ref}
        raw["url"] = None if repo.url is None else redact_url(repo.url)
    if (password := config.engine.db_password_ref) is not None:
        data["engine"]["db_password"] = {"kind": password.kind, "ref": password.ref}
    for raw in data["account"]:
        raw["external_id"] = "set" if raw.get("external_id") else None
    return data
