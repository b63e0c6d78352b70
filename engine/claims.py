"""Which functions a branch may plan: its folders, the accounts and regions the engine may act
in, and the functions it owns (``engine.deployed``). Pure helpers of the planner."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from engine.definitions.commit import Rejection
from engine.deployed import (
    Claimant,
    DeployedState,
    describe_owner,
    summaries_of,
    summary_of,
)
from engine.streams import parse_function_stream


def in_paths(prefix: str | None, paths: tuple[str, ...]) -> bool:
    """Whether ``prefix`` is under one of the folders ``paths`` (empty: every prefix is)."""
    if not paths:
        return True
    return prefix is not None and any(prefix.startswith(f"{p}/") for p in paths)


def render_filter(
    deployed: Mapping[str, DeployedState],
    claimant: Claimant | None = None,
    paths: tuple[str, ...] = (),
) -> Callable[[str], bool]:
    """For ``read_commit_state(select=...)``: render an unchanged prefix when the log has no
    live function of this branch for it (it must be created, or another branch owns it), or
    when a removal of its function's old identity or alias is pending (so each plan shows it
    held again); never a prefix outside ``paths``."""
    known: set[str] = set()
    seen: dict[str, int] = {}
    pending: set[str] = set()
    for state in summaries_of(deployed):
        if state.prefix is None or not state.live:
            continue
        if claimant is not None and not claimant.owns(state.owner):
            continue
        known.add(state.prefix)
        seen[state.prefix] = seen.get(state.prefix, 0) + 1
        if state.stale:
            pending.add(state.prefix)
    pending.update(p for p, n in seen.items() if n > 1)
    return lambda prefix: in_paths(prefix, paths) and (prefix not in known or prefix in pending)


def refusal(
    prefix: str,
    stream: str,
    deployed: Mapping[str, DeployedState],
    *,
    claimant: Claimant | None,
    default_account: str,
    accounts: Mapping[str, tuple[str, ...]] | None,
) -> Rejection | None:
    """Why the engine must not plan ``prefix``'s function ``stream`` at all: an account it
    cannot act in (not ``default_account``, its own, nor one of ``accounts``), a region the
    account does not allow, or a function another branch than ``claimant`` owns."""
    account, region, name = parse_function_stream(stream)
    depdef = f"{prefix}_lambdadepdef.json"
    if accounts is not None:
        if account != default_account and account not in accounts:
            return Rejection(
                prefix=prefix,
                file=depdef,
                reason=f"account {account} is not configured: the engine has no role to "
                "assume there",
                hint=f'add an [[account]] entry with id = "{account}" and role_arn = '
                f'"arn:aws:iam::{account}:role/<the role glam assumes>" to glam.toml, or '
                "remove environment.account to deploy to the engine's own account",
            )
        allowed = accounts.get(account, ())
        if allowed and region not in allowed:
            return Rejection(
                prefix=prefix,
                file=depdef,
                reason=f"region {region} is not allowed for account {account} "
                f"(allowed: {', '.join(allowed)})",
                hint="add it to the account's regions in glam.toml, or name an allowed "
                "region in environment.region",
            )
    current = summary_of(deployed, stream)
    if (
        current is not None
        and current.owner is not None
        and claimant is not None
        and not claimant.owns(current.owner)
    ):
        return Rejection(
            prefix=prefix,
            file=f"{prefix}_lambdadef.json",
            reason=f"function {name} ({stream}) is owned by {describe_owner(current.owner)}",
            hint="one branch owns a function: give this one another FunctionName, account or "
            "region, or delete the function from its owner first",
        )
    return None
