"""``glam plan``: what the head of a branch would do, without AWS and without writing anything.

Exit codes follow ``flux diff``: 0 nothing would change, 1 something would, 2 a definition is
invalid (or the flags are), 3 the repository or the log could not be read. With no database
every function is new; with one (``--db``, read-only) the plan is made against what the log
says is deployed, exactly as the engine would. ``--render`` shows function environment values
as ``****`` unless ``--show-secrets`` is given.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import typer

from engine.cli.app import app
from engine.cli.common import DbOption, JsonOption, db_location
from engine.cli.config import ConfigOption, config_path
from engine.cli.output import examples
from engine.cli.plan_log import (
    ACCOUNT_PLACEHOLDER,
    REGION_PLACEHOLDER,
    PlanAmbiguous,
    PlanLog,
    account_placeholder_key,
    defaults_from_log,
    read_log,
    region_placeholder_key,
    rekeyed,
)
from engine.errors import SourceError, StoreError, UsageError
from engine.logs import mask_environment
from engine.redact import repository_id

if TYPE_CHECKING:
    # At run time these are imported by the functions that use them: they pull in dulwich,
    # Jinja, botocore's service model and every event model, which the other glam commands
    # and `glam --help` must not pay for at start-up.
    from engine.drift.compare import Difference
    from engine.events.repo import PlannedAction
    from engine.git.source import GitSource
    from engine.planner import DeployedState, Plan
    from engine.tokens import TokenRef


@dataclasses.dataclass(frozen=True, slots=True)
class _Target:
    """One branch to plan: where it is, which branch, how to read it, which folders."""

    url: str
    branch: str | None
    token_env: str | None = None
    token_ref: TokenRef | None = None
    paths: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class _Known:
    """What the plan knows beyond the branch: the accounts a definition may name (None: any)
    and the defaults for a definition that names no region or account."""

    region: str | None
    account: str | None
    accounts: dict[str, tuple[str, ...]] | None
    endpoint_url: str | None = None  # where tokens kept in AWS are read (the file's AWS)


@app.command(
    "plan",
    epilog=examples(
        "glam plan --repo ./lambdas                  # what the head would deploy",
        "glam plan --repo ./lambdas --branch release --render",
        "glam plan --config glam.toml --json         # every watched branch",
    ),
)
def plan_command(
    repo: Annotated[str | None, typer.Option("--repo", help="Repository path or URL.")] = None,
    branch: Annotated[
        str | None, typer.Option("--branch", help="Branch (default: the repository's HEAD).")
    ] = None,
    config: ConfigOption = None,
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
    live: Annotated[
        bool,
        typer.Option("--live", help="Compare with what AWS serves now instead of the log."),
    ] = False,
    endpoint_url: Annotated[
        str | None, typer.Option("--endpoint-url", help="AWS endpoint for --live.")
    ] = None,
    show_secrets: Annotated[
        bool,
        typer.Option(
            "--show-secrets", help="With --render: show environment values (**** otherwise)."
        ),
    ] = False,
) -> int:
    """Show what a branch head would deploy. Exit 0 nothing, 1 changes, 2 invalid, 3 the
    repository or the log could not be read.

    With --config, every branch the file watches (or the one --repo/--branch names), with its
    accounts: a definition naming an account the file does not configure is shown refused."""
    targets, known, use_db = _targets(repo, branch, config, db, region, account, token_env)
    results = []
    for target in targets:
        try:
            result = anyio.run(_plan, target, use_db, known, render)
        except (SourceError, StoreError, PlanAmbiguous) as exc:
            # Not exit 1: that means "changes" to scripts reading the plan's exit code.
            typer.echo(f"glam: {exc.one_line()}", err=True)
            return 3
        if not show_secrets:
            plan, url, shown_branch, rendered, fields = result
            masked = {p: masked_text(t) for p, t in rendered.items()}
            result = plan, url, shown_branch, masked, fields
        results.append(result)
    adopt: set[str] = set()
    if live:
        endpoint = endpoint_url or known.endpoint_url
        results, adopt = anyio.run(_live, results, endpoint, known.region)
    if as_json:
        documents = [_as_json(*result, adopt) for result in results]
        typer.echo(json.dumps(documents[0] if len(documents) == 1 else documents, indent=2))
    else:
        for result in results:
            _print_text(*result, known.account is None, adopt)
    if any(r[0].rejected for r in results):
        return 2
    return 1 if any(r[0].has_changes for r in results) else 0


def masked_text(text: str) -> str:
    """A rendered definition with its environment values as ``****`` (reformatted); a text
    that is not JSON is withheld rather than shown unmasked."""
    try:
        value = json.loads(text)
    except ValueError:
        return "(not valid JSON, so not shown: --show-secrets shows it as rendered)"
    return json.dumps(mask_environment(value), indent=2, ensure_ascii=False)


def _targets(
    repo: str | None,
    branch: str | None,
    config: Path | None,
    db: str | None,
    region: str | None,
    account: str | None,
    token_env: str | None,
) -> tuple[list[_Target], _Known, Path | str | None]:
    """The branches to plan and what is known about the engine, from the flags and the
    configuration file (flags win)."""
    path = config if config is not None else (None if repo else config_path(None))
    glam = None
    if path is not None:
        from engine.config import load_config

        glam = load_config(path)
    explicit_db = db is not None
    given: str | Path | None = db
    if db is None and glam is not None and not os.environ.get("GLAM_DB"):
        # What the engine the file configures knows, from a local file: a PostgreSQL log's
        # password may be a secret reference only the engine resolves (--db URL reads one).
        given = glam.engine.db if isinstance(glam.engine.db, Path) else None
    location = db_location(given)
    use_db: Path | str | None = location
    if isinstance(location, Path) and not location.exists():
        # No SQLite file yet: every function is new (a PostgreSQL log is read, or refused).
        if explicit_db:
            raise UsageError(
                f"no database at {location}", hint="run the engine first, or omit --db"
            )
        use_db = None
    region = (
        region
        or (glam.engine.region if glam is not None else None)
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
    )
    accounts = None if glam is None else {a.id: a.regions for a in glam.account}
    endpoint = glam.engine.endpoint_url if glam is not None else None
    known = _Known(region=region, account=account, accounts=accounts, endpoint_url=endpoint)
    if glam is None:
        if repo is None:
            raise UsageError("nothing to plan", hint="pass --repo PATH_OR_URL, or --config")
        return [_Target(repo, branch, token_env=token_env)], known, use_db
    targets = [
        _Target(r.location, b, token_ref=r.token_ref, paths=r.paths)
        for r, b in glam.watches()
        if (repo is None or repository_id(repo) == r.id) and (branch is None or branch == b)
    ]
    if not targets:
        raise UsageError(
            f"{path} watches no such branch", hint="check --repo and --branch against the file"
        )
    return targets, known, use_db


_Result = tuple["Plan", str, str, dict[str, str], dict[str, tuple["Difference", ...]]]


async def _plan(target: _Target, db: Path | str | None, known: _Known, render: bool) -> _Result:
    from engine.git.source import GitSource
    from engine.git.urls import parse_repo_url

    token = None
    if target.token_ref is not None and target.token_ref.kind != "env":
        token = await _aws_token(target.token_ref, known.endpoint_url)
    env = target.token_env or (
        target.token_ref.ref if target.token_ref and target.token_ref.kind == "env" else None
    )

    async def given() -> str:
        assert token is not None
        return token

    with tempfile.TemporaryDirectory(prefix="glam-plan-") as tmp:
        # A local repository is read in place; a remote one is mirrored into a throwaway folder.
        data_dir = None if parse_repo_url(target.url).kind == "local" else Path(tmp)
        async with GitSource(
            target.url,
            target.branch,
            data_dir=data_dir,
            token_env=env,
            token=given if token is not None else None,
        ) as source:
            return await _plan_source(source, target, db, known, render)


async def _aws_token(ref: TokenRef, endpoint_url: str | None) -> str:
    """A token kept in Secrets Manager or SSM, read with the engine's credentials (as
    ``glam run`` would: the usual chain, or the dummy ones an embedded AWS takes)."""
    from engine.aws.secrets import AwsSecrets
    from engine.cli.run_config import engine_config
    from engine.tokens import TokenResolver

    config = engine_config(repo="", endpoint_url=endpoint_url, region=ref.region)
    secrets = AwsSecrets(config.aws_config())
    try:
        return await TokenResolver(secrets=secrets).resolve(ref)
    finally:
        await secrets.aclose()


async def _plan_source(
    source: GitSource, target: _Target, db: Path | str | None, known: _Known, render: bool
) -> _Result:
    from engine.cli.common import read_log as open_log
    from engine.store.records import gc_paused
    from engine.streams import repo_stream

    head = await source.sync()
    assert source.branch is not None
    # A plan makes objects for every function of the log (50,000 summaries, prefixes,
    # states) and keeps them to its end: the cyclic collector would walk them all again at
    # each burst of allocations, a fifth of a plan of 50,000. They hold no cycles.
    with gc_paused():
        async with contextlib.AsyncExitStack() as stack:
            log = None
            if db is not None:
                # The file's integrity check runs beside the plan: it is printed only after.
                store = await stack.enter_async_context(open_log(db, check_beside=True))
                log = await read_log(store, repo_stream(target.url, source.branch))
            return await _plan_head(source, head, target, log, known, render)
    raise AssertionError("unreachable")  # pragma: no cover - the block returns


async def _plan_head(
    source: GitSource,
    head: str,
    target: _Target,
    log: PlanLog | None,
    known: _Known,
    render: bool,
) -> _Result:
    from engine.deployed import Claimant, DeployedIndex
    from engine.git.state import read_commit_state
    from engine.observe import RepoState
    from engine.planner import PlanContext, plan_commit, stream_for
    from engine.planner import render_filter as _render_filter

    assert source.branch is not None
    deployed: Mapping[str, DeployedState] = {} if log is None else log.deployed
    repo_state = RepoState() if log is None else log.repo
    log_defaults = defaults_from_log(deployed)
    region = known.region or log_defaults.region or REGION_PLACEHOLDER
    account = known.account or log_defaults.account
    if account is None:
        account = ACCOUNT_PLACEHOLDER
        deployed = rekeyed(log, deployed, account_placeholder_key)
    if region == REGION_PLACEHOLDER and log_defaults.unnamed_region:
        # Only a function whose definition named no region moves (none: nothing to re-key).
        deployed = rekeyed(log, deployed, region_placeholder_key)
    # Which accounts a definition may name: the file's and the engine's own; without a file,
    # the engine's own only (as `glam run --repo`). Without a file and without knowing the
    # engine's account, any: the plan cannot tell. (A file can list the engine's own account
    # as an [[account]] without role_arn, so a definition naming it is accepted.)
    accounts: dict[str, tuple[str, ...]] | None = None
    if known.accounts is not None or account != ACCOUNT_PLACEHOLDER:
        accounts = {account: ()} | (known.accounts or {})
    claimant = Claimant(repository_id(target.url), source.branch)
    base: str | None = None
    if log is not None and repo_state.last_planned is not None:
        last = repo_state.last_planned
        base = last if await source.is_ancestor(last, head) else None
    elif log is not None:
        # The log never planned this branch: every prefix is compared with what is deployed,
        # as the engine's first plan of it does.
        base = None
    else:
        parents = (await source.run(lambda: source.commit_info(head))).parents
        base = parents[0] if parents else None
    state = await read_commit_state(
        source,
        head,
        base=base,
        select=_render_filter(deployed, claimant, target.paths),
        keep_rendered=render,
        warn=None,  # printed with the plan below, not logged
        known=repo_state.known,  # only what changed since the last plan is listed
    )
    ctx = PlanContext(
        new_id=lambda: "(preview)",
        default_region=region,
        default_account=account,
        claimant=claimant,
        paths=target.paths,
        accounts=accounts,
    )
    if log is not None and isinstance(deployed, DeployedIndex):
        # Whole states only of what this commit renders: its functions, and the functions
        # their prefixes had (a changed identity compares with the old one).
        rendered = set(state.desired)
        await log.load(
            {stream_for(d, ctx) for d in state.desired.values()}
            | {s.stream for s in deployed.summaries.values() if s.prefix in rendered}
        )
    plan = plan_commit(state, deployed, ctx)
    return plan, source.display_url, source.branch, dict(state.rendered), _fields(plan, deployed)


async def _live(
    results: list[_Result], endpoint_url: str | None, region: str | None
) -> tuple[list[_Result], set[str]]:
    """``results`` with each planned function's fields compared with AWS instead of the log
    (old: what AWS serves, new: the definition), and the functions that already exist and
    match: adopted as they are."""
    from engine.cli.run_config import engine_config
    from engine.definitions.lambdadef import lambda_model
    from engine.drift.compare import Difference, Expected, compare, expected_code
    from engine.drift.read import read_live
    from engine.runtime.clock import SystemClock
    from engine.runtime.providers import AwsProvider
    from engine.streams import parse_function_stream

    await anyio.to_thread.run_sync(lambda_model)
    config = engine_config(repo="", endpoint_url=endpoint_url, region=region)
    provider = AwsProvider(config.aws_config(), clock=SystemClock())
    adopt: set[str] = set()
    out: list[_Result] = []
    try:
        for plan, url, branch, rendered, _ in results:
            fields: dict[str, tuple[Difference, ...]] = {}
            for action in plan.actions:
                desired = plan.desired.get(action.prefix)
                if desired is None or not action.function or action.action == "nothing":
                    continue
                account, function_region, name = parse_function_stream(action.function)
                ports = await provider.region(function_region, account)
                code = expected_code(desired.definition, None)
                want = Expected(name, desired, None, code)
                found = compare(want, await read_live(ports.lambda_api, ports.sources, want))
                if found == (Difference("function", name, None),):
                    continue  # not in AWS: a create
                if not found:
                    adopt.add(action.function)
                fields[action.prefix] = tuple(Difference(d.path, d.live, d.desired) for d in found)
            out.append((plan, url, branch, rendered, fields))
    finally:
        await provider.aclose()
    return out, adopt


def _fields(plan: Plan, deployed: Mapping[str, DeployedState]) -> dict[str, tuple[Difference, ...]]:
    """Per planned prefix, the fields its deployment changes from what is deployed: the
    function's own stream, else (a new identity: region, account or name changed) the
    deployed function of the same prefix."""
    from engine.deployed import summaries_of
    from engine.drift.fields import changes

    by_prefix: dict[str, str] = {}
    for summary in summaries_of(deployed):
        if summary.exists and summary.prefix is not None:
            by_prefix[summary.prefix] = summary.stream
    found: dict[str, tuple[Difference, ...]] = {}
    for action in plan.actions:
        if action.action not in ("create", "new_version", "settings_only"):
            continue
        desired = plan.desired.get(action.prefix)
        if desired is None:
            continue
        current = deployed.get(action.function or "")
        if current is None or current.desired is None:
            other = by_prefix.get(action.prefix)
            current = deployed.get(other) if other is not None else None
        if current is not None and current.desired is not None:
            found[action.prefix] = changes(current.desired, desired)
    return found


_SYMBOL = {
    "create": "+ create",
    "new_version": "~ new version",
    "settings_only": "* settings only",
    "delete": "- delete",
    "remove_alias": "- remove alias",
    "nothing": "  nothing",
}


def _versioned(change: Difference) -> bool:
    """Whether ``change`` is in what a version holds (configuration and code), so a deployment
    publishes for it; tags, the deployment definition and the sources are not."""
    return not change.path.startswith(("tags.", "settings.", "event_sources"))


def _print_text(
    plan: Plan,
    url: str,
    branch: str,
    rendered: dict[str, str],
    fields: dict[str, tuple[Difference, ...]],
    placeholder: bool,
    adopt: Collection[str] = (),
) -> None:
    typer.echo(f"plan for {url} {branch} at {plan.sha[:12]}")
    if placeholder and any(
        a.function.startswith(f"fn:{ACCOUNT_PLACEHOLDER}") for a in plan.actions
    ):
        typer.echo(f"  ({ACCOUNT_PLACEHOLDER} is a placeholder: glam learns the account from AWS)")
    rejected = {r.prefix for r in plan.rejected}
    for action in plan.actions:
        label = "! invalid" if action.prefix in rejected else _SYMBOL[action.action]
        if action.function in adopt:
            label = "= adopt"
        reason = action.reason
        changed = fields.get(action.prefix, ())
        if action.action == "new_version" and changed and not any(map(_versioned, changed)):
            # Tags, the deployment definition or the sources only: the saga publishes nothing.
            label, reason = "~ update", f"{reason}; nothing to publish (no versioned field)"
        if release := _release_of(plan, action):
            reason = f"{reason}; release {release}"
        files = f"  [{', '.join(action.files)}]" if action.files else ""
        function = f"  {action.function}" if action.function else ""
        typer.echo(f"{label:<16} {action.prefix}{function}{files}  — {reason}")
        for change in fields.get(action.prefix, ()):
            typer.echo(f"{'':<16}   {change.text()}")
    for rejection in plan.rejected:
        typer.echo(f"invalid: {rejection.one_line()}", err=True)
    for warning in plan.warnings:
        typer.echo(f"warning: {warning.file}: {warning.message}", err=True)
    for removal in plan.removals:
        what = f"alias {removal.alias} of {removal.function}" if removal.alias else removal.function
        typer.echo(f"{'! held':<16} {removal.prefix}  {what}  — {removal.reason}")
    if plan.held:
        typer.echo(
            f"removals held: {len(plan.removals) or len(plan.held)}; an operator must allow "
            f"them (glam allow-deletes {plan.sha[:12]})",
            err=True,
        )
    if not plan.actions:
        typer.echo("nothing to do")
    for path, text in sorted(rendered.items()):
        typer.echo(f"--- {path} (rendered)")
        typer.echo(text.rstrip("\n"))


def _as_json(
    plan: Plan,
    url: str,
    branch: str,
    rendered: dict[str, str],
    fields: dict[str, tuple[Difference, ...]],
    adopt: Collection[str] = (),
) -> dict[str, Any]:
    return {
        "repo": url,
        "branch": branch,
        "sha": plan.sha,
        "changes": plan.has_changes,
        "actions": [
            a.model_dump(mode="json")
            | ({"adopt": True} if a.function in adopt else {})
            | {"release": _release_of(plan, a)}
            | {
                "fields": [
                    {"path": c.path, "old": c.desired, "new": c.live}
                    for c in fields.get(a.prefix, ())
                ]
            }
            for a in plan.actions
        ],
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
        "removals": [r.model_dump(mode="json") for r in plan.removals],
        "rendered": rendered,
    }


def _release_of(plan: Plan, action: PlannedAction) -> str | None:
    """The release a create or a new version moves with (engine.saga.release), if any."""
    desired = plan.desired.get(action.prefix)
    if action.action not in ("create", "new_version") or desired is None:
        return None
    return desired.settings.release


__all__ = ["plan_command"]
