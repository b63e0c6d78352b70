"""What ``glam plan`` reads of the log: the deployed states and its branch's repository state.

From the planner's inputs the engine stores (``projections.planner``) when the log has them:
every function's summary, and whole states loaded for the prefixes a plan renders. Otherwise
folded from the log's few events that say what is deployed. Without ``--account`` or
``--region`` (and a log that tells), the functions are matched under placeholders instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from engine.errors import GlamError

if TYPE_CHECKING:
    from engine.deployed import DeployedIndex, DeployedState, DeployedSummary
    from engine.observe import RepoState
    from projections.planner import PlannerInputs

ACCOUNT_PLACEHOLDER = "<account>"
REGION_PLACEHOLDER = "<region>"


class PlanAmbiguous(GlamError):
    """The log holds functions a plan without ``--account``/``--region`` cannot tell apart."""

    exit_code = 3  # not 1: that means "changes" to scripts reading the plan's exit code


class PlanLog:
    """What ``glam plan`` read of the log: the deployed states (every summary; whole states
    as loaded) and the branch's repository state."""

    def __init__(
        self,
        deployed: Mapping[str, DeployedState],
        repo: RepoState,
        inputs: PlannerInputs | None,
    ) -> None:
        self.deployed, self.repo, self._inputs = deployed, repo, inputs
        self._stored: dict[str, str] = {}  # a re-keyed stream: the stream it is stored under

    def rekey(self, new_of: Callable[[DeployedSummary], str]) -> DeployedIndex:
        """The stored index under other streams (``new_of`` each function's summary)."""
        from engine.deployed import DeployedIndex

        index = self.deployed
        assert isinstance(index, DeployedIndex)
        renamed = {s: new_of(summary) for s, summary in index.summaries.items()}
        if all(new == s for s, new in renamed.items()):
            return index  # nothing moves (every definition names what the key replaces)
        for stream in collided(renamed, lambda s: _matters(index.summaries[s])):
            del renamed[stream]
        stored: dict[str, str] = {}
        summaries: dict[str, DeployedSummary] = {}
        states: dict[str, DeployedState] = {}
        for stream, summary in index.summaries.items():
            new = renamed.get(stream)
            if new is None:
                continue
            stored[new] = self._stored.get(stream, stream)
            state = index.states.get(stream)
            if new != stream:
                summary = summary._replace(stream=new)
                state = dataclasses.replace(state, stream=new) if state is not None else None
            summaries[new] = summary
            if state is not None:
                states[new] = state
        self.deployed, self._stored = DeployedIndex(summaries, states), stored
        return self.deployed

    async def load(self, streams: Iterable[str]) -> None:
        """Load the whole states of ``streams`` (under the streams this index uses)."""
        from engine.deployed import DeployedIndex

        if self._inputs is None:
            return
        wanted = {s: self._stored.get(s, s) for s in streams}
        await self._inputs.load(wanted.values())
        index, found = self.deployed, self._inputs.deployed.states
        assert isinstance(index, DeployedIndex)
        for stream, stored in wanted.items():
            if stream in index.summaries and stored in found:
                index.loaded(dataclasses.replace(found[stored], stream=stream))


async def read_log(store: Any, stream: str) -> PlanLog:
    """The planner's inputs: stored by the engine (``projections.planner``) when the log has
    them, else folded from the log."""
    from projections.planner import read_inputs

    inputs = await read_inputs(store, stream)
    if inputs is not None:
        return PlanLog(inputs.deployed, inputs.repo, inputs)
    deployed, repo_state = await fold_log(store, stream)
    return PlanLog(deployed, repo_state, None)


async def fold_log(store: Any, stream: str) -> tuple[dict[str, DeployedState], RepoState]:
    from engine.observe import RepoState, evolve_repo
    from engine.planner import DEPLOYED_EVENT_TYPES, OWNER_EVENT_TYPES, deployed_from_events

    # Only what the planner folds: the repository's stream, the plans (owners of older
    # logs) and the few function events that say what is deployed, not every step.
    records = await store.read_selected(DEPLOYED_EVENT_TYPES | OWNER_EVENT_TYPES, [stream])
    repo_state = RepoState()
    for record in records:
        if record.stream == stream:
            repo_state = evolve_repo(repo_state, record.event)
    return deployed_from_events(records), repo_state


class LogDefaults(NamedTuple):
    """What the log tells of the engine's defaults: the region and the account it used for
    definitions that named none (None: no such function, or they disagree), and whether any
    function's definition named no region."""

    region: str | None
    account: str | None
    unnamed_region: bool


