"""The deployment saga's state: what the saga of one function knows, rebuilt from its stream.

One ``SagaState`` per function stream ``fn:<account>:<region>:<name>``: what is deployed (the
stable version and the desired state that made it), the deployment in flight (``active``) and
at most one newer request held until the active one reaches a safe point (``held``).
engine.saga.replay folds the stream into it; engine.saga.transitions draws the phase machine
a deployment goes through. Also here: the rules that protect live traffic, checked before any
call is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from engine.events.desired import DeploymentSettings, DesiredFunction, EventSources
from engine.events.function import (
    DeploymentFinished,
    DeploymentHeld,
    DeploymentRequested,
    DeployOutcome,
    OperatorRequested,
    ReleaseStage,
    RollbackStarted,
    StepStarted,
    TimerStarted,
)
from engine.saga.schedule import DEFAULT_POLICY, SagaPolicy
from engine.saga.steps import Phase, WaitPurpose

Path = Literal["create", "update", "sources_only", "delete", "remove_alias"]

# The purpose of the pause between two reads that settle a dangling intent.
RESOLVE_WAIT: WaitPurpose = "resolve"
# The purpose of the one alarm read before an operator's promote (engine.saga.saga).
OPERATOR_PROMOTE: WaitPurpose = "operator_promote"
# The purpose of the one alarm read before the first weight moves.
ALARM_CHECK: WaitPurpose = "alarms"
# How many code objects' CodeSha256 a function stream remembers (engine.saga.replay).
CODE_RECORDS = 32
# Where a difference found in AWS is (the start of a DriftDetected path, engine.drift): the
# alias, and $LATEST.
DRIFT_ALIAS = "alias."
DRIFT_LATEST = "$LATEST."


class InvariantViolation(AssertionError):
    """The saga was about to break a rule that protects live traffic. Always a bug in glam."""


def version_marker(deployment_id: str) -> str:
    """The Description an earlier glam gave the versions it published, and how the read that
    settles one of its publish intents still recognises the version. This glam publishes
    without a Description: the version keeps the user's."""
    return f"glam deployment {deployment_id}"


def assert_alias_safe(version: str, routing: dict[str, float]) -> None:
    """Raise InvariantViolation unless (version, routing) is an alias glam may set.

    The saga's own check, made before it asks for the call. The AWS adapter refuses such an
    alias once more on its side (engine.aws.rules), and so does the embedded AWS: a bug here
    must not reach live traffic."""
    if version == "$LATEST" or "$LATEST" in routing:
        raise InvariantViolation("$LATEST must never be an alias target or in routing")
    if len(routing) > 1:
        raise InvariantViolation(f"at most one additional version, got {sorted(routing)}")
    for extra, weight in routing.items():
        if not 0.0 <= weight <= 1.0:
            raise InvariantViolation(f"weight {weight} of version {extra} is outside [0, 1]")
        if extra == version:
            raise InvariantViolation(f"version {version} both alias target and in routing")


