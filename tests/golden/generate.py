"""Write the golden event log and the views it must fold into.

    uv run --frozen python -m tests.golden.generate NAME    # writes log-NAME.jsonl, views-NAME.json

Run it only when adding a NEW golden log (name it after the glam version that wrote it, and
what it covers); it refuses to overwrite one. Never regenerate an existing one: its point is
that logs written by earlier versions keep replaying to the same views. The log is a JSONL
export of the ``events`` rows, hashes included.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.events import Event, Metadata, NewEvent
from engine.events.alarms import AlarmDatapoint, AlarmMetric
from engine.events.desired import (
    DeploymentSettings,
    DesiredFunction,
    EventSources,
    TrafficGate,
    TrafficShifting,
)
from engine.events.function import (
    AlarmObserved,
    BakeExtended,
    DeploymentFinished,
    DeploymentHeld,
    DeploymentRequested,
    DeploymentResumed,
    DriftDetected,
    DriftResolved,
    EventSourceChanged,
    FunctionDeleted,
    FunctionOwner,
    GateVerdict,
    HookAnswered,
    OperatorRequested,
    Release,
    ReleaseMember,
    ReleaseMemberFailed,
    ReleaseStepReached,
    RollbackStarted,
    SettingsRecorded,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerStarted,
    TrafficGateChecked,
    TrafficShifted,
)
from engine.events.operator import OperatorCommandIssued
from engine.events.registry import REPOSITORIES_STREAM, RepositoryAdded, RepositoryRemoved
from engine.events.repo import (
    CommitObserved,
    CommitPlanned,
    DefinitionRejected,
    DefinitionWarning,
    DeletesHeld,
    FileChange,
    HeldRemoval,
    HistoryRewritten,
    PlannedAction,
    PrefixListing,
    SourceUnavailable,
)
from engine.store.records import GENESIS_HASH, StoredRow, format_time, make_row, to_recorded
from projections.views import fold

HERE = Path(__file__).parent

REPO = "repo:main"
ORDERS = "fn:111111111111:eu-west-1:orders"
BILLING = "fn:111111111111:eu-west-1:billing"
C1, C2, C3, C4 = ("1" * 40, "2" * 40, "3" * 40, "4" * 40)
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def desired(name: str, memory: int) -> DesiredFunction:
    return DesiredFunction(
        prefix=f"apps/{name}/{name}",
        function_name=name,
        definition={
            "FunctionName": name,
            "Runtime": "python3.12",
            "Handler": "app.handler",
            "Role": "arn:aws:iam::111111111111:role/lambda",
            "MemorySize": memory,
            "Code": {"S3Bucket": "artifacts", "S3Key": f"{name}.zip"},
        },
        event_sources=EventSources(
            mappings=(
                {
                    "EventSourceArn": "arn:aws:sqs:eu-west-1:111111111111:q",
                    "FunctionName": f"{name}:live",
                },
            )
        ),
        settings=DeploymentSettings(
            alias="live",
            region="eu-west-1",
            account="111111111111",
            traffic=TrafficShifting(type="CANARY", percent=20, wait_interval=60),
            alarms=(f"{name}-errors",),
        ),
        content_hash=f"sha256:{name}{memory}",
    )


def scenario() -> list[tuple[str, Event, Metadata]]:
    def m(i: str, **kw: str) -> Metadata:
        return Metadata(event_id=i, **kw)

    d1, d2, d3, d4 = "dep-1", "dep-2", "dep-3", "dep-4"
    bake = START + timedelta(minutes=5)
    return [
        (
            REPO,
            CommitObserved(
                sha=C1,
                parents=(),
                author="dev <dev@example.com>",
                committed_at="2025-03-01T09:00:00+00:00",
                summary="add orders",
                changes=(FileChange(path="apps/orders/orders_lambdadef.json", change="added"),),
            ),
            m("g1", commit=C1),
        ),
        (
            REPO,
            CommitPlanned(
                sha=C1,
                actions=(
                    PlannedAction(
                        prefix="apps/orders/orders",
                        function=ORDERS,
                        action="create",
                        files=("apps/orders/orders_lambdadef.json",),
                        reason="new function",
                        content_hash="sha256:orders128",
                    ),
                ),
            ),
            m("g2", commit=C1),
        ),
        (
            ORDERS,
            DeploymentRequested(
                deployment_id=d1, commit=C1, action="create", desired=desired("orders", 128)
            ),
            m("g3", commit=C1, deployment_id=d1),
        ),
        (
            ORDERS,
            StepStarted(
                deployment_id=d1, step="create_function", request={"FunctionName": "orders"}
            ),
            m("g4", deployment_id=d1),
        ),
        (
            ORDERS,
            StepSucceeded(deployment_id=d1, step="create_function", result={"State": "Pending"}),
            m("g5", deployment_id=d1),
        ),
        (ORDERS, StepStarted(deployment_id=d1, step="publish_version"), m("g6")),
        (
            ORDERS,
            StepSucceeded(deployment_id=d1, step="publish_version", result={"Version": "1"}),
            m("g7"),
        ),
        (
            ORDERS,
            EventSourceChanged(
                deployment_id=d1, kind="mapping", change="attached", source_id="uuid-1"
            ),
            m("g8"),
        ),
        (
            ORDERS,
            DeploymentFinished(deployment_id=d1, outcome="succeeded", stable_version="1"),
            m("g9", deployment_id=d1),
        ),
        (
            REPO,
            CommitObserved(
                sha=C2,
                parents=(C1,),
                author="dev <dev@example.com>",
                committed_at="2025-03-01T10:00:00+00:00",
                summary="orders 256MB",
                changes=(
                    FileChange(path="apps/orders/orders_lambdadef.json", change="modified"),
                    FileChange(path="apps/billing/billing_lambdadef.json", change="added"),
                ),
            ),
            m("g10"),
        ),
        (
            REPO,
            DefinitionRejected(
                sha=C2,
                prefix="apps/billing/billing",
                file="apps/billing/billing_lambdadef.json",
                line=3,
                column=5,
                reason="Runtime 'python2.7' is not a valid value",
            ),
            m("g11"),
        ),
        (
            REPO,
            CommitPlanned(
                sha=C2,
                actions=(
                    PlannedAction(
                        prefix="apps/orders/orders",
                        function=ORDERS,
                        action="new_version",
                        files=("apps/orders/orders_lambdadef.json",),
                        reason="definition changed",
                    ),
                ),
            ),
            m("g12"),
        ),
        (
            ORDERS,
            DeploymentRequested(
                deployment_id=d2, commit=C2, action="update", desired=desired("orders", 256)
            ),
            m("g13"),
        ),
        (ORDERS, StepStarted(deployment_id=d2, step="update_function_configuration"), m("g14")),
        (
            ORDERS,
            StepFailed(
                deployment_id=d2,
                step="update_function_configuration",
                error_code="ThrottlingException",
                message="Rate exceeded",
                retryable=True,
            ),
            m("g15"),
        ),
        (
            ORDERS,
            StepStarted(deployment_id=d2, step="update_function_configuration", attempt=2),
            m("g16"),
        ),
        (ORDERS, StepSucceeded(deployment_id=d2, step="update_function_configuration"), m("g17")),
        (
            ORDERS,
            TrafficShifted(
                deployment_id=d2, alias="live", stable_version="1", new_version="2", weight=0.2
            ),
            m("g18"),
        ),
        (ORDERS, TimerStarted(deployment_id=d2, purpose="bake", until=bake), m("g19")),
        (ORDERS, AlarmObserved(deployment_id=d2, alarm="orders-errors", state="ALARM"), m("g20")),
        (
            ORDERS,
            RollbackStarted(deployment_id=d2, reason="alarm orders-errors is in ALARM"),
            m("g21"),
        ),
        (
            ORDERS,
            TrafficShifted(
                deployment_id=d2, alias="live", stable_version="1", new_version="2", weight=0.0
            ),
            m("g22"),
        ),
        (
            ORDERS,
            DeploymentFinished(
                deployment_id=d2,
                outcome="rolled_back",
                reason="alarm orders-errors is in ALARM",
                stable_version="1",
            ),
            m("g23"),
        ),
        (
            REPO,
            CommitObserved(
                sha=C3,
                parents=(C2,),
                author="dev <dev@example.com>",
                committed_at="2025-03-01T11:00:00+00:00",
                summary="canary 50",
                changes=(
                    FileChange(path="apps/orders/orders_lambdadepdef.json", change="modified"),
                ),
            ),
            m("g24"),
        ),
        (
            ORDERS,
            SettingsRecorded(
                commit=C3,
                settings=DeploymentSettings(alias="live", traffic=TrafficShifting(percent=50)),
            ),
            m("g25"),
        ),
        (
            BILLING,
            DeploymentRequested(
                deployment_id=d3, commit=C3, action="create", desired=desired("billing", 128)
            ),
            m("g26"),
        ),
        (
            BILLING,
            DeploymentFinished(
                deployment_id=d3, outcome="failed", reason="function never became Active"
            ),
            m("g27"),
        ),
        (
            REPO,
            SourceUnavailable(
                url="https://git.example.com/team/lambdas.git",
                branch="main",
                reason="connection refused",
            ),
            m("g28"),
        ),
        (REPO, HistoryRewritten(previous=C3, head=C4), m("g29")),
        (
            REPO,
            CommitObserved(
                sha=C4,
                parents=(C2,),
                author="ops <ops@example.com>",
                committed_at="2025-03-01T12:00:00+00:00",
                summary="remove all",
                changes=(FileChange(path="apps/orders/orders_lambdadef.json", change="deleted"),),
            ),
            m("g30"),
        ),
        (
            REPO,
            DeletesHeld(sha=C4, prefixes=("apps/orders/orders",), share=1.0, limit=0.5),
            m("g31"),
        ),
        (
            "ops",
            OperatorCommandIssued(
                command="allow_deletes", target=C4, reason="decommissioning orders"
            ),
            m("g32", actor="oncall@example.com"),
        ),
        (
            ORDERS,
            DeploymentRequested(deployment_id=d4, commit=C4, action="delete", desired=None),
            m("g33"),
        ),
        (
            ORDERS,
            EventSourceChanged(
                deployment_id=d4, kind="mapping", change="detached", source_id="uuid-1"
            ),
            m("g34"),
        ),
        (ORDERS, FunctionDeleted(deployment_id=d4), m("g35")),
        (ORDERS, DeploymentFinished(deployment_id=d4, outcome="succeeded"), m("g36")),
    ]


def operator_scenario() -> list[tuple[str, Event, Metadata]]:
    """Operator commands handed over (0.1): an abort applied to a canary in flight, which rolls
    it back, and a promote that arrived after that deployment had finished, ignored."""

    def m(i: str, **kw: str) -> Metadata:
        return Metadata(event_id=i, **kw)

    d1, d2 = "dep-1", "dep-2"
    abort, late = "op-1", "op-2"
    return [
        (
            ORDERS,
            DeploymentRequested(
                deployment_id=d1, commit=C1, action="create", desired=desired("orders", 128)
            ),
            m("o1", commit=C1, deployment_id=d1),
        ),
        (
            ORDERS,
            DeploymentFinished(deployment_id=d1, outcome="succeeded", stable_version="1"),
            m("o2", deployment_id=d1),
        ),
        (
            ORDERS,
            DeploymentRequested(
                deployment_id=d2, commit=C2, action="update", desired=desired("orders", 256)
            ),
            m("o3", commit=C2, deployment_id=d2),
        ),
        (
            ORDERS,
            TrafficShifted(
                deployment_id=d2, alias="live", stable_version="1", new_version="2", weight=0.2
            ),
            m("o4", deployment_id=d2),
        ),
        (
            "ops",
            OperatorCommandIssued(
                command="abort", target=ORDERS, reason="p99 doubled", deployment_id=d2
            ),
            m(abort, actor="alice"),
        ),
        (
            ORDERS,
            OperatorRequested(
                command="abort",
                target=ORDERS,
                actor="alice",
                reason="p99 doubled",
                deployment_id=d2,
            ),
            m("o5", actor="alice", deployment_id=d2, causation_id=abort),
        ),
        (
            ORDERS,
            RollbackStarted(deployment_id=d2, reason="aborted by alice: p99 doubled"),
            m("o6", deployment_id=d2),
        ),
        (
            ORDERS,
            TrafficShifted(
                deployment_id=d2, alias="live", stable_version="1", new_version="2", weight=0.0
            ),
            m("o7", deployment_id=d2),
        ),
        (
            ORDERS,
            DeploymentFinished(
                deployment_id=d2,
                outcome="rolled_back",
                reason="aborted by alice: p99 doubled",
                stable_version="1",
            ),
            m("o8", deployment_id=d2),
        ),
        (
            "ops",
            OperatorCommandIssued(
                command="promote", target=ORDERS, reason="looks good", deployment_id=d2
            ),
            m(late, actor="bob"),
        ),
        (
            ORDERS,
            OperatorRequested(
                command="promote",
                target=ORDERS,
                actor="bob",
                reason="looks good",
                deployment_id=d2,
                outcome="ignored",
                note="deployment dep-2 already finished",
            ),
            m("o9", actor="bob", causation_id=late),
        ),
    ]


def warnings_scenario() -> list[tuple[str, Event, Metadata]]:
    """A plan that carries warnings (0.1): Gitmoxi's ECS keys ignored in a depdef, and a
    function rejected for passing a render limit beside a function that deploys."""

    def m(i: str, **kw: str) -> Metadata:
        return Metadata(event_id=i, **kw)

    d1 = "dep-1"
    depdef = "apps/orders/orders_lambdadepdef.json"
    return [
        (
            REPO,
            CommitObserved(
                sha=C1,
                parents=(),
                author="Dev <dev@example.com>",
                committed_at="2025-03-01T09:00:00+00:00",
                summary="orders, with its ECS leftovers; billing loops",
                changes=(
                    FileChange(path="apps/orders/orders_lambdadef.json", change="added"),
                    FileChange(path=depdef, change="added"),
                    FileChange(path="apps/billing/billing_lambdadef.json", change="added"),
                ),
            ),
            m("w1", commit=C1),
        ),
        (
            ORDERS,
            DeploymentRequested(
                deployment_id=d1, commit=C1, action="create", desired=desired("orders", 128)
            ),
            m("w2", commit=C1, deployment_id=d1),
        ),
        (
            REPO,
            CommitPlanned(
                sha=C1,
                actions=(
                    PlannedAction(
                        prefix="apps/billing/billing",
                        function="",
                        action="nothing",
                        files=("apps/billing/billing_lambdadef.json",),
                        reason="invalid: rendering took longer than the time limit of 2 s",
                    ),
                    PlannedAction(
                        prefix="apps/orders/orders",
                        function=ORDERS,
                        action="create",
                        files=("apps/orders/orders_lambdadef.json", depdef),
                        reason="new function",
                        content_hash=desired("orders", 128).content_hash,
                    ),
                ),
                warnings=(
                    DefinitionWarning(
                        prefix="apps/orders/orders",
                        file=depdef,
                        message="key 'stabilityCheck' ignored: an ECS deployment setting, "
                        "not used for Lambda",
                    ),
                    DefinitionWarning(
                        prefix="apps/orders/orders",
                        file=depdef,
                        message="key 'webhooks' ignored: a Gitmoxi notification setting glam "
                        "does not send, not used for Lambda",
                    ),
                ),
            ),
            m("w3", commit=C1),
        ),
        (
            REPO,
            DefinitionRejected(
                sha=C1,
                prefix="apps/billing/billing",
                file="apps/billing/billing_lambdadef.json",
                reason="rendering took longer than the time limit of 2 s per file — make the "
                "template do less work",
            ),
            m("w4", commit=C1),
        ),
        (
            ORDERS,
            DeploymentFinished(deployment_id=d1, outcome="succeeded", stable_version="1"),
            m("w5", deployment_id=d1),
        ),
    ]


def org_scenario() -> list[tuple[str, Event, Metadata]]:
    """One engine for many branches (0.1-org): deployment requests carrying their owner (a
    branch and prefix), a second branch's claim on the same function refused, an alias change
    whose old alias's removal is held with the reason, then released and requested
    (``remove_alias``), and a region change holding the old identity's removal."""

    def m(i: str, **kw: str) -> Metadata:
        return Metadata(event_id=i, **kw)

    main, dev = (
        "repo:https://git.example.com/team/lambdas#main",
        ("repo:https://git.example.com/team/lambdas#dev"),
    )
    owner = FunctionOwner(
        repository="https://git.example.com/team/lambdas",
        branch="main",
        prefix="apps/orders/orders",
    )
    moved = "fn:111111111111:us-east-1:orders"
    prod = desired("orders", 128)
    live = prod.model_copy(
        update={
            "settings": prod.settings.model_copy(update={"alias": "LIVE"}),
            "content_hash": "sha256:orders128-live",
        }
    )
    east = live.model_copy(
        update={
            "settings": live.settings.model_copy(update={"region": "us-east-1"}),
            "content_hash": "sha256:orders128-east",
        }
    )
    return [
        (
            ORDERS,
            DeploymentRequested(
                deployment_id="dep-1", commit=C1, action="create", desired=prod, owner=owner
            ),
            m("r1", commit=C1, deployment_id="dep-1"),
        ),
        (
            main,
            CommitPlanned(
                sha=C1,
                actions=(
                    PlannedAction(
                        prefix="apps/orders/orders",
                        function=ORDERS,
                        action="create",
                        files=("apps/orders/orders_lambdadef.json",),
                        reason="new function",
                        content_hash=prod.content_hash,
                    ),
                ),
            ),
            m("r2", commit=C1),
        ),
        (
            ORDERS,
            DeploymentFinished(deployment_id="dep-1", outcome="succeeded", stable_version="1"),
            m("r3", deployment_id="dep-1"),
        ),
        (
            dev,
            CommitPlanned(
                sha=C2,
                actions=(
                    PlannedAction(
                        prefix="copy/orders/orders",
                        function="",
                        action="nothing",
                        files=("copy/orders/orders_lambdadef.json",),
                        reason="invalid: function orders is owned by another branch",
                    ),
                ),
            ),
            m("r4", commit=C2),
        ),
        (
            dev,
            DefinitionRejected(
                sha=C2,
                prefix="copy/orders/orders",
                file="copy/orders/orders_lambdadef.json",
                reason=f"function orders ({ORDERS}) is owned by "
                "https://git.example.com/team/lambdas branch main (apps/orders/orders)",
            ),
            m("r5", commit=C2),
        ),
        (
            ORDERS,
            DeploymentRequested(
                deployment_id="dep-2", commit=C3, action="update", desired=live, owner=owner
            ),
            m("r6", commit=C3, deployment_id="dep-2"),
        ),
        (
            main,
            CommitPlanned(
                sha=C3,
                actions=(
                    PlannedAction(
                        prefix="apps/orders/orders",
                        function=ORDERS,
                        action="new_version",
                        files=("apps/orders/orders_lambdadepdef.json",),
                        reason="alias changed",
                        content_hash=live.content_hash,
                    ),
                ),
            ),
            m("r7", commit=C3),
        ),
        (
            main,
            DeletesHeld(
                sha=C3,
                prefixes=("apps/orders/orders",),
                share=0.0,
                limit=0.5,
                removals=(
                    HeldRemoval(
                        function=ORDERS,
                        prefix="apps/orders/orders",
                        reason="alias changed to LIVE once the deployment on the new alias "
                        "has succeeded",
                        alias="live",
                    ),
                ),
            ),
            m("r8", commit=C3),
        ),
        (
            ORDERS,
            DeploymentFinished(deployment_id="dep-2", outcome="succeeded", stable_version="2"),
            m("r9", deployment_id="dep-2"),
        ),
        (
            "ops",
            OperatorCommandIssued(command="allow_deletes", target=C3, reason="LIVE serves"),
            m("r10", actor="oncall@example.com"),
        ),
        (
            ORDERS,
            DeploymentRequested(
                deployment_id="dep-3",
                commit=C3,
                action="remove_alias",
                desired=None,
                alias="live",
                owner=owner,
            ),
            m("r11", commit=C3, deployment_id="dep-3"),
        ),
        (
            main,
            CommitPlanned(
                sha=C3,
                actions=(
                    PlannedAction(
                        prefix="apps/orders/orders",
                        function=ORDERS,
                        action="remove_alias",
                        files=(),
                        reason="alias changed: alias live removed",
                    ),
                ),
            ),
            m("r12", commit=C3),
        ),
        (
            main,
            OperatorRequested(
                command="allow_deletes", target=C3, actor="oncall@example.com", reason="LIVE serves"
            ),
            m("r13", actor="oncall@example.com", causation_id="r10", commit=C3),
        ),
        (
            ORDERS,
            DeploymentFinished(deployment_id="dep-3", outcome="succeeded", stable_version="2"),
            m("r14", deployment_id="dep-3"),
        ),
        (
            moved,
            DeploymentRequested(
                deployment_id="dep-4", commit=C4, action="create", desired=east, owner=owner
            ),
            m("r15", commit=C4, deployment_id="dep-4"),
        ),
        (
            main,
            CommitPlanned(
                sha=C4,
                actions=(
                    PlannedAction(
                        prefix="apps/orders/orders",
                        function=moved,
                        action="create",
                        files=("apps/orders/orders_lambdadepdef.json",),
                        reason="new function",
                        content_hash=east.content_hash,
                    ),
                    PlannedAction(
                        prefix="apps/orders/orders",
                        function=ORDERS,
                        action="nothing",
                        files=(),
                        reason="removal held: identity changed (now "
                        f"{moved}); `glam allow-deletes` removes it",
                    ),
                ),
            ),
            m("r16", commit=C4),
        ),
        (
            main,
            DeletesHeld(
                sha=C4,
                prefixes=("apps/orders/orders",),
                share=0.0,
                limit=0.5,
                removals=(
                    HeldRemoval(
                        function=ORDERS,
                        prefix="apps/orders/orders",
                        reason=f"identity changed (now {moved})",
                    ),
                ),
            ),
            m("r17", commit=C4),
        ),
    ]


