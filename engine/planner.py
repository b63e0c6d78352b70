"""The planner: what one commit asks for, against what the log says is deployed.

Pure. Input: a ``CommitState`` (engine.definitions.commit) and a ``DeployedState`` per
function stream, folded from the log by ``deployed_from_events``. Output: one action per
function prefix and the events to append — ``CommitPlanned``, ``DefinitionRejected`` and
``DeletesHeld`` on the repository stream, ``DeploymentRequested`` and ``SettingsRecorded`` on
function streams. Ids come from ``ctx``; nothing here reads a clock, Git or AWS.

The rule table, per prefix:

    def/eventsource/input changed, function unknown      -> create
    def/eventsource/input changed, hash differs           -> new_version
    only depdef changed (hash equal, settings differ)     -> settings_only (recorded)
    _lambdadef deleted (function exists)                  -> delete (held above the limit)
    only a ref file changed                               -> nothing on its own
    rendered hash equal to the deployed one               -> nothing
    hash equal to a rolled-back desired state             -> nothing until it changes
                                                             (or an operator's retry)

An invalid prefix is rejected alone and never turns into a delete. So is a prefix whose
``FunctionName`` (in the same account and region) another prefix owns: the function keeps its
owner; two new claims on one name are both rejected, each naming the other.

Ownership (``engine.deployed``): a plan is made for one branch (``PlanContext.claimant``). It
plans the functions that branch owns, and those no one owns; a prefix whose function another
branch or repository owns is rejected naming the owner (the newer claim loses, never a tug of
war); a function the branch does not own is never deleted by it. A definition whose account
the engine is not configured for, or whose region the account does not allow, is rejected
here too, with the fix to make, rather than failing in its saga.

Identity changes are explicit: a prefix whose definition still exists but now names another
region, account or ``FunctionName`` plans a create of the new identity and a held removal of
the old one ("identity changed"); an alias change plans a deployment on the new alias and a
held removal of the old alias ("alias changed"). Held removals are recorded in ``DeletesHeld``
and carried out once an operator allows them (``glam allow-deletes``), as held mass deletes
are. Nothing is deleted that a ``_lambdadef.json`` still describes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter

from engine.claims import in_paths, refusal, render_filter
from engine.definitions.commit import CommitState, Rejection
from engine.definitions.desired import DEPLOY_KINDS, split_path
from engine.deployed import (
    DEPLOYED_EVENT_TYPES,
    OWNER_EVENT_TYPES,
    Claimant,
    DeployedState,
    DeployedSummary,
    as_owner,
    deployed_from_events,
    evolve_deployed,
    fold_deployed,
    summaries_of,
    summary_of,
)
from engine.events.catalog import Event
from engine.events.desired import DesiredFunction
from engine.events.function import (
    DeployAction,
    DeploymentRequested,
    FunctionOwner,
    SettingsRecorded,
)
from engine.events.repo import (
    ActionKind,
    CommitPlanned,
    DefinitionRejected,
    DefinitionWarning,
    DeletesHeld,
    HeldRemoval,
    PlannedAction,
)
from engine.releases import with_releases
from engine.streams import function_stream

__all__ = [
    "DEPLOYED_EVENT_TYPES",
    "OWNER_EVENT_TYPES",
    "Claimant",
    "DeployedState",
    "Plan",
    "PlanContext",
    "deployed_from_events",
    "evolve_deployed",
    "fold_deployed",
    "plan_commit",
    "render_filter",
]

# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanContext:
    """What the planner needs from outside: ids, defaults, the branch and the guards.

    ``default_region``/``default_account`` apply when a deployment definition names none.
    Deletes are held when they exceed ``delete_limit`` of the branch's live functions and
    number at least ``delete_hold_min`` (one lone delete is an ordinary change), unless
    ``allow_deletes`` (an operator's ``allow_deletes`` command for this commit), which also
    releases held identity and alias removals. ``claimant`` is the branch planned (None: a
    plan that knows no branch, which owns everything); ``paths`` the folders its functions
    are in (empty: all). ``accounts`` are the accounts a definition may name, by id, with
    their allowed regions (empty: any); None accepts any account (a plan that cannot know).
    ``unrendered``: prefixes an earlier plan of this branch had no render time for; which of
    their files changed then is not known, so a difference from what is deployed deploys.
    """

    new_id: Callable[[], str]
    default_region: str
    default_account: str
    delete_limit: float = 0.5
    delete_hold_min: int = 2
    allow_deletes: bool = False
    claimant: Claimant | None = None
    paths: tuple[str, ...] = ()
    accounts: Mapping[str, tuple[str, ...]] | None = None
    unrendered: tuple[str, ...] = ()

    def in_paths(self, prefix: str | None) -> bool:
        """Whether ``prefix`` is in this branch's folders."""
        return in_paths(prefix, self.paths)

    def mine(self, state: DeployedState | DeployedSummary) -> bool:
        """Whether this branch may plan (and delete) the function of ``state``."""
        return self.claimant is None or self.claimant.owns(state.owner)

    def owner(self, prefix: str) -> FunctionOwner | None:
        return self.claimant.owner(prefix) if self.claimant is not None else None


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome of planning one commit. ``held`` are the prefixes with a removal held for
    an operator, ``removals`` what each held removal is."""

    sha: str
    actions: tuple[PlannedAction, ...]
    repo_events: tuple[Event, ...]
    function_events: tuple[tuple[str, Event], ...]
    rejected: tuple[Rejection, ...] = ()
    held: tuple[str, ...] = ()
    desired: Mapping[str, DesiredFunction] = field(default_factory=dict)
    removals: tuple[HeldRemoval, ...] = ()
    warnings: tuple[DefinitionWarning, ...] = ()

    @property
    def has_changes(self) -> bool:
        return any(a.action != "nothing" for a in self.actions) or bool(self.held)


def stream_for(desired: DesiredFunction, ctx: PlanContext) -> str:
    """The function stream of a desired state: its definition's region/account, else the
    defaults in ``ctx``."""
    return function_stream(
        desired.settings.account or ctx.default_account,
        desired.settings.region or ctx.default_region,
        desired.function_name,
    )


@dataclass
class _Removals:
    """What a plan found to remove, before the delete guard decides."""

    deletes: list[tuple[PlannedAction, DeployedSummary]] = field(default_factory=list)
    identities: list[tuple[PlannedAction, DeployedSummary]] = field(default_factory=list)
    # (function state, alias, releasable now): an alias the definition no longer names.
    aliases: list[tuple[DeployedState, str, str, bool]] = field(default_factory=list)


@dataclass
class _Draft:
    """A plan being made: what each phase of ``plan_commit`` adds to."""

    state: CommitState
    ctx: PlanContext
    rejected: dict[str, Rejection]
    actions: list[PlannedAction] = field(default_factory=list)
    fn_events: list[tuple[str, Event]] = field(default_factory=list)
    removals: _Removals = field(default_factory=_Removals)
    claimed: set[str] = field(default_factory=set)  # function streams a prefix still claims
    held: list[HeldRemoval] = field(default_factory=list)

    def request(
        self,
        current: DeployedState | DeployedSummary,
        action: DeployAction,
        alias: str | None = None,
    ) -> None:
        """A deployment request without a desired state (a delete, an alias removal)."""
        ctx = self.ctx
        owner = as_owner(current.owner) or (ctx.owner(current.prefix) if current.prefix else None)
        event = DeploymentRequested(
            deployment_id=ctx.new_id(),
            commit=self.state.sha,
            action=action,
            desired=None,
            alias=alias,
            owner=owner,
        )
        self.fn_events.append((current.stream, event))


def plan_commit(
    state: CommitState, deployed: Mapping[str, DeployedState], ctx: PlanContext
) -> Plan:
    """Plan commit ``state.sha`` against ``deployed`` (by function stream): each prefix of the
    tree, then the live functions no prefix claims any more, then the delete guard over what
    is to be removed."""
    rejected: dict[str, Rejection] = {
        p: r
        for p, r in {**state.rejected, **_conflicting_claims(state, deployed, ctx)}.items()
        if ctx.in_paths(p)
    }
    # Every function's summary, made once: a plan walks them four times.
    summaries = sorted(summaries_of(deployed), key=attrgetter("stream"))
    draft = _Draft(state, ctx, rejected)
    # Streams by prefix, built once: scanning every deployed function for each unchanged
    # prefix made a plan quadratic in the number of functions.
    streams_of: dict[str, list[str]] = {}
    for known in summaries:
        if known.prefix is not None:
            streams_of.setdefault(known.prefix, []).append(known.stream)
    for prefix in sorted(state.prefixes):
        if ctx.paths and not ctx.in_paths(prefix):
            continue  # another branch's folders: neither planned nor deleted here
        if prefix in state.desired or prefix in rejected:
            _plan_prefix(draft, prefix, deployed, streams_of.get(prefix, ()))
        else:  # not rendered: unchanged and already deployed (most of a large tree)
            draft.claimed.update(streams_of.get(prefix, ()))
    _unclaimed(draft, summaries)
    _unknown_deletes(draft, summaries)
    share = _guard_removals(draft, summaries)
    return _finish(draft, share)


def _plan_prefix(
    draft: _Draft, prefix: str, deployed: Mapping[str, DeployedState], streams: Iterable[str]
) -> None:
    """The action for one prefix of the tree, and the events it requests."""
    state, ctx, rejected = draft.state, draft.ctx, draft.rejected
    changes = state.changes_of(prefix)
    files = tuple(c.path for c in changes)
    desired = state.desired.get(prefix)
    if prefix not in rejected and desired is not None:
        refused = refusal(
            prefix,
            stream_for(desired, ctx),
            deployed,
            claimant=ctx.claimant,
            default_account=ctx.default_account,
            accounts=ctx.accounts,
        )
        if refused is not None:
            rejected[prefix] = refused
    rejection = rejected.get(prefix)
    if rejection is not None:
        draft.actions.append(_nothing(prefix, "", files, f"invalid: {rejection.one_line()}"))
        # Keep the live function's stream claimed: an invalid file never deletes it.
        draft.claimed.update(streams)
        return
    if desired is None:
        draft.claimed.update(streams)
        return  # not rendered: unchanged and already deployed
    stream = stream_for(desired, ctx)
    draft.claimed.add(stream)
    current = deployed.get(stream) or DeployedState(stream=stream)
    action, reason = _decide(desired, current, state, prefix, prefix in ctx.unrendered)
    if action == "new_version" and (refused := _create_only(prefix, current, desired)):
        rejected[prefix] = refused
        draft.actions.append(_nothing(prefix, stream, files, f"invalid: {refused.one_line()}"))
        return
    _alias_removals(draft.removals, current, desired, action, prefix)
    # Without a base (a first plan) an unchanged function deployed as it is has nothing to
    # say: only what differs from the log is listed, as a plan with a base does.
    if action == "nothing" and not changes and current.exists:
        return
    draft.actions.append(
        PlannedAction(
            prefix=prefix,
            function=stream,
            action=action,
            files=files,
            reason=reason,
            content_hash=desired.content_hash,
        )
    )
    if action in ("create", "new_version"):
        request = DeploymentRequested(
            deployment_id=ctx.new_id(),
            commit=state.sha,
            action="create" if action == "create" else "update",
            desired=desired,
            owner=ctx.owner(prefix),
        )
        draft.fn_events.append((stream, request))
    elif action == "settings_only":
        draft.fn_events.append(
            (stream, SettingsRecorded(commit=state.sha, settings=desired.settings))
        )


def _unclaimed(draft: _Draft, summaries: list[DeployedSummary]) -> None:
    """Live functions of this branch no prefix of this commit claims: their definition is gone
    (a delete), or it names another identity now (a held removal of the old one)."""
    state, ctx = draft.state, draft.ctx
    for current in summaries:  # by stream
        if not current.live or current.stream in draft.claimed or current.prefix is None:
            continue
        if not ctx.mine(current) or not ctx.in_paths(current.prefix):
            continue  # another branch's function, or outside this branch's folders
        if current.deleting:
            # Already being deleted: planning the same commit again (an operator's
            # allow-deletes after a restart) or a later one must not request it twice.
            continue
        files = tuple(c.path for c in state.changes_of(current.prefix) if c.change == "deleted")
        planned = PlannedAction(
            prefix=current.prefix, function=current.stream, action="delete", files=files, reason=""
        )
        if current.prefix not in state.prefixes:
            draft.removals.deletes.append(
                (planned.model_copy(update={"reason": "definition deleted"}), current)
            )
        else:
            now = state.desired.get(current.prefix)
            where = f" (now {stream_for(now, ctx)})" if now is not None else ""
            reason = f"identity changed{where}"
            draft.removals.identities.append(
                (planned.model_copy(update={"reason": reason}), current)
            )


def _unknown_deletes(draft: _Draft, summaries: list[DeployedSummary]) -> None:
    """Deleted definitions the log knows nothing about (e.g. `glam plan` without a database)."""
    state, ctx = draft.state, draft.ctx
    if state.changes is None:
        return
    known_prefixes = {s.prefix for s in summaries}
    for prefix, changes in sorted(state.changes.items()):
        gone_defs = [
            c.path
            for c in changes
            if c.change == "deleted" and (split_path(c.path) or ("", ""))[1] == "def"
        ]
        if (
            gone_defs
            and ctx.in_paths(prefix)
            and prefix not in state.prefixes
            and prefix not in known_prefixes
        ):
            reason = "definition deleted; the log knows no deployed function for it"
            draft.actions.append(_nothing(prefix, "", tuple(gone_defs), reason))


def _guard_removals(draft: _Draft, summaries: list[DeployedSummary]) -> float:
    """The delete guard: the deletes go ahead, or are all held when they are too large a share
    of the branch's live functions; identity and alias removals wait for an operator's
    allow-deletes. Returns the share of live functions the deletes are."""
    ctx, removals = draft.ctx, draft.removals
    deletes = removals.deletes
    share = 0.0  # no deletes (counting the live functions would walk every one for nothing)
    if deletes:
        live_count = sum(
            1 for s in summaries if s.exists and ctx.mine(s) and ctx.in_paths(s.prefix)
        )
        share = len(deletes) / live_count if live_count else 1.0
    hold = (
        not ctx.allow_deletes and len(deletes) >= ctx.delete_hold_min and share > ctx.delete_limit
    )
    for planned, current in deletes:
        if hold:
            reason = f"delete held: {share:.0%} of functions > {ctx.delete_limit:.0%}"
            draft.actions.append(planned.model_copy(update={"action": "nothing", "reason": reason}))
            draft.held.append(_held(planned, "definition deleted"))
        else:
            draft.actions.append(planned)
            draft.request(current, "delete")
    for planned, current in removals.identities:
        if ctx.allow_deletes:
            draft.actions.append(planned)
            draft.request(current, "delete")
        else:
            reason = f"removal held: {planned.reason}; `glam allow-deletes` removes it"
            draft.actions.append(planned.model_copy(update={"action": "nothing", "reason": reason}))
            draft.held.append(_held(planned, planned.reason))
    for function, alias, why, releasable in removals.aliases:
        prefix = function.prefix or ""
        if ctx.allow_deletes and releasable:
            draft.actions.append(
                PlannedAction(
                    prefix=prefix,
                    function=function.stream,
                    action="remove_alias",
                    files=(),
                    reason=f"{why}: alias {alias} removed",
                )
            )
            draft.request(function, "remove_alias", alias)
            continue
        later = "" if releasable else " once the deployment on the new alias has succeeded"
        draft.held.append(
            HeldRemoval(
                function=function.stream, prefix=prefix, reason=f"{why}{later}", alias=alias
            )
        )
    return share


def _finish(draft: _Draft, share: float) -> Plan:
    """The plan's events: the repository stream's plan, rejections and held removals, and the
    function streams' requests (releases joined)."""
    state, ctx, held = draft.state, draft.ctx, draft.held
    actions = sorted(draft.actions, key=lambda a: a.prefix)
    repo_events: list[Event] = [
        CommitPlanned(
            sha=state.sha, actions=tuple(actions), warnings=state.warnings, listing=state.listing
        )
    ]
    rejections = tuple(draft.rejected[p] for p in sorted(draft.rejected))
    for rej in rejections:
        repo_events.append(
            DefinitionRejected(
                sha=state.sha,
                prefix=rej.prefix,
                file=rej.file,
                line=rej.line,
                column=rej.column,
                reason=rej.reason if not rej.hint else f"{rej.reason} — {rej.hint}",
            )
        )
    held_prefixes = tuple(sorted({r.prefix for r in held}))
    if held:
        repo_events.append(
            DeletesHeld(
                sha=state.sha,
                prefixes=held_prefixes,
                share=share,
                limit=ctx.delete_limit,
                removals=tuple(held),
            )
        )
    return Plan(
        sha=state.sha,
        actions=tuple(actions),
        repo_events=tuple(repo_events),
        function_events=with_releases(draft.fn_events, ctx.new_id),
        rejected=rejections,
        held=held_prefixes,
        desired=dict(state.desired),
        removals=tuple(held),
        warnings=state.warnings,
    )


def _held(planned: PlannedAction, reason: str) -> HeldRemoval:
    return HeldRemoval(function=planned.function, prefix=planned.prefix, reason=reason)


def _alias_removals(
    removals: _Removals,
    current: DeployedState,
    desired: DesiredFunction,
    action: ActionKind,
    prefix: str,
) -> None:
    """The aliases of ``current`` that ``desired`` no longer names: the ones a succeeded
    deployment left behind (removable now), and the one a deployment on the new alias is
    about to replace (held until that deployment succeeds)."""
    new = desired.settings.alias
    for alias in current.stale_aliases:
        if alias != new:
            removals.aliases.append((current, alias, "alias changed", current.in_flight is None))
    old = current.settings.alias if current.exists and current.settings is not None else None
    flight = current.in_flight
    moving = action in ("new_version", "create") or (
        flight is not None and flight.desired is not None and flight.desired.settings.alias == new
    )
    if old is not None and old != new and moving and old not in current.stale_aliases:
        removals.aliases.append((current, old, f"alias changed to {new}", False))


def _conflicting_claims(
    state: CommitState, deployed: Mapping[str, DeployedState], ctx: PlanContext
) -> dict[str, Rejection]:
    """Rendered prefixes that claim a function another prefix owns or claims too.

    The owner is the prefix the log knows for the function, as long as it is still in the tree
    and still claims it (unchanged, invalid, or rendered to the same stream): a function is
    never handed to another prefix by a typo or a copied folder. A definition that moves (the
    old prefix gone) keeps its function. Only prefixes of this branch (``ctx``) count: a
    function another branch owns is refused by the owner rule (``engine.claims.refusal``),
    naming that branch."""
    claims: dict[str, list[str]] = {}
    for prefix in sorted(state.desired):
        if prefix not in state.rejected and ctx.in_paths(prefix):
            claims.setdefault(stream_for(state.desired[prefix], ctx), []).append(prefix)
    out: dict[str, Rejection] = {}
    for stream, prefixes in claims.items():
        known = summary_of(deployed, stream)
        live = known is not None and known.live
        owner = known.prefix if known is not None and live and ctx.mine(known) else None
        if owner is not None and owner in state.desired:
            if stream_for(state.desired[owner], ctx) != stream:
                owner = None  # renamed its function away: the name is free
        elif owner is not None and owner not in state.prefixes:
            owner = None  # gone from the tree: the definition moved
        name = state.desired[prefixes[0]].function_name
        for prefix in prefixes:
            if owner is not None and prefix != owner:
                reason = f"FunctionName {name!r} ({stream}) belongs to {owner}"
                hint = "give this function another FunctionName, or delete the other one first"
            elif owner is None and len(prefixes) > 1:
                others = ", ".join(p for p in prefixes if p != prefix)
                reason = f"FunctionName {name!r} ({stream}) is claimed by {others} too"
                hint = "give each function its own FunctionName"
            else:
                continue
            out[prefix] = Rejection(
                prefix=prefix, file=f"{prefix}_lambdadef.json", reason=reason, hint=hint
            )
    return out


def _decide(
    desired: DesiredFunction,
    current: DeployedState,
    state: CommitState,
    prefix: str,
    unrendered: bool = False,
) -> tuple[ActionKind, str]:
    h = desired.content_hash
    flight = current.in_flight
    if flight is not None and flight.desired is not None and flight.desired.content_hash == h:
        return "nothing", "a deployment of this desired state is in progress"
    if flight is not None:
        # Another desired state is on its way (even one that is not deployed yet may promote):
        # a newer request makes the saga roll it back at its next safe point, then deploy this
        # one. Without it, a revert to what is deployed would let the abandoned one promote.
        action: ActionKind = "new_version" if current.exists else "create"
        return action, "differs from the deployment in progress, which it supersedes"
    if h == current.rolled_back_hash:
        return "nothing", "this desired state was rolled back; change it to retry"
    if not current.exists:
        return "create", "new function (adopted as it is if AWS already serves this definition)"
    if h == current.content_hash:
        if current.settings is not None and desired.settings != current.settings:
            return "settings_only", "deployment settings changed; used by the next deployment"
        return "nothing", "identical to what is deployed"
    kinds = {split[1] for c in state.changes_of(prefix) if (split := split_path(c.path))}
    triggered = state.changes is None or unrendered or bool(kinds & DEPLOY_KINDS)
    if triggered:
        return "new_version", "definition changed"
    if current.settings is not None and desired.settings.alias != current.settings.alias:
        return "new_version", "alias changed"
    if current.settings is not None and desired.settings != current.settings:
        return "settings_only", "deployment settings changed; used by the next deployment"
    return "nothing", "only referenced values changed; deployed with the next definition change"


def _create_only(prefix: str, current: DeployedState, desired: DesiredFunction) -> Rejection | None:
    """A change AWS cannot apply to the existing function, refused at plan time."""
    from engine.drift.fields import CREATE_ONLY_HINT, create_only_changes

    found = create_only_changes(current.desired, desired) if current.desired else []
    if not found:
        return None
    what = ", ".join(d.text() for d in found)
    reason = f"only a new function can take this change: {what}"
    return Rejection(
        prefix=prefix, file=f"{prefix}_lambdadef.json", reason=reason, hint=CREATE_ONLY_HINT
    )


def _nothing(prefix: str, stream: str, files: tuple[str, ...], reason: str) -> PlannedAction:
    return PlannedAction(
        prefix=prefix, function=stream, action="nothing", files=files, reason=reason
    )