def check_deletable(version: str, alias_version: str | None, routing: dict[str, float]) -> None:
    """Raise InvariantViolation if ``version`` is $LATEST or referenced by the alias."""
    if version == "$LATEST":
        raise InvariantViolation("$LATEST is never deleted as a version")
    if version == alias_version or version in routing:
        raise InvariantViolation(f"version {version} is still referenced by the alias")


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployment in flight, as far as the log knows."""

    request: DeploymentRequested
    phase: Phase = "inspect_function"
    path: Path | None = None
    function_arn: str | None = None
    alias_exists: bool = False
    stable: str | None = None  # the alias's version when this deployment started
    new_version: str | None = None
    # The publish answered a version that existed before it (AWS had made it of what $LATEST
    # holds): not this deployment's, so its rollback does not delete it.
    reused_version: bool = False
    code_sha256: str | None = None  # $LATEST's, as last read: what the publish is guarded by
    revision_id: str | None = None
    skip_config: bool = False
    skip_code: bool = False
    # What the reads before any change found (engine.saga.transitions, "deciding"):
    routing_known: bool = False  # the alias's version and routing are known (log or GetAlias)
    alias_read: bool = False  # GetAlias was read in this deployment
    first_sight: bool = False  # the log knew nothing deployed: a function glam may adopt
    old_alias: str | None = None  # the deployed alias, when this deployment moves to another
    expected_code: str | None = None  # the CodeSha256 the desired code has, when known
    code_hashed: bool = False  # the S3 code object was read for it
    latest_differs: tuple[str, ...] | None = None  # members $LATEST differs in (None: unread)
    latest_code: str | None = None  # $LATEST's CodeSha256
    latest_image: str | None = None
    stable_read: str | None = None  # the version whose configuration was read
    stable_differs: tuple[str, ...] | None = None
    stable_code: str | None = None
    stable_image: str | None = None
    tags_set: tuple[str, ...] = ()
    tags_removed: tuple[str, ...] = ()
    signing_read: bool = False
    signing: str | None = None  # the live code-signing configuration, once read
    todo: tuple[Phase, ...] = ()  # the phases decided, still to come before the publish
    forced: bool = False  # $LATEST updated once more: AWS published no new version
    promoted: bool = False  # the alias is on the new version; what is left is the last bake
    schedule: tuple[float, ...] = ()
    shift_index: int = 0
    weight: float = 0.0  # share of the new version on the alias, as last set
    alias_version: str | None = None  # the alias as last set or read
    alias_routing: tuple[tuple[str, float], ...] = ()
    alias_touched: bool = False  # a shift or promote may have changed the alias
    sources_touched: bool = False  # the sources step may have changed event sources
    attempt: int = 1  # attempt number of this phase's next call
    polls: int = 0  # polls made in this phase (wait_*, readiness, settle)
    dangling: StepStarted | None = None  # write-ahead intent with no outcome yet
    unresolved: int = 0  # failed reads in a row settling the dangling intent
    unresolved_code: str | None = None  # error code of the last such failure recorded
    settling: bool = False  # a conflict: wait for LastUpdateStatus before repeating
    due_wait: tuple[WaitPurpose, float] | None = None  # (purpose, seconds) to wait first
    timer: TimerStarted | None = None
    rollback: RollbackStarted | None = None
    # An operator's command, waiting for the next safe point (engine.saga.saga).
    operator: OperatorRequested | None = None
    # An operator's hold in effect (engine.saga.holds): the bake timer stopped, alarms watched.
    paused: DeploymentHeld | None = None
    # Seconds of the bake left when a hold stopped its timer, or the bake's length an extend
    # set before it started; None: the step's own bake (engine.saga.bake).
    bake_left: float | None = None
    # A traffic gate waiting for invocations (engine.saga.gate): the start of the window it
    # counts, and when it stops waiting; None before its first read.
    gate_since: datetime | None = None
    gate_deadline: datetime | None = None
    # A release member (engine.saga.release): the last point it reached (ReleaseStepReached),
    # and the last one every member had reached too (the wait there ended); as (stage, index).
    release_at: tuple[ReleaseStage, int] | None = None
    release_passed: tuple[ReleaseStage, int] | None = None
    outcome: DeployOutcome | None = None  # set when phase is "finish"
    reason: str = ""

    @property
    def deployment_id(self) -> str:
        return self.request.deployment_id

    @property
    def desired(self) -> DesiredFunction | None:
        return self.request.desired

    @property
    def routing(self) -> dict[str, float]:
        return dict(self.alias_routing)


@dataclass(frozen=True, slots=True)
class SagaState:
    """Everything the saga of one function knows, rebuilt from its stream alone."""

    function_name: str
    policy: SagaPolicy = DEFAULT_POLICY
    active: Deployment | None = None
    held: DeploymentRequested | None = None  # the newest request waiting for a safe point
    dropped: tuple[str, ...] = ()  # held requests replaced by newer ones, to finish
    function_exists: bool | None = None
    stable_version: str | None = None
    deployed: DesiredFunction | None = None  # the desired state the stable version came from
    settings: DeploymentSettings | None = None  # from SettingsRecorded, for the next plan
    rolled_back_hash: str | None = None  # not retried until the desired state changes
    last_finished: DeploymentFinished | None = None
    # The alias whose routing the log knows: on ``stable_version`` with no routing (after a
    # deployment finished cleanly); None when it is not known (first sight, a failed rollback).
    alias_known: str | None = None
    # The highest version number this stream's events have seen: a publish that answers a
    # number not above it published nothing new.
    highest_version: int = 0
    # Which code object (engine.definitions.normalize.code_key) had which CodeSha256, as the
    # publishes and code updates of this stream recorded it, newest last (at most
    # CODE_RECORDS): how S3 code is compared without reading the object.
    code_records: tuple[tuple[str, str], ...] = ()
    # Event sources an unsuccessful deployment may have left wired (its rollback could not
    # undo them): passed as ``previous`` with the deployed ones, so the next reconcile or
    # detach removes them.
    stray_sources: EventSources | None = None
    # A difference of $LATEST from what was deployed was found (DriftDetected): the next
    # deployment sets $LATEST back where it differs, also when the stable version serves the
    # definition and nothing is published.
    latest_drift: bool = False

    @property
    def idle(self) -> bool:
        return self.active is None and self.held is None and not self.dropped

    def code_record(self, key: str) -> str | None:
        """The CodeSha256 recorded for code object ``key``, if any."""
        return next((sha for k, sha in reversed(self.code_records) if k == key), None)

    @property
    def alias(self) -> str | None:
        """The alias deployments of this function move: the one in flight's, else the
        deployed one's (a delete carries no desired state)."""
        if self.active is not None and self.active.desired is not None:
            return self.active.desired.settings.alias
        if self.deployed is not None:
            return self.deployed.settings.alias
        return None


def initial_state(function_name: str, policy: SagaPolicy = DEFAULT_POLICY) -> SagaState:
    """The state of a function stream with no events."""
    return SagaState(function_name=function_name, policy=policy)