def repositories_scenario() -> list[tuple[str, Event, Metadata]]:
    """Repositories added through the API and removed (0.1): one added with two branches and
    a token reference, added again with one branch (it replaces the first), a second added
    for its default branch, then removed."""
    url = "https://github.com/acme/lambdas.git"
    other = "https://gitlab.example.com/team/functions.git"
    token = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:glam/github-token"
    return [
        (
            REPOSITORIES_STREAM,
            RepositoryAdded(url=url, branches=("main", "dev"), token=token),
            Metadata(event_id="r-1", actor="ci"),
        ),
        (
            REPOSITORIES_STREAM,
            RepositoryAdded(url=url, branches=("main",), token=token),
            Metadata(event_id="r-2", actor="ci"),
        ),
        (
            REPOSITORIES_STREAM,
            RepositoryAdded(url=other, token="GITLAB_TOKEN"),
            Metadata(event_id="r-3", actor="api"),
        ),
        (
            REPOSITORIES_STREAM,
            RepositoryRemoved(url=other),
            Metadata(event_id="r-4", actor="api"),
        ),
    ]


def listing_scenario() -> list[tuple[str, Event, Metadata]]:
    """Plans that record the tree's prefixes (0.2-listing): a complete listing, a change from
    it (a function added, one deleted), and a listing naming a refused prefix."""

    def m(i: str, **kw: str) -> Metadata:
        return Metadata(event_id=i, **kw)

    orders, billing = "apps/orders/orders", "apps/billing/billing"
    payments = "apps/payments/payments"
    return [
        (
            ORDERS,
            DeploymentRequested(
                deployment_id="dep-1", commit=C1, action="create", desired=desired("orders", 128)
            ),
            m("l1", commit=C1, deployment_id="dep-1"),
        ),
        (
            REPO,
            CommitPlanned(
                sha=C1,
                actions=(
                    PlannedAction(
                        prefix=orders,
                        function=ORDERS,
                        action="create",
                        files=(f"{orders}_lambdadef.json",),
                        reason="new function",
                        content_hash=desired("orders", 128).content_hash,
                    ),
                ),
                listing=PrefixListing(added=(billing, orders)),
            ),
            m("l2", commit=C1),
        ),
        (
            ORDERS,
            DeploymentFinished(deployment_id="dep-1", outcome="succeeded", stable_version="1"),
            m("l3", deployment_id="dep-1"),
        ),
        (
            REPO,
            CommitPlanned(
                sha=C2,
                actions=(
                    PlannedAction(
                        prefix=payments,
                        function="",
                        action="nothing",
                        files=(f"{payments}_lambdadef.json",),
                        reason="invalid: no _lambdadepdef.json next to the function definition",
                    ),
                ),
                listing=PrefixListing(base=C1, added=(payments,), removed=(billing,)),
            ),
            m("l4", commit=C2),
        ),
        (
            REPO,
            CommitPlanned(
                sha=C3,
                actions=(),
                listing=PrefixListing(added=(orders, payments), refused=(payments,)),
            ),
            m("l5", commit=C3),
        ),
    ]