def defaults_from_log(deployed: Mapping[str, DeployedState]) -> LogDefaults:
    """The region and account the engine used for definitions that named none, read off the
    functions it deployed from such definitions (when they all agree)."""
    from engine.deployed import summaries_of

    regions: set[str] = set()
    accounts: set[str] = set()
    for summary in summaries_of(deployed):
        named = summary.named
        if named is None or (named[0] and named[1]):
            continue
        # A function stream, "fn:<account>:<region>:<name>" (the log's keys are its
        # functions' streams), split in place: a call per function was a tenth of a plan.
        _, account, region, _ = summary.stream.split(":", 3)
        if not named[0]:
            regions.add(region)
        if not named[1]:
            accounts.add(account)
    return LogDefaults(
        next(iter(regions)) if len(regions) == 1 else None,
        next(iter(accounts)) if len(accounts) == 1 else None,
        unnamed_region=bool(regions),
    )


def account_placeholder_key(stream: str, named: tuple[bool, bool] | None) -> str:
    """Without ``--account`` (and a log that tells) the plan cannot know the account; match the
    log's functions by region and name instead, so a plan without AWS still compares with what
    was deployed. Limitation: a definition that names its own ``environment.account`` is then
    compared under that account and finds nothing; pass ``--account`` for such repositories."""
    from engine.streams import function_stream, parse_function_stream

    _, region, name = parse_function_stream(stream)
    return function_stream(ACCOUNT_PLACEHOLDER, region, name)


def region_placeholder_key(stream: str, named: tuple[bool, bool] | None) -> str:
    """Without ``--region`` (and a log that tells) the default region is unknown: a function
    whose definition named no region is matched under the region placeholder, which is where
    the plan puts such a definition, instead of looking new (and its real stream deleted)."""
    from engine.streams import function_stream, parse_function_stream

    if named is None or named[0]:
        return stream
    account, _, name = parse_function_stream(stream)
    return function_stream(account, REGION_PLACEHOLDER, name)


def rekeyed(
    log: PlanLog | None,
    deployed: Mapping[str, DeployedState],
    key: Callable[[str, tuple[bool, bool] | None], str],
) -> Mapping[str, DeployedState]:
    """``deployed`` under the streams ``key`` gives (a stored index stays an index: the log
    loads its states under their new streams)."""
    from engine.deployed import DeployedIndex, summarize

    if log is not None and isinstance(deployed, DeployedIndex):
        return log.rekey(lambda summary: key(summary.stream, summary.named))
    renamed = {s: key(s, summarize(state).named) for s, state in deployed.items()}
    for stream in collided(renamed, lambda s: _matters(summarize(deployed[s]))):
        del renamed[stream]
    return {
        new: dataclasses.replace(deployed[stream], stream=new) for stream, new in renamed.items()
    }


def _matters(summary: DeployedSummary) -> bool:
    return summary.live or summary.exists or summary.owner is not None


def collided(renamed: Mapping[str, str], matters: Callable[[str], bool]) -> set[str]:
    """The streams to leave out when a re-keying puts several of the log's functions under one
    stream: those gone from AWS (nothing to compare or delete) beside one that ``matters``
    (live, deployed or owned). Two that matter are refused: the plan would compare a
    definition with either and lose the other (its delete or its drift) without a word, and
    which one the plan means only ``--account``/``--region`` can say."""
    from engine.streams import parse_function_stream

    under: dict[str, list[str]] = {}
    for stream, new in sorted(renamed.items()):
        under.setdefault(new, []).append(stream)
    dropped: set[str] = set()
    for streams in under.values():
        if len(streams) == 1:
            continue
        kept = [s for s in streams if matters(s)] or streams[:1]
        if len(kept) > 1:
            (account, region, name), (other_account, other_region, _) = (
                parse_function_stream(kept[0]),
                parse_function_stream(kept[1]),
            )
            where, flag = (
                (f"accounts {account} and {other_account}", "--account ACCOUNT")
                if account != other_account
                else (f"regions {region} and {other_region}", "--region REGION")
            )
            raise PlanAmbiguous(
                f"the log has a function {name} in {where}, and this plan cannot tell which "
                "one a definition means without knowing the engine's default",
                hint=f"pass {flag}: where the engine deploys definitions that name none",
            )
        dropped.update(s for s in streams if s not in kept)
    return dropped
