"""The ports: what the core needs from the outside world, as Protocols.

Adapters implement them (SQLite, aiobotocore, dulwich); in-memory fakes implement them too and
are real implementations used by the fast tests (``engine.store.memory``, ``engine.testing``).
Each port has one contract suite in tests/ that runs against every implementation.

    Clock            time, and sleeping until a deadline
    EventStore       the append-only log               engine.store.sqlite, engine.store.memory
    ViewStore        projection rows and checkpoint    (the same two stores)
    ProjectionStore  both at once: what the engine runs on (``engine.store.open_store``)
    RepoSource       the watched branch                engine.git.repo_source, engine.testing
    LambdaApi, AlarmsApi, SourcesApi, CodeObjects      engine.aws, engine.testing
    SecretsApi       repository tokens by reference    engine.aws.secrets, engine.testing
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from engine.events import NewEvent, RecordedEvent
from engine.events.alarms import AlarmDatapoint, AlarmMetric
from engine.events.desired import EventSources, SourceKind

if TYPE_CHECKING:  # only for annotations: ports must not load the definitions (botocore)
    from engine.definitions.commit import CommitState
    from engine.observe import KnownPrefixes, Observation

# Expected-version sentinels for EventStore.append.
ANY_VERSION = -2  # append whatever the stream's version is
NO_STREAM = 0  # the stream must not exist yet (versions start at 1)


class Clock(Protocol):
    """Time as the engine, the saga runner and the AWS adapters see it: ``now`` for durable
    timers (stored in events), ``monotonic`` for deadlines within one process, and the two
    sleeps. One clock for all of them, so a test clock (``engine.testing``) that jumps
    forward moves every timer at once and the tests never wait in real time."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going back (for in-process deadlines)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` (yielding once even for 0 or less)."""
        ...

    async def sleep_until(self, deadline: datetime) -> None:
        """Return at ``deadline`` (at once if it has passed)."""
        ...