def drift_scenario() -> list[tuple[str, Event, Metadata]]:
    """Drift (0.1-drift): a function under ``driftPolicy: heal`` found changed in AWS (its
    alias moved, an environment value masked), a deployment asked for with drift as its
    reason, and the differences resolved after it."""

    def m(i: str, **kw: str) -> Metadata:
        return Metadata(event_id=i, **kw)

    base = desired("orders", 128)
    heal = base.model_copy(
        update={
            "settings": base.settings.model_copy(update={"drift_policy": "heal"}),
            "content_hash": "sha256:orders128-heal",
        }
    )
    seen = START + timedelta(minutes=10)
    return [
        (
            ORDERS,
            DeploymentRequested(deployment_id="dep-1", commit=C1, action="create", desired=heal),
            m("d1", commit=C1, deployment_id="dep-1"),
        ),
        (
            ORDERS,
            DeploymentFinished(deployment_id="dep-1", outcome="succeeded", stable_version="1"),
            m("d2", deployment_id="dep-1"),
        ),
        (
            ORDERS,
            DriftDetected(
                function="orders",
                path="alias.FunctionVersion",
                desired="1",
                live="2",
                detected_at=seen,
            ),
            m("d3"),
        ),
        (
            ORDERS,
            DriftDetected(
                function="orders",
                path="$LATEST.Environment.Variables.TOKEN",
                desired="***",
                live="***",
                detected_at=seen,
            ),
            m("d4"),
        ),
        (
            ORDERS,
            DeploymentRequested(
                deployment_id="dep-2",
                commit=C1,
                action="update",
                desired=heal,
                reason="drift: $LATEST.Environment.Variables.TOKEN, alias.FunctionVersion",
            ),
            m("d5", commit=C1, deployment_id="dep-2"),
        ),
        (
            ORDERS,
            DeploymentFinished(deployment_id="dep-2", outcome="succeeded", stable_version="1"),
            m("d6", deployment_id="dep-2"),
        ),
        (
            ORDERS,
            DriftResolved(
                function="orders",
                path="alias.FunctionVersion",
                resolved_at=seen + timedelta(minutes=5),
                reason="healed by deployment dep-2",
            ),
            m("d7"),
        ),
        (
            ORDERS,
            DriftResolved(
                function="orders",
                path="$LATEST.Environment.Variables.TOKEN",
                resolved_at=seen + timedelta(minutes=5),
            ),
            m("d8"),
        ),
    ]


