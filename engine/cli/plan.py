"""``glam plan``: what the head of a branch would do, without AWS and without writing anything.

Exit codes follow ``flux diff``: 0 nothing would change, 1 something would, 2 a definition is
invalid (or the flags are), 3 the repository could not be read. With no database every
function is new; with one (``--db``, read-only) the plan is made against what the log says
is deployed, exactly as the engine would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import typer

from engine.cli.app import app
from engine.cli.common import DbOption, JsonOption, db_path
from engine.errors import SourceError, UsageError

if TYPE_CHECKING:
    # At run time these are imported by the functions that use them: they pull in dulwich,
    # Jinja, botocore's service model and every event model, which the other glam commands
    # and `glam --help` must not pay for at start-up.
    from engine.git.source import GitSource
    from engine.observe import RepoState
    from engine.planner import DeployedState, Plan

ACCOUNT_PLACEHOLDER = "<account>"
REGION_PLACEHOLDER = "<region>"


@app.command("plan")
def plan_command(
    repo: Annotated[str, typer.Option("--repo", help="Repository path or URL.")],
    branch: Annotated[
        str | None, typer.Option("--branch", help="Branch (default: the repository's HEAD).")
    ] = None,
    db: DbOption = None,
    render: Annotated[bool, typer.Option("--render", help="Print rendered definitions.")] = False,
    as_json: JsonOption = False,
    region: Annotated[
        str | None,
        typer.Option("--region", help="Region for definitions that name none (else $AWS_REGION)."),
    ] = None,
    account: Annotated[
        str | None, typer.Option("--account", help="Account for definitions that name none.")
    ] = None,
    token_env: Annotated[
        str | None, typer.Option("--token-env", help="Env var holding an HTTPS token.")
    ] = None,
) -> int:
    """Show what the branch head would deploy. Exit 0 nothing, 1 changes, 2 invalid."""
    explicit_db = db is not None
    path = db_path(db)
    if explicit_db and not path.exists():
        raise UsageError(f"no database at {path}", hint="run the engine first, or omit --db")
    use_db = path if path.exists() else None
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    try:
        result = anyio.run(
            _plan,
            repo,
            branch,
            use_db,
            region or REGION_PLACEHOLDER,
            account or ACCOUNT_PLACEHOLDER,
            token_env,
            render,
        )
    except SourceError as exc:
        # Not exit 1: that means "changes" to scripts reading the plan's exit code.
        typer.echo(f"glam: {exc.one_line()}", err=True)
        return 3
    plan, source_url, source_branch, rendered = result
    if as_json:
        typer.echo(json.dumps(_as_json(plan, source_url, source_branch, rendered), indent=2))
    else:
        _print_text(plan, source_url, source_branch, rendered, account is None)
    if plan.rejected:
        return 2
    return 1 if plan.has_changes else 0


async def _plan(
    url: str,
    branch: str | None,
    db: Path | None,
    region: str,
    account: str,
    token_env: str | None,
    render: bool,
) -> tuple[Plan, str, str, dict[str, str]]:
    from engine.git.source import GitSource
    from engine.git.urls import parse_repo_url

    with tempfile.TemporaryDirectory(prefix="glam-plan-") as tmp:
        # A local repository is read in place; a remote one is mirrored into a throwaway folder.
        data_dir = None if parse_repo_url(url).kind == "local" else Path(tmp)
        async with GitSource(url, branch, data_dir=data_dir, token_env=token_env) as source:
            return await _plan_source(source, url, db, region, account, render)


async def _plan_source(
    source: GitSource, url: str, db: Path | None, region: str, account: str, render: bool
) -> tuple[Plan, str, str, dict[str, str]]:
    from engine.git.state import read_commit_state
    from engine.observe import RepoState
    from engine.planner import PlanContext, plan_commit
    from engine.planner import render_filter as _render_filter
    from engine.streams import repo_stream

    head = await source.sync()
    assert source.branch is not None
    deployed: dict[str, DeployedState] = {}
    repo_state = RepoState()
    if db is not None:
        deployed, repo_state = await _read_log(db, repo_stream(url, source.branch))
    if account == ACCOUNT_PLACEHOLDER:
        deployed = _by_placeholder_account(deployed)
    base = repo_state.last_planned or repo_state.last_sha
    if base is not None and not await source.is_ancestor(base, head):
        base = None
    if base is None:
        parents = (await source.run(lambda: source.commit_info(head))).parents
        base = parents[0] if parents else None
    state = await read_commit_state(
        source,
        head,
        base=base,
        select=_render_filter(deployed),
        keep_rendered=render,
        warn=None,  # printed with the plan below, not logged
    )
    ctx = PlanContext(new_id=lambda: "(preview)", default_region=region, default_account=account)
    return (
        plan_commit(state, deployed, ctx),
        source.display_url,
        source.branch,
        dict(state.rendered),
    )


async def _read_log(db: Path, stream: str) -> tuple[dict[str, DeployedState], RepoState]:
    from engine.observe import RepoState, evolve_repo
    from engine.planner import DEPLOYED_EVENT_TYPES, deployed_from_events
    from engine.store.sqlite import SqliteEventStore

    async with SqliteEventStore(db, readonly=True) as store:
        # Only what the planner folds: the repository's stream and the few function events
        # that say what is deployed, not every step of every deployment.
        records = await store.read_selected(DEPLOYED_EVENT_TYPES, [stream])
    repo_state = RepoState()
    for record in records:
        if record.stream == stream:
            repo_state = evolve_repo(repo_state, record.event)
    return deployed_from_events(records), repo_state


def _by_placeholder_account(deployed: dict[str, DeployedState]) -> dict[str, DeployedState]:
    """Without ``--account`` the plan cannot know the account; match the log's functions by
    region and name instead, so a plan without AWS still compares with what was deployed.
    Limitation: a definition that names its own ``environment.account`` is then compared under
    that account and finds nothing; pass ``--account`` for such repositories."""
    from engine.streams import function_stream, parse_function_stream

    out: dict[str, DeployedState] = {}
    for stream, state in deployed.items():
        _, reg, name = parse_function_stream(stream)
        key = function_stream(ACCOUNT_PLACEHOLDER, reg, name)
        out[key] = dataclasses.replace(state, stream=key)
    return out


_SYMBOL = {
    "create": "+ create",
    "new_version": "~ new version",
    "settings_only": "* settings only",
    "delete": "- delete",
    "nothing": "  nothing",
}


def _print_text(
    plan: Plan, url: str, branch: str, rendered: dict[str, str], placeholder: bool
) -> None:
    typer.echo(f"plan for {url} {branch} at {plan.sha[:12]}")
    if placeholder and any(
        a.function.startswith(f"fn:{ACCOUNT_PLACEHOLDER}") for a in plan.actions
    ):
        typer.echo(f"  ({ACCOUNT_PLACEHOLDER} is a placeholder: glam learns the account from AWS)")
    rejected = {r.prefix for r in plan.rejected}
    for action in plan.actions:
        label = "! invalid" if action.prefix in rejected else _SYMBOL[action.action]
        files = f"  [{', '.join(action.files)}]" if action.files else ""
        function = f"  {action.function}" if action.function else ""
        typer.echo(f"{label:<16} {action.prefix}{function}{files}  — {action.reason}")
    for rejection in plan.rejected:
        typer.echo(f"invalid: {rejection.one_line()}", err=True)
    for warning in plan.warnings:
        typer.echo(f"warning: {warning.file}: {warning.message}", err=True)
    if plan.held:
        typer.echo(
            f"deletes held: {len(plan.held)} functions; an operator must allow them", err=True
        )
    if not plan.actions:
        typer.echo("nothing to do")
    for path, text in sorted(rendered.items()):
        typer.echo(f"--- {path} (rendered)")
        typer.echo(text.rstrip("\n"))


def _as_json(plan: Plan, url: str, branch: str, rendered: dict[str, str]) -> dict[str, Any]:
    return {
        "repo": url,
        "branch": branch,
        "sha": plan.sha,
        "changes": plan.has_changes,
        "actions": [a.model_dump(mode="json") for a in plan.actions],
        "rejected": [
            {
                "prefix": r.prefix,
                "file": r.file,
                "line": r.line,
                "column": r.column,
                "reason": r.reason,
                "hint": r.hint,
            }
            for r in plan.rejected
        ],
        "held": list(plan.held),
        "warnings": [w.model_dump(mode="json") for w in plan.warnings],
        "rendered": rendered,
    }


__all__ = ["plan_command"]