class EventStore(Protocol):
    """An append-only log of streams with optimistic concurrency.

    - ``append`` writes ``events`` to ``stream`` if its current version equals
      ``expected_version`` (``ANY_VERSION`` skips the check, ``NO_STREAM`` means empty) and
      raises ``ConcurrencyConflict`` otherwise. An event whose ``event_id`` is already stored is
      a no-op and its stored record is returned, so a retried append is idempotent.
    - Positions are global, contiguous and start at 1; stream versions start at 1.
    """

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int = ANY_VERSION
    ) -> list[RecordedEvent]:
        """Append ``events`` to ``stream`` atomically; their records, in order (see above)."""
        ...

    async def read_stream(self, stream: str, from_version: int = 1) -> list[RecordedEvent]:
        """The events of ``stream`` from ``from_version`` on, in version order."""
        ...

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        """Every stream's events from ``from_position`` on, in position order, at most
        ``limit`` of them."""
        ...

    def follow(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        """Every event from ``from_position`` on, then new ones as they are appended."""
        ...

    async def last_position(self) -> int:
        """The position of the last event in the log (0 when it is empty)."""
        ...

    async def stream_version(self, stream: str) -> int:
        """The version of the last event of ``stream`` (``NO_STREAM`` when it has none)."""
        ...

    async def aclose(self) -> None:
        """Finish the appends already queued, then release the store."""
        ...


RowKey = tuple[str, str]  # (view, key)
SnapshotRows = dict[str, dict[str, tuple[int, bytes]]]  # view -> key -> (row position, payload)
SnapshotListing = dict[str, dict[str, int]]  # view -> key -> row position (no payloads)


@dataclass(frozen=True, slots=True)
class ViewSnapshot:
    """A snapshot of a projection's views at ``position`` (a checkpoint), saved with it.

    Stored as a delta: ``rows`` holds the rows changed since the previous snapshot (every
    row for the first one), each as (the row's own position, payload), None for a row
    deleted. The views at a snapshot are every row's latest version at or before it. The
    payload is opaque to the store; ``format`` names how it is encoded, so a reader that
    does not know it never uses it. ``drop`` lists older snapshots to forget (never the
    latest): the row versions only they needed go, and every snapshot kept reads the same.
    ``clear`` forgets every stored snapshot first (they are of another format, or belong to
    views being rebuilt)."""

    position: int
    format: str
    rows: Mapping[RowKey, tuple[int, bytes] | None]
    drop: Sequence[int] = ()
    clear: bool = False


class ViewStore(Protocol):
    """Where projection rows and their checkpoint live: ``save_views`` writes changed rows
    (None deletes one) and the checkpoint in one transaction, ``load_views`` reads both from
    one snapshot. Rows are keyed by ``(view, key)`` and stored as JSON text. Snapshots of the
    views at some checkpoints (time travel) are written in the same transaction."""

    async def load_views(self, projection: str) -> tuple[int, dict[tuple[str, str], str]]:
        """The checkpoint of ``projection`` (0 when never saved) and its rows."""
        ...

    async def load_rows(
        self, projection: str, view: str, keys: Collection[str] | None = None
    ) -> tuple[int, dict[str, str]]:
        """The checkpoint of ``projection`` and the rows of its ``view`` by key: every row, or
        only those of ``keys`` (a reader that needs a few rows of a large view)."""
        ...

    async def save_views(
        self,
        projection: str,
        checkpoint: int,
        rows: Mapping[tuple[str, str], str | None],
        *,
        reset: bool = False,
        snapshot: ViewSnapshot | None = None,
    ) -> None:
        """Write ``rows`` and ``checkpoint`` together; ``reset`` first drops every row (and
        every snapshot). ``snapshot``, at ``checkpoint``, is written in the same transaction."""
        ...

    async def snapshots(self, projection: str) -> list[tuple[int, str]]:
        """The stored snapshots of ``projection``: (position, format), oldest first."""
        ...

    async def load_snapshot(
        self, projection: str, position: int, format: str
    ) -> tuple[int, SnapshotRows] | None:
        """The last snapshot in ``format`` at or before ``position``: its position and every
        row at it, (row position, payload) by view and key, read in one snapshot of the
        database; None when there is none."""
        ...

    async def list_snapshot(
        self, projection: str, position: int, format: str
    ) -> tuple[int, SnapshotListing] | None:
        """``load_snapshot`` without the payloads: the last snapshot in ``format`` at or before
        ``position`` and every row at it, its position by view and key (what counting and
        ordering the rows needs, a small part of the bytes); None when there is none."""
        ...

    async def load_snapshot_rows(
        self, projection: str, at: int, keys: Collection[RowKey]
    ) -> dict[RowKey, tuple[int, bytes]] | None:
        """The rows ``keys`` as the stored snapshot at ``at`` has them, (row position,
        payload) each; a key it has no row for is left out. None when that snapshot is no
        longer stored (the runner dropped it since ``list_snapshot``): the caller starts
        again."""
        ...


class ProjectionStore(EventStore, ViewStore, Protocol):
    """An event store that also keeps the views: what the engine runs on (both glam stores
    are one)."""


class RepoSource(Protocol):
    """One branch of one repository, as the engine reads it.

    The adapter over a bare Git mirror is ``engine.git.repo_source.GitRepoSource``; an
    in-memory one is ``engine.testing.MemoryRepo``. Every method raises only ``GlamError``s;
    a remote that cannot be reached is an ``Unavailable`` observation, not an error.
    """

    @property
    def branch(self) -> str | None:
        """The branch watched; None until the first ``observe`` learns the default branch."""
        ...

    async def observe(self, last_sha: str | None) -> Observation:
        """Fetch, then the head and the first-parent commits after ``last_sha`` (oldest first)
        with their Lambda file changes; ``Unavailable`` when the branch cannot be read."""
        ...

    async def commit_state(
        self,
        sha: str,
        *,
        base: str | None,
        select: Callable[[str], bool] | None = None,
        known: KnownPrefixes | None = None,
        first: tuple[str, ...] = (),
    ) -> CommitState:
        """The desired states of commit ``sha``, changes measured from ``base`` (None: every
        prefix counts as changed); ``select`` picks the unchanged prefixes to render too.
        ``known``: ``base``'s prefixes as its plan recorded them, so that only what changed
        since is listed (a source may ignore it and list the whole tree). ``first``: prefixes
        to render before the others (those the last plan had no render time for)."""
        ...

    async def has_commit(self, sha: str) -> bool:
        """Whether the source still holds commit ``sha`` (a rewrite may have dropped it)."""
        ...

    async def aclose(self) -> None:
        """Release what the source holds open (a mirror's pack files); it may be used again."""
        ...


# --------------------------------------------------------------------------------------------
# AWS. Values are plain frozen dataclasses so the core never sees botocore shapes. The
# aiobotocore adapters (engine/aws/) and the in-memory fakes (engine.testing) implement these.
# Every method raises only AwsError subclasses (engine.errors). Reads of something that does not
# exist return None rather than raising, because "is it there?" is the question recovery asks.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """GetFunction / CreateFunction / Update* answer for one qualifier ($LATEST or a version)."""

    name: str
    arn: str
    version: str  # "$LATEST" or a published number
    state: str  # Pending | Active | Inactive | Failed
    last_update_status: str  # InProgress | Successful | Failed
    code_sha256: str
    revision_id: str
    description: str = ""
    state_reason: str = ""
    configuration: Mapping[str, Any] = field(default_factory=dict)  # the raw Configuration
    # The function's tags (GetFunction answers them with any qualifier); None when the answer
    # did not carry them (CreateFunction, Update*).
    tags: Mapping[str, str] | None = None
    image_uri: str = ""  # Code.ImageUri of a container image function, as GetFunction has it


@dataclass(frozen=True, slots=True)
class InvokeAnswer:
    """What a synchronous Invoke answered: ``function_error`` (Handled/Unhandled) when the
    function raised, and the body it returned."""

    payload: bytes
    function_error: str | None = None


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A published version, as ListVersionsByFunction / PublishVersion describe it."""

    version: str
    code_sha256: str
    description: str
    revision_id: str = ""


@dataclass(frozen=True, slots=True)
class AliasInfo:
    """An alias: the version it points at and the weights of its routing."""

    name: str
    function_version: str
    routing: Mapping[str, float]  # AdditionalVersionWeights; empty when no routing
    revision_id: str = ""
    arn: str = ""


class LambdaApi(Protocol):
    """The Lambda control plane, one account and region."""

    async def get_function(self, name: str, qualifier: str | None = None) -> FunctionInfo | None:
        """GetFunction of ``qualifier`` ($LATEST when None); None when there is no such
        function or version. Paced on the poll budget."""
        ...

    async def create_function(self, request: Mapping[str, Any]) -> FunctionInfo:
        """CreateFunction with the rendered definition as given."""
        ...

    async def update_function_configuration(
        self, name: str, configuration: Mapping[str, Any], revision_id: str | None = None
    ) -> FunctionInfo:
        """UpdateFunctionConfiguration, guarded by ``revision_id`` when given."""
        ...

    async def update_function_code(
        self, name: str, code: Mapping[str, Any], revision_id: str | None = None
    ) -> FunctionInfo:
        """UpdateFunctionCode, guarded by ``revision_id`` when given."""
        ...

    async def publish_version(
        self,
        name: str,
        *,
        code_sha256: str | None,
        revision_id: str | None,
        description: str | None = None,
    ) -> VersionInfo:
        """PublishVersion of $LATEST, guarded by its CodeSha256 and RevisionId. Without a
        ``description`` the version keeps the function's own Description."""
        ...

    async def list_versions(self, name: str) -> list[VersionInfo]:
        """Every published version, oldest first ($LATEST excluded); [] when there is no
        such function."""
        ...

    async def delete_version(self, name: str, version: str) -> None:
        """Delete one published version; one already gone is not an error."""
        ...

    async def delete_function(self, name: str) -> None:
        """Delete the function and all its versions; one already gone is not an error."""
        ...

    async def get_alias(self, name: str, alias: str) -> AliasInfo | None:
        """GetAlias; None when there is no such alias."""
        ...

    async def delete_alias(self, name: str, alias: str) -> None:
        """DeleteAlias; one already gone is not an error."""
        ...

    async def tag_function(self, arn: str, tags: Mapping[str, str]) -> None:
        """TagResource on the function (``arn`` unqualified): set ``tags``."""
        ...

    async def untag_function(self, arn: str, keys: Sequence[str]) -> None:
        """UntagResource on the function: remove the tags ``keys``."""
        ...

    async def code_signing_config(self, name: str) -> str | None:
        """GetFunctionCodeSigningConfig: the ARN of the function's code-signing
        configuration, or None when it has none."""
        ...

    async def put_code_signing_config(self, name: str, arn: str) -> None:
        """PutFunctionCodeSigningConfig: sign the function's code with configuration ``arn``."""
        ...

    async def delete_code_signing_config(self, name: str) -> None:
        """DeleteFunctionCodeSigningConfig; none to delete is not an error."""
        ...

    async def invoke(self, function: str, payload: Mapping[str, Any]) -> InvokeAnswer:
        """Invoke (RequestResponse) ``function`` (a name or ARN, qualified or not) with
        ``payload`` as JSON: the data plane, paced on the poll budget. A 5xx or a lost answer
        is ambiguous, never repeated here."""
        ...

    async def create_alias(
        self, name: str, alias: str, version: str, routing: Mapping[str, float] | None = None
    ) -> AliasInfo:
        """CreateAlias on ``version``, with ``routing`` weights if any."""
        ...

    async def update_alias(
        self,
        name: str,
        alias: str,
        version: str,
        routing: Mapping[str, float] | None,
        revision_id: str | None = None,
    ) -> AliasInfo:
        """UpdateAlias to ``version`` with ``routing`` (None or empty clears it), guarded
        by ``revision_id`` when given."""
        ...


class CodeObjects(Protocol):
    """Where a function's code may live: S3 objects, read only."""

    async def code_sha256(self, bucket: str, key: str, version: str | None = None) -> str | None:
        """What Lambda would report as CodeSha256 for the object (the base64 SHA-256 of its
        bytes), read as a stream and bounded; None when there is no such object."""
        ...


class AlarmsApi(Protocol):
    """CloudWatch alarms, read only."""

    async def alarm_states(self, names: Sequence[str]) -> dict[str, str]:
        """State by alarm name (OK, ALARM, INSUFFICIENT_DATA); a missing alarm is absent."""
        ...


# A metric alarm's metric and the datapoints of it in a window (AlarmReadingsApi).
AlarmReading = tuple[AlarmMetric, tuple[AlarmDatapoint, ...]]


@runtime_checkable
class AlarmReadingsApi(Protocol):
    """What metric alarms evaluate, read only: an AlarmsApi may also offer it (the AWS
    adapter does). The runner records it beside the alarm states so that a deployment can
    be replayed against another threshold; nothing the saga decides depends on it."""

    async def alarm_readings(
        self, names: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, AlarmReading]:
        """By alarm name, each metric alarm's metric and its datapoints between ``start``
        and ``end``; composite and missing alarms are absent."""
        ...


@runtime_checkable
class InvocationsApi(Protocol):
    """What a traffic gate reads (engine.saga.gate): an AlarmsApi may also offer it (the AWS
    adapter does, from CloudWatch's ``AWS/Lambda`` metrics)."""

    async def invocations(
        self, name: str, alias: str, version: str, since: datetime, until: datetime
    ) -> int:
        """The invocations ``version`` of function ``name`` served through ``alias`` between
        ``since`` and ``until``."""
        ...


# What reconciling did to one source; "unchanged" is not recorded as an event.
SourceVerdict = Literal["attached", "updated", "detached", "adopted", "unchanged"]


@dataclass(frozen=True, slots=True)
class SourceChange:
    """One change made (or found already made) while reconciling an event source."""

    kind: SourceKind  # as EventSourceChanged records it
    change: SourceVerdict
    source_id: str  # mapping UUID, target group ARN, or api/route
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceDifference:
    """One thing a reconcile of the desired sources would change, found by reading AWS (drift):
    ``path`` names it (``mappings[<source>]``, ``mappings[<source>].BatchSize``,
    ``permissions[<statement id>]``, ``elb[<target group>].target``,
    ``apigateway[<api>/<route>].integration`` or ``.target``), ``desired`` and ``live`` are
    what glam wires and what AWS has (None: absent)."""

    kind: SourceKind
    source_id: str
    path: str
    desired: Any
    live: Any


class SourcesApi(Protocol):
    """Event sources wired to a function's alias: pull mappings, ALB target groups, API
    Gateway v2 routes. The two writes are idempotent: running them again changes nothing."""

    async def reconcile(
        self,
        function_name: str,
        alias_arn: str,
        desired: EventSources,
        previous: EventSources | None = None,
    ) -> list[SourceChange]:
        """Make AWS match ``desired`` for this alias: create, update, adopt; detach what
        ``previous`` (the last deployed sources) had and ``desired`` no longer has."""
        ...

    async def detach_all(
        self, function_name: str, alias_arn: str, previous: EventSources
    ) -> list[SourceChange]:
        """Remove every source glam wires to this function (before deleting it)."""
        ...

    async def inspect(
        self, function_name: str, alias_arn: str, desired: EventSources
    ) -> list[SourceDifference]:
        """Read only: what ``reconcile(desired, previous=desired)`` would change, each as a
        difference (an empty list when AWS already matches)."""
        ...


class SecretsApi(Protocol):
    """Secrets Manager and SSM Parameter Store, read only, with the engine's own credentials:
    where a repository's token is kept (``engine.tokens``). Answers are secrets: an
    implementation never logs them, and its errors never carry them."""

    async def secret_string(self, arn: str, region: str) -> str:
        """GetSecretValue of the secret ``arn`` (its current version): the SecretString."""
        ...

    async def parameter_value(self, arn: str, region: str) -> str:
        """GetParameter of the parameter ``arn`` with decryption: its value."""
        ...