def alarm_readings_scenario() -> list[tuple[str, Event, Metadata]]:
    """Alarm readings (0.3-alarm-readings): a canary whose alarm fired, recorded with the
    metric the alarm evaluates and the datapoints its evaluation saw; a quiet alarm's readings
    at the end of a watched bake; a composite alarm with neither."""

    def m(i: str, **kw: str) -> Metadata:
        return Metadata(event_id=i, deployment_id="dep-1", **kw)

    errors = AlarmMetric(
        namespace="AWS/Lambda",
        name="Errors",
        statistic="Sum",
        period=60,
        threshold=1.0,
        comparison="GreaterThanOrEqualToThreshold",
        evaluation_periods=2,
        datapoints_to_alarm=1,
        treat_missing_data="notBreaching",
        dimensions={"FunctionName": "orders", "Resource": "orders:live"},
    )
    p99 = errors.model_copy(
        update={"name": "Duration", "statistic": "p99", "threshold": 800.0, "dimensions": {}}
    )
    seen = START + timedelta(minutes=3)
    points = tuple(
        AlarmDatapoint(at=seen - timedelta(minutes=k), value=v)
        for k, v in ((2, 0.0), (1, 0.0), (0, 3.0))
    )
    return [
        (
            ORDERS,
            DeploymentRequested(
                deployment_id="dep-1", commit=C1, action="create", desired=desired("orders", 256)
            ),
            m("a1", commit=C1),
        ),
        (
            ORDERS,
            AlarmObserved(
                deployment_id="dep-1",
                alarm="orders-p99",
                state="OK",
                metric=p99,
                datapoints=(AlarmDatapoint(at=seen, value=412.5),),
            ),
            m("a2"),
        ),
        (ORDERS, AlarmObserved(deployment_id="dep-1", alarm="orders-health", state="OK"), m("a3")),
        (
            ORDERS,
            AlarmObserved(
                deployment_id="dep-1",
                alarm="orders-errors",
                state="ALARM",
                metric=errors,
                datapoints=points,
            ),
            m("a4"),
        ),
        (
            ORDERS,
            RollbackStarted(deployment_id="dep-1", reason="alarm orders-errors is in ALARM"),
            m("a5"),
        ),
        (
            ORDERS,
            DeploymentFinished(
                deployment_id="dep-1",
                outcome="rolled_back",
                stable_version="1",
                reason="alarm orders-errors is in ALARM",
            ),
            m("a6"),
        ),
    ]


