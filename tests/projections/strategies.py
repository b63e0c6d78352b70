"""Hypothesis strategies for logs that look like glam's: a few functions, deployments, commits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from engine.events import Event, Metadata, NewEvent, RecordedEvent
from engine.events.desired import DeploymentSettings, DesiredFunction
from engine.events.function import (
    AlarmObserved,
    DeploymentFinished,
    DeploymentRequested,
    EventSourceChanged,
    FunctionDeleted,
    RollbackStarted,
    SettingsRecorded,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerStarted,
    TrafficShifted,
)
from engine.events.operator import OperatorCommandIssued
from engine.events.repo import (
    CommitObserved,
    CommitPlanned,
    DefinitionRejected,
    DeletesHeld,
    FileChange,
    HistoryRewritten,
    PlannedAction,
    SourceUnavailable,
)
from engine.store.records import GENESIS_HASH, format_time, make_row, to_recorded

NAMES = st.sampled_from(["orders", "billing", "email"])
DEPLOYMENTS = st.sampled_from(["d1", "d2", "d3", "d4"])
SHAS = st.sampled_from(["a" * 40, "b" * 40, "c" * 40])
TEXT = st.text(max_size=12)
VERSIONS = st.sampled_from(["1", "2", "3"])
MOMENTS = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC)
)


def desired_function(name: str) -> DesiredFunction:
    return DesiredFunction(
        prefix=f"apps/{name}/{name}",
        function_name=name,
        definition={"FunctionName": name, "Runtime": "python3.12", "MemorySize": 128},
        settings=DeploymentSettings(alias="live"),
        content_hash="h-" + name,
    )


def _requested(d: str, sha: str, action: str, name: str) -> DeploymentRequested:
    desired = None if action == "delete" else desired_function(name)
    return DeploymentRequested(deployment_id=d, commit=sha, action=action, desired=desired)


function_events: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        _requested, DEPLOYMENTS, SHAS, st.sampled_from(["create", "update", "delete"]), NAMES
    ),
    st.builds(SettingsRecorded, commit=SHAS, settings=st.just(DeploymentSettings(alias="live"))),
    st.builds(StepStarted, deployment_id=DEPLOYMENTS, step=TEXT, attempt=st.integers(1, 3)),
    st.builds(StepSucceeded, deployment_id=DEPLOYMENTS, step=TEXT),
    st.builds(
        StepFailed,
        deployment_id=DEPLOYMENTS,
        step=TEXT,
        error_code=TEXT,
        message=TEXT,
        retryable=st.booleans(),
    ),
    st.builds(
        TimerStarted,
        deployment_id=DEPLOYMENTS,
        purpose=st.sampled_from(["bake", "x"]),
        until=MOMENTS,
    ),
    st.builds(
        TrafficShifted,
        deployment_id=DEPLOYMENTS,
        alias=st.just("live"),
        stable_version=VERSIONS,
        new_version=VERSIONS,
        weight=st.floats(0, 1, allow_nan=False),
    ),
    st.builds(
        AlarmObserved,
        deployment_id=DEPLOYMENTS,
        alarm=TEXT,
        state=st.sampled_from(["OK", "ALARM", "MISSING"]),
    ),
    st.builds(RollbackStarted, deployment_id=DEPLOYMENTS, reason=TEXT),
    st.builds(
        EventSourceChanged,
        deployment_id=DEPLOYMENTS,
        kind=st.sampled_from(["mapping", "elb", "apigateway"]),
        change=st.sampled_from(["attached", "updated", "detached", "adopted"]),
        source_id=st.sampled_from(["m1", "m2", "tg"]),
    ),
    st.builds(
        DeploymentFinished,
        deployment_id=DEPLOYMENTS,
        outcome=st.sampled_from(["succeeded", "rolled_back", "failed", "superseded"]),
        reason=TEXT,
        stable_version=st.none() | VERSIONS,
    ),
    st.builds(FunctionDeleted, deployment_id=DEPLOYMENTS),
)

repo_events: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        CommitObserved,
        sha=SHAS,
        parents=st.tuples(SHAS),
        author=TEXT,
        committed_at=st.just("2025-01-01T00:00:00+00:00"),
        summary=TEXT,
        changes=st.lists(
            st.builds(FileChange, path=TEXT, change=st.sampled_from(["added", "deleted"])),
            max_size=2,
        ).map(tuple),
    ),
    st.builds(HistoryRewritten, previous=SHAS, head=SHAS),
    st.builds(
        SourceUnavailable,
        url=st.just("https://example.invalid/r.git"),
        branch=st.just("main"),
        reason=TEXT,
    ),
    st.builds(
        CommitPlanned,
        sha=SHAS,
        actions=st.lists(
            st.builds(
                PlannedAction,
                prefix=TEXT,
                function=TEXT,
                action=st.sampled_from(["create", "delete", "nothing"]),
                files=st.just(()),
                reason=TEXT,
            ),
            max_size=2,
        ).map(tuple),
    ),
    st.builds(
        DefinitionRejected,
        sha=SHAS,
        prefix=TEXT,
        file=TEXT,
        line=st.none() | st.integers(1, 99),
        reason=TEXT,
    ),
    st.builds(
        DeletesHeld,
        sha=SHAS,
        prefixes=st.lists(TEXT, max_size=2).map(tuple),
        share=st.floats(0, 1),
        limit=st.just(0.5),
    ),
)

operator_events: st.SearchStrategy[Event] = st.builds(
    OperatorCommandIssued,
    command=st.sampled_from(["promote", "abort", "retry", "allow_deletes"]),
    target=st.sampled_from(["fn:1:eu-west-1:orders", "a" * 40]),
    reason=TEXT,
)

# (stream, event): function events go to one of the function streams, the rest to theirs.
stream_events: st.SearchStrategy[tuple[str, Event]] = st.one_of(
    st.tuples(NAMES.map(lambda n: f"fn:1:eu-west-1:{n}"), function_events),
    st.tuples(st.just("repo:r"), repo_events),
    st.tuples(st.just("ops"), operator_events),
)

any_event: st.SearchStrategy[Event] = st.one_of(function_events, repo_events, operator_events)


def record_all(items: list[tuple[str, Event]]) -> list[RecordedEvent]:
    """Turn events into recorded ones exactly as a store would (encode, hash, decode)."""
    records: list[RecordedEvent] = []
    prev = GENESIS_HASH
    versions: dict[str, int] = {}
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for position, (stream, event) in enumerate(items, start=1):
        versions[stream] = versions.get(stream, 0) + 1
        row = make_row(
            NewEvent(event, Metadata(event_id=f"e{position}", actor="tester")),
            stream=stream,
            version=versions[stream],
            position=position,
            recorded_at=format_time(start + timedelta(seconds=position)),
            prev_hash=prev,
        )
        prev = row.hash
        records.append(to_recorded(row))
    return records
