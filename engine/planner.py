"""The planner: what one commit asks for, against what the log says is deployed.

Pure. Input: a ``CommitState`` (engine.definitions.commit) and a ``DeployedState`` per
function stream, folded from the log by ``deployed_from_events``. Output: one action per
function prefix and the events to append — ``CommitPlanned``, ``DefinitionRejected`` and
``DeletesHeld`` on the repository stream, ``DeploymentRequested`` and ``SettingsRecorded`` on
function streams. Ids come from ``ctx``; nothing here reads a clock, Git or AWS.

DESIGN §1's rule table, per prefix:

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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from engine.definitions.commit import CommitState, Rejection
from engine.definitions.desired import DEPLOY_KINDS, split_path
from engine.events import RecordedEvent
from engine.events.catalog import Event
from engine.events.desired import DeploymentSettings, DesiredFunction
from engine.events.function import (
    DeploymentFinished,
    DeploymentRequested,
    FunctionDeleted,
    OperatorRequested,
    SettingsRecorded,
)
from engine.events.repo import (
    ActionKind,
    CommitPlanned,
    DefinitionRejected,
    DefinitionWarning,
    DeletesHeld,
    PlannedAction,
)
from engine.streams import FUNCTION_PREFIX, function_stream

# --------------------------------------------------------------------------------------------
# What the log says is deployed
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeployedState:
    """What one function stream's events say about the function.

    ``content_hash``/``settings`` are those of the last successful deployment;
    ``rolled_back_hash`` is a desired state that failed and is not retried until it changes;
    ``requests`` are the requested, unfinished deployments in request order (an older one
    may still be finishing while a newer one waits), ``in_flight`` the newest of them.
    """

    stream: str
    prefix: str | None = None
    exists: bool = False
    content_hash: str | None = None
    settings: DeploymentSettings | None = None
    rolled_back_hash: str | None = None
    # The request whose desired state rolled back (or failed): what an operator's retry
    # requests again.
    rolled_back: DeploymentRequested | None = None
    requests: tuple[DeploymentRequested, ...] = ()

    @property
    def in_flight(self) -> DeploymentRequested | None:
        """The newest unfinished request: what the function converges to next."""
        return self.requests[-1] if self.requests else None


def _without(
    requests: tuple[DeploymentRequested, ...], deployment_id: str
) -> tuple[DeploymentRequested, ...]:
    return tuple(r for r in requests if r.deployment_id != deployment_id)


# The only event types ``evolve_deployed`` changes a state for (a test holds it to that): what
# a reader of the log must fetch to know what is deployed.
DEPLOYED_EVENT_TYPES: frozenset[str] = frozenset(
    {"DeploymentRequested", "SettingsRecorded", "DeploymentFinished", "FunctionDeleted"}
)


def evolve_deployed(state: DeployedState, event: Event) -> DeployedState:
    """Fold one event of the function's stream into its ``DeployedState``."""
    match event:
        case DeploymentRequested(desired=desired):
            prefix = desired.prefix if desired is not None else state.prefix
            # Tracked by id: an older deployment finishing must not end the newer one's.
            requests = (*_without(state.requests, event.deployment_id), event)
            return replace(state, prefix=prefix, requests=requests)
        case SettingsRecorded(settings=settings):
            return replace(state, settings=settings)
        case DeploymentFinished(deployment_id=dep_id, outcome=outcome):
            request = next((r for r in state.requests if r.deployment_id == dep_id), None)
            if request is None:
                return state
            state = replace(state, requests=_without(state.requests, dep_id))
            if outcome == "succeeded":
                if request.action == "delete" or request.desired is None:
                    # Gone with its definition: nothing is left for a retry to bring back.
                    return replace(
                        state,
                        exists=False,
                        content_hash=None,
                        rolled_back_hash=None,
                        rolled_back=None,
                    )
                return replace(
                    state,
                    exists=True,
                    content_hash=request.desired.content_hash,
                    settings=request.desired.settings,
                    rolled_back_hash=None,
                    rolled_back=None,
                )
            if outcome in ("rolled_back", "failed") and request.desired is not None:
                return replace(
                    state, rolled_back_hash=request.desired.content_hash, rolled_back=request
                )
            return state
        case FunctionDeleted(deployment_id=dep_id):
            return replace(
                state,
                exists=False,
                content_hash=None,
                rolled_back_hash=None,
                rolled_back=None,
                requests=_without(state.requests, dep_id),
            )
        case _:
            return state