SCENARIOS = {
    "0.1": scenario,
    "0.1-operator": operator_scenario,
    "0.1-warnings": warnings_scenario,
    "0.1-org": org_scenario,
    "0.1-repositories": repositories_scenario,
    "0.2-listing": listing_scenario,
    "0.1-drift": drift_scenario,
    "0.3-alarm-readings": alarm_readings_scenario,
}


def progressive_scenario() -> list[tuple[str, Event, Metadata]]:
    """Progressive delivery (0.3): a canary whose beforeAllowTraffic hook answers, held and
    extended by an operator, resumed, then rolled back by its afterAllowTraffic hook."""

    def m(i: str, **kw: str) -> Metadata:
        return Metadata(event_id=i, **kw)

    d1, d2 = "dep-1", "dep-2"
    until = START + timedelta(minutes=5)
    return [
        (
            ORDERS,
            DeploymentRequested(
                deployment_id=d1, commit=C1, action="create", desired=desired("orders", 128)
            ),
            m("p1", commit=C1, deployment_id=d1),
        ),
        (
            ORDERS,
            DeploymentFinished(deployment_id=d1, outcome="succeeded", stable_version="1"),
            m("p2", deployment_id=d1),
        ),
        (
            ORDERS,
            DeploymentRequested(
                deployment_id=d2, commit=C2, action="update", desired=desired("orders", 256)
            ),
            m("p3", commit=C2, deployment_id=d2),
        ),
        (
            ORDERS,
            HookAnswered(
                deployment_id=d2,
                hook="beforeAllowTraffic",
                function="orders-smoke",
                status="succeeded",
                body='{"status": "Succeeded"}',
                duration_ms=412,
            ),
            m("p4", deployment_id=d2),
        ),
        (
            ORDERS,
            TrafficShifted(
                deployment_id=d2, alias="live", stable_version="1", new_version="2", weight=0.1
            ),
            m("p5", deployment_id=d2),
        ),
        (
            ORDERS,
            TimerStarted(deployment_id=d2, purpose="bake", until=until),
            m("p6", deployment_id=d2),
        ),
        (
            ORDERS,
            DeploymentHeld(deployment_id=d2, actor="alice", reason="watching p99", bake_left=240.5),
            m("p7", actor="alice", deployment_id=d2),
        ),
        (
            ORDERS,
            BakeExtended(deployment_id=d2, actor="alice", reason="quiet night", seconds=600),
            m("p8", actor="alice", deployment_id=d2),
        ),
        (
            ORDERS,
            DeploymentResumed(deployment_id=d2, actor="bob", reason="p99 fine"),
            m("p9", actor="bob", deployment_id=d2),
        ),
        (
            ORDERS,
            HookAnswered(
                deployment_id=d2,
                hook="afterAllowTraffic",
                function="orders-verify",
                status="failed",
                body='{"errorType": "RuntimeError", "errorMessage": "checkout broken"}',
                duration_ms=1203,
                function_error="Unhandled",
            ),
            m("p10", deployment_id=d2),
        ),
        (
            ORDERS,
            RollbackStarted(
                deployment_id=d2,
                reason="hook afterAllowTraffic (orders-verify) failed: the function raised",
            ),
            m("p11", deployment_id=d2),
        ),
        (
            ORDERS,
            DeploymentFinished(
                deployment_id=d2,
                outcome="rolled_back",
                reason="hook afterAllowTraffic (orders-verify) failed: the function raised",
                stable_version="1",
            ),
            m("p12", deployment_id=d2),
        ),
    ]


SCENARIOS["0.3-progressive"] = progressive_scenario


def gate_scenario() -> list[tuple[str, Event, Metadata]]:
    """Traffic gates (0.4-gate): a canary whose step waits for traffic, reads again and passes,
    then a canary that gets too little before the gate's deadline and rolls back."""

    def m(i: str, **kw: str) -> Metadata:
        return Metadata(event_id=i, **kw)

    def gated(memory: int) -> DesiredFunction:
        base = desired("orders", memory)
        gate = TrafficGate(min_invocations=50, max_wait=120, check_interval=60)
        return base.model_copy(
            update={"settings": base.settings.model_copy(update={"traffic_gate": gate})}
        )

    d1, d2, d3 = "dep-1", "dep-2", "dep-3"
    bake_end = START + timedelta(minutes=1)

    def counted(did: str, n: int, until: datetime) -> StepSucceeded:
        result = {"version": "2", "invocations": n, "since": START, "until": until}
        return StepSucceeded(
            deployment_id=did, step="gate", result=json.loads(json.dumps(result, default=str))
        )

    def gate_event(did: str, n: int, until: datetime, verdict: GateVerdict) -> Event:
        return TrafficGateChecked(
            deployment_id=did,
            version="2",
            invocations=n,
            required=50,
            since=START,
            until=until,
            verdict=verdict,
            deadline=bake_end + timedelta(seconds=120),
            action="rollback" if verdict == "timed_out" else None,
        )

    later, last = bake_end + timedelta(minutes=1), bake_end + timedelta(minutes=2)
    return [
        (
            ORDERS,
            DeploymentRequested(deployment_id=d1, commit=C1, action="create", desired=gated(128)),
            m("g1", commit=C1, deployment_id=d1),
        ),
        (
            ORDERS,
            DeploymentFinished(deployment_id=d1, outcome="succeeded", stable_version="1"),
            m("g2", deployment_id=d1),
        ),
        (
            ORDERS,
            DeploymentRequested(deployment_id=d2, commit=C2, action="update", desired=gated(256)),
            m("g3", commit=C2, deployment_id=d2),
        ),
        (
            ORDERS,
            TrafficShifted(
                deployment_id=d2, alias="live", stable_version="1", new_version="2", weight=0.2
            ),
            m("g4", deployment_id=d2),
        ),
        (ORDERS, counted(d2, 12, bake_end), m("g5", deployment_id=d2)),
        (ORDERS, gate_event(d2, 12, bake_end, "waiting"), m("g6", deployment_id=d2)),
        (ORDERS, counted(d2, 61, later), m("g7", deployment_id=d2)),
        (ORDERS, gate_event(d2, 61, later, "passed"), m("g8", deployment_id=d2)),
        (
            ORDERS,
            TrafficShifted(
                deployment_id=d2, alias="live", stable_version="1", new_version="2", weight=1.0
            ),
            m("g9", deployment_id=d2),
        ),
        (
            ORDERS,
            DeploymentFinished(deployment_id=d2, outcome="succeeded", stable_version="2"),
            m("g10", deployment_id=d2),
        ),
        (
            ORDERS,
            DeploymentRequested(deployment_id=d3, commit=C3, action="update", desired=gated(512)),
            m("g11", commit=C3, deployment_id=d3),
        ),
        (ORDERS, gate_event(d3, 3, last, "timed_out"), m("g12", deployment_id=d3)),
        (
            ORDERS,
            RollbackStarted(
                deployment_id=d3,
                reason="traffic gate: version 2 served 3 of the 50 invocations required in 180 s",
            ),
            m("g13", deployment_id=d3),
        ),
        (
            ORDERS,
            DeploymentFinished(
                deployment_id=d3,
                outcome="rolled_back",
                reason="traffic gate: version 2 served 3 of the 50 invocations required in 180 s",
                stable_version="2",
            ),
            m("g14", deployment_id=d3),
        ),
    ]