def deployed_from_events(events: Iterable[RecordedEvent]) -> dict[str, DeployedState]:
    """``DeployedState`` per function stream, folded from any sequence of recorded events
    (a whole log or just function streams, in log order)."""
    states: dict[str, DeployedState] = {}
    for record in events:
        if not record.stream.startswith(FUNCTION_PREFIX):
            continue
        current = states.get(record.stream) or DeployedState(stream=record.stream)
        states[record.stream] = evolve_deployed(current, record.event)
    return states


def render_filter(deployed: Mapping[str, DeployedState]) -> Callable[[str], bool]:
    """For ``read_commit_state(select=...)``: render an unchanged prefix only when the log
    has no live function for it (it must be created)."""
    known = {s.prefix for s in deployed.values() if s.exists or s.in_flight is not None}
    return lambda prefix: prefix not in known


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanContext:
    """What the planner needs from outside: ids, defaults and the delete guard.

    ``default_region``/``default_account`` apply when a deployment definition names none.
    Deletes are held when they exceed ``delete_limit`` of the live functions and number at
    least ``delete_hold_min`` (one lone delete is an ordinary change), unless
    ``allow_deletes`` (an operator's ``allow_deletes`` command for this commit).
    """

    new_id: Callable[[], str]
    default_region: str
    default_account: str
    delete_limit: float = 0.5
    delete_hold_min: int = 2
    allow_deletes: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome of planning one commit."""

    sha: str
    actions: tuple[PlannedAction, ...]
    repo_events: tuple[Event, ...]
    function_events: tuple[tuple[str, Event], ...]
    rejected: tuple[Rejection, ...] = ()
    held: tuple[str, ...] = ()
    desired: Mapping[str, DesiredFunction] = field(default_factory=dict)
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


def plan_commit(
    state: CommitState, deployed: Mapping[str, DeployedState], ctx: PlanContext
) -> Plan:
    """Plan commit ``state.sha`` against ``deployed`` (by function stream)."""
    actions: list[PlannedAction] = []
    fn_events: list[tuple[str, Event]] = []
    deletes: list[tuple[PlannedAction, DeployedState]] = []
    claimed: set[str] = set()
    # Streams by prefix, built once: scanning every deployed function for each unchanged
    # prefix made a plan quadratic in the number of functions.
    streams_of: dict[str, list[str]] = {}
    for known in deployed.values():
        if known.prefix is not None:
            streams_of.setdefault(known.prefix, []).append(known.stream)
    rejected = {**state.rejected, **_conflicting_claims(state, deployed, ctx)}

    for prefix in sorted(state.prefixes):
        changes = state.changes_of(prefix)
        files = tuple(c.path for c in changes)
        rejection = rejected.get(prefix)
        if rejection is not None:
            actions.append(_nothing(prefix, "", files, f"invalid: {rejection.one_line()}"))
            # Keep the live function's stream claimed: an invalid file never deletes it.
            claimed.update(streams_of.get(prefix, ()))
            continue
        desired = state.desired.get(prefix)
        if desired is None:
            claimed.update(streams_of.get(prefix, ()))
            continue  # not rendered: unchanged and already deployed
        stream = stream_for(desired, ctx)
        claimed.add(stream)
        current = deployed.get(stream) or DeployedState(stream=stream)
        action, reason = _decide(desired, current, state, prefix)
        changed = state.changes is None or bool(changes)
        if action == "nothing" and not changed and current.exists:
            continue
        planned = PlannedAction(
            prefix=prefix,
            function=stream,
            action=action,
            files=files,
            reason=reason,
            content_hash=desired.content_hash,
        )
        actions.append(planned)
        if action in ("create", "new_version"):
            fn_events.append(
                (
                    stream,
                    DeploymentRequested(
                        deployment_id=ctx.new_id(),
                        commit=state.sha,
                        action="create" if action == "create" else "update",
                        desired=desired,
                    ),
                )
            )
        elif action == "settings_only":
            fn_events.append(
                (stream, SettingsRecorded(commit=state.sha, settings=desired.settings))
            )

    # Live functions no prefix of this commit claims: their definition is gone (or renamed).
    for current in sorted(deployed.values(), key=lambda s: s.stream):
        live = current.exists or (
            current.in_flight is not None and current.in_flight.action != "delete"
        )
        if not live or current.stream in claimed or current.prefix is None:
            continue
        if current.in_flight is not None and current.in_flight.action == "delete":
            # Already being deleted: planning the same commit again (an operator's
            # allow-deletes after a restart) or a later one must not request it twice.
            continue
        files = tuple(c.path for c in state.changes_of(current.prefix) if c.change == "deleted")
        gone = current.prefix not in state.prefixes
        reason = "definition deleted" if gone else "function renamed in its definition"
        deletes.append(
            (
                PlannedAction(
                    prefix=current.prefix,
                    function=current.stream,
                    action="delete",
                    files=files,
                    reason=reason,
                ),
                current,
            )
        )
    # Deleted definitions the log knows nothing about (e.g. `glam plan` without a database).
    if state.changes is not None:
        known_prefixes = {s.prefix for s in deployed.values()}
        for prefix, changes in sorted(state.changes.items()):
            gone_defs = [
                c.path
                for c in changes
                if c.change == "deleted" and (split_path(c.path) or ("", ""))[1] == "def"
            ]
            if gone_defs and prefix not in state.prefixes and prefix not in known_prefixes:
                actions.append(
                    _nothing(
                        prefix,
                        "",
                        tuple(gone_defs),
                        "definition deleted; the log knows no deployed function for it",
                    )
                )

    live_count = sum(1 for s in deployed.values() if s.exists)
    share = len(deletes) / live_count if live_count else (1.0 if deletes else 0.0)
    hold = (
        not ctx.allow_deletes and len(deletes) >= ctx.delete_hold_min and share > ctx.delete_limit
    )
    held: tuple[str, ...] = ()
    repo_events: list[Event] = []
    if hold:
        held = tuple(a.prefix for a, _ in deletes)
        for planned, _ in deletes:
            reason = f"delete held: {share:.0%} of functions > {ctx.delete_limit:.0%}"
            actions.append(planned.model_copy(update={"action": "nothing", "reason": reason}))
    else:
        for planned, current in deletes:
            actions.append(planned)
            fn_events.append(
                (
                    current.stream,
                    DeploymentRequested(
                        deployment_id=ctx.new_id(), commit=state.sha, action="delete", desired=None
                    ),
                )
            )

    actions.sort(key=lambda a: a.prefix)
    repo_events.append(
        CommitPlanned(sha=state.sha, actions=tuple(actions), warnings=state.warnings)
    )
    rejections = tuple(rejected[p] for p in sorted(rejected))
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
    if hold:
        repo_events.append(
            DeletesHeld(sha=state.sha, prefixes=held, share=share, limit=ctx.delete_limit)
        )
    return Plan(
        sha=state.sha,
        actions=tuple(actions),
        repo_events=tuple(repo_events),
        function_events=tuple(fn_events),
        rejected=rejections,
        held=held,
        desired=dict(state.desired),
        warnings=state.warnings,
    )


def _conflicting_claims(
    state: CommitState, deployed: Mapping[str, DeployedState], ctx: PlanContext
) -> dict[str, Rejection]:
    """Rendered prefixes that claim a function another prefix owns or claims too.

    The owner is the prefix the log knows for the function, as long as it is still in the tree
    and still claims it (unchanged, invalid, or rendered to the same stream): a function is
    never handed to another prefix by a typo or a copied folder. A definition that moves (the
    old prefix gone) keeps its function."""
    claims: dict[str, list[str]] = {}
    for prefix in sorted(state.desired):
        if prefix not in state.rejected:
            claims.setdefault(stream_for(state.desired[prefix], ctx), []).append(prefix)
    out: dict[str, Rejection] = {}
    for stream, prefixes in claims.items():
        known = deployed.get(stream)
        live = known is not None and (
            known.exists or (known.in_flight is not None and known.in_flight.action != "delete")
        )
        owner = known.prefix if known is not None and live else None
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


def head_action(events: Iterable[Event], stream: str) -> PlannedAction | None:
    """The last action the planner recorded for function ``stream`` (from the repository
    stream's events in order): what the latest planned commit wants of it. A plan records only
    the prefixes it changes, so the last one naming the stream is the one that counts."""
    last: PlannedAction | None = None
    for event in events:
        if isinstance(event, CommitPlanned):
            for action in event.actions:
                if action.function == stream:
                    last = action
    return last


def retry_refusal(current: DeployedState, head: PlannedAction | None = None) -> str | None:
    """Why an operator's retry cannot be acted on for this function, or None when it can.
    ``head`` is ``head_action`` of the repository stream: a retry never brings back a desired
    state the branch has since deleted or replaced (the normal plan handles a replacement)."""
    if current.in_flight is not None:
        return f"{current.stream} has a deployment in progress; abort it first"
    if current.rolled_back is None or current.rolled_back_hash is None:
        return f"{current.stream} has no rolled-back desired state to retry"
    if head is not None and head.action == "delete":
        return f"the branch deleted the definition of {current.stream}; nothing to retry"
    if head is not None and head.content_hash not in (None, current.rolled_back_hash):
        return (
            f"the branch wants another desired state of {current.stream} than the rolled-back "
            "one; the engine deploys it without a retry"
        )
    return None


def plan_retry(
    current: DeployedState, ctx: PlanContext, head: PlannedAction | None = None
) -> DeploymentRequested | None:
    """An operator's retry: request the rolled-back desired state again (same commit, a new
    deployment id), or None when ``retry_refusal`` says it cannot be retried."""
    if retry_refusal(current, head) is not None:
        return None
    rejected = current.rolled_back
    assert rejected is not None  # retry_refusal checked it
    assert rejected.desired is not None  # only requests with a desired state roll back
    return DeploymentRequested(
        deployment_id=ctx.new_id(),
        commit=rejected.commit,
        action="update" if current.exists else "create",
        desired=rejected.desired,
    )


def held_deletes(events: Iterable[Event]) -> dict[str, DeletesHeld]:
    """The commits whose deletes are held and not yet allowed, from the repository stream's
    events in order: a ``DeletesHeld`` holds its commit, a later ``CommitPlanned`` of another
    commit makes it stale (that plan decides anew), an ``allow_deletes`` handed to the stream
    releases it."""
    held: dict[str, DeletesHeld] = {}
    for event in events:
        match event:
            case DeletesHeld(sha=sha):
                held = {sha: event}
            case CommitPlanned(sha=sha) if sha not in held:
                held = {}
            case OperatorRequested(command="allow_deletes", target=sha, outcome="applied"):
                held.pop(sha, None)
            case _:
                pass
    return held


def _decide(
    desired: DesiredFunction, current: DeployedState, state: CommitState, prefix: str
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
    triggered = state.changes is None or bool(kinds & DEPLOY_KINDS)
    if triggered:
        return "new_version", "definition changed"
    if current.settings is not None and desired.settings.alias != current.settings.alias:
        return "new_version", "alias changed"
    if current.settings is not None and desired.settings != current.settings:
        return "settings_only", "deployment settings changed; used by the next deployment"
    return "nothing", "only referenced values changed; deployed with the next definition change"


def _nothing(prefix: str, stream: str, files: tuple[str, ...], reason: str) -> PlannedAction:
    return PlannedAction(
        prefix=prefix, function=stream, action="nothing", files=files, reason=reason
    )