SCENARIOS["0.4-gate"] = gate_scenario


def release_scenario() -> list[tuple[str, Event, Metadata]]:
    """Releases (0.5-release): orders and billing of one commit in release "checkout"; both
    reach the first step, shift, then billing's alarm fires and orders rolls back with it."""

    def m(i: str, **kw: str) -> Metadata:
        return Metadata(event_id=i, **kw)

    def in_release(name: str, memory: int) -> DesiredFunction:
        base = desired(name, memory)
        settings = base.settings.model_copy(update={"release": "checkout"})
        return base.model_copy(update={"settings": settings})

    d1, d2, r1, r2 = "dep-1", "dep-2", "rel-1", "rel-2"
    release = Release(
        id="release-1",
        name="checkout",
        members=(
            ReleaseMember(stream=ORDERS, deployment_id=r1),
            ReleaseMember(stream=BILLING, deployment_id=r2),
        ),
    )
    shifted = {"alias": "live", "stable_version": "1", "new_version": "2", "weight": 0.5}
    why = "alarm billing-errors is in ALARM"
    follows = f"release checkout: billing rolled back: {why}"
    return [
        (
            ORDERS,
            DeploymentRequested(
                deployment_id=d1, commit=C1, action="create", desired=desired("orders", 128)
            ),
            m("r1", commit=C1, deployment_id=d1),
        ),
        (
            ORDERS,
            DeploymentFinished(deployment_id=d1, outcome="succeeded", stable_version="1"),
            m("r2", deployment_id=d1),
        ),
        (
            BILLING,
            DeploymentRequested(
                deployment_id=d2, commit=C1, action="create", desired=desired("billing", 128)
            ),
            m("r3", commit=C1, deployment_id=d2),
        ),
        (
            BILLING,
            DeploymentFinished(deployment_id=d2, outcome="succeeded", stable_version="1"),
            m("r4", deployment_id=d2),
        ),
        (
            ORDERS,
            DeploymentRequested(
                deployment_id=r1,
                commit=C2,
                action="update",
                desired=in_release("orders", 256),
                release=release,
            ),
            m("r5", commit=C2, deployment_id=r1),
        ),
        (
            BILLING,
            DeploymentRequested(
                deployment_id=r2,
                commit=C2,
                action="update",
                desired=in_release("billing", 256),
                release=release,
            ),
            m("r6", commit=C2, deployment_id=r2),
        ),
        (
            ORDERS,
            ReleaseStepReached(deployment_id=r1, release_id="release-1", stage="shift"),
            m("r7", deployment_id=r1),
        ),
        (
            ORDERS,
            TimerStarted(deployment_id=r1, purpose="release", until=START + timedelta(hours=1)),
            m("r8", deployment_id=r1),
        ),
        (
            BILLING,
            ReleaseStepReached(deployment_id=r2, release_id="release-1", stage="shift"),
            m("r9", deployment_id=r2),
        ),
        (ORDERS, StepSucceeded(deployment_id=r1, step="wait:release"), m("r10", deployment_id=r1)),
        (ORDERS, TrafficShifted(deployment_id=r1, **shifted), m("r11", deployment_id=r1)),
        (BILLING, TrafficShifted(deployment_id=r2, **shifted), m("r12", deployment_id=r2)),
        (
            BILLING,
            AlarmObserved(deployment_id=r2, alarm="billing-errors", state="ALARM"),
            m("r13", deployment_id=r2),
        ),
        (BILLING, RollbackStarted(deployment_id=r2, reason=why), m("r14", deployment_id=r2)),
        (
            ORDERS,
            ReleaseMemberFailed(
                deployment_id=r1,
                release_id="release-1",
                member=BILLING,
                member_deployment=r2,
                reason=f"billing rolled back: {why}",
            ),
            m("r15", deployment_id=r1),
        ),
        (ORDERS, RollbackStarted(deployment_id=r1, reason=follows), m("r16", deployment_id=r1)),
        (
            BILLING,
            DeploymentFinished(
                deployment_id=r2, outcome="rolled_back", reason=why, stable_version="1"
            ),
            m("r17", deployment_id=r2),
        ),
        (
            ORDERS,
            DeploymentFinished(
                deployment_id=r1, outcome="rolled_back", reason=follows, stable_version="1"
            ),
            m("r18", deployment_id=r1),
        ),
    ]


SCENARIOS["0.5-release"] = release_scenario


def rows(name: str = "0.1") -> list[StoredRow]:
    out: list[StoredRow] = []
    prev = GENESIS_HASH
    versions: dict[str, int] = {}
    for position, (stream, event, meta) in enumerate(SCENARIOS[name](), start=1):
        versions[stream] = versions.get(stream, 0) + 1
        row = make_row(
            NewEvent(event, meta),
            stream=stream,
            version=versions[stream],
            position=position,
            recorded_at=format_time(START + timedelta(seconds=7 * position)),
            prev_hash=prev,
        )
        prev = row.hash
        out.append(row)
    return out


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        raise SystemExit(f"usage: python -m tests.golden.generate {{{','.join(SCENARIOS)}}}")
    name = sys.argv[1]
    log, snapshot = HERE / f"log-{name}.jsonl", HERE / f"views-{name}.json"
    if log.exists():
        raise SystemExit(f"{log.name} exists: golden logs are never regenerated")
    log_rows = rows(name)
    log.write_text("".join(json.dumps(as_dict(r), ensure_ascii=False) + "\n" for r in log_rows))
    views = fold(to_recorded(r) for r in log_rows)
    snapshot.write_text(json.dumps(views.as_json(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {log.name} ({len(log_rows)} events) and {snapshot.name}")


def as_dict(row: StoredRow) -> dict[str, object]:
    return dataclasses.asdict(row)


if __name__ == "__main__":
    main()
