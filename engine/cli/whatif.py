"""``glam whatif DEPLOYMENT``: a past deployment replayed against another schedule or alarm
threshold, decided by the saga's own code on a replayed clock; nothing is called or written.

    glam whatif dep-3f2a --alarm-threshold glam-demo-errors=5
    glam whatif status --type LINEAR --percent 10 --interval 30
    glam whatif dep-3f2a --steps 5,25,50 --json

DEPLOYMENT is a deployment id (or the start of one), or a function name for its latest
deployment that moved traffic. An alarm left without ``--alarm-threshold`` replays as it was
recorded; one given a threshold is evaluated again from its recorded datapoints.
"""

from __future__ import annotations

import json
from typing import Annotated

import anyio
import typer

from engine.cli.app import app
from engine.cli.common import DbOption, JsonOption, read_log
from engine.cli.output import examples
from engine.errors import UsageError
from engine.events.catalog import RecordedEvent
from engine.events.desired import ShiftType, TrafficShifting
from engine.events.function import DeploymentRequested, TrafficShifted
from engine.whatif import Schedule, WhatIf, what_if
from engine.whatif.replay import Verdict


@app.command(
    "whatif",
    epilog=examples(
        "glam deployments --outcome rolled_back        # find the deployment",
        "glam whatif DEPLOYMENT --alarm-threshold ERRORS_ALARM=5",
        "glam whatif orders --type LINEAR --percent 10 --interval 30",
    ),
)
def whatif_command(
    deployment: Annotated[
        str, typer.Argument(help="A deployment id (or its start), or a function name.")
    ],
    alarm_threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--alarm-threshold",
            help="NAME=VALUE: evaluate alarm NAME again at this threshold (repeatable).",
        ),
    ] = None,
    shift_type: Annotated[
        ShiftType | None,
        typer.Option("--type", help="The schedule's type: CANARY, LINEAR or ALL_AT_ONCE."),
    ] = None,
    percent: Annotated[
        int | None, typer.Option("--percent", min=1, max=100, help="Its percent (1-100).")
    ] = None,
    interval: Annotated[
        int | None,
        typer.Option("--interval", min=0, help="The bake after each step, in seconds."),
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option("--steps", help="The new version's percent at each step, e.g. 5,25,50."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replay a past deployment against another schedule or alarm threshold."""
    thresholds = parse_thresholds(alarm_threshold or [])
    traffic = (shift_type, percent, interval)
    result = anyio.run(_replay, db, deployment, thresholds, traffic, steps)
    if as_json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        print_whatif(result)


def parse_thresholds(values: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for value in values:
        name, eq, number = value.rpartition("=")
        try:
            out[name] = float(number)
        except ValueError:
            name = ""
        if not eq or not name:
            raise UsageError(
                f"--alarm-threshold {value!r}: write NAME=VALUE, e.g. my-errors-alarm=5"
            )
    return out


def parse_steps(text: str) -> tuple[float, ...]:
    """``5,25,50`` → (0.05, 0.25, 0.5): rising percents, each in 1..99."""
    try:
        percents = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        percents = []
    ok = bool(percents) and all(0 < p < 100 for p in percents)
    if not ok or percents != sorted(set(percents)):
        raise UsageError(
            f"--steps {text!r}: write rising percents below 100, e.g. 5,25,50 "
            "(the promote to 100 % follows the last)"
        )
    return tuple(p / 100 for p in percents)


async def _replay(
    db: str | None,
    wanted: str,
    thresholds: dict[str, float],
    traffic_flags: tuple[ShiftType | None, int | None, int | None],
    steps: str | None,
) -> WhatIf:
    async with read_log(db) as store:
        recorded = await store.read_selected({"DeploymentRequested", "TrafficShifted"})
        deployment_id, stream = _find(recorded, wanted)
        events = await store.read_stream(stream)
    request = next(
        r.event
        for r in events
        if isinstance(r.event, DeploymentRequested) and r.event.deployment_id == deployment_id
    )
    assert request.desired is not None
    traffic = None
    changes = dict(zip(("type", "percent", "wait_interval"), traffic_flags, strict=True))
    if any(v is not None for v in changes.values()):
        base = request.desired.settings.traffic or TrafficShifting(type="LINEAR")
        traffic = base.model_copy(update={k: v for k, v in changes.items() if v is not None})
    schedule = Schedule(traffic=traffic, steps=parse_steps(steps) if steps else None)
    try:
        return what_if(events, deployment_id, schedule, thresholds)
    except AssertionError:
        # The saga refuses a state the recording cannot reach (a log whose steps were not
        # all recorded, say): said in one line, not as a traceback.
        raise UsageError(
            f"deployment {deployment_id}'s record lacks steps a replay needs",
            hint="check the log with `glam replay --verify`; what-if replays deployments glam ran",
        ) from None


def _find(recorded: list[RecordedEvent], wanted: str) -> tuple[str, str]:
    """(deployment id, stream) of ``wanted``: an id, the start of one, or a function name (its
    latest deployment that moved traffic)."""
    requests = [
        (r.event.deployment_id, r.stream)
        for r in recorded
        if isinstance(r.event, DeploymentRequested)
    ]
    exact = [hit for hit in requests if hit[0] == wanted]
    by_prefix = exact or [hit for hit in requests if hit[0].startswith(wanted)]
    ids = {deployment_id for deployment_id, _ in by_prefix}
    if len(ids) > 1:
        raise UsageError(
            f"{wanted!r} is the start of {len(ids)} deployment ids: give more of it",
            hint="glam deployments lists them",
        )
    if ids:
        return by_prefix[0]
    shifted = [
        (r.event.deployment_id, r.stream)
        for r in recorded
        if isinstance(r.event, TrafficShifted) and r.stream.rsplit(":", 1)[-1] == wanted
    ]
    if shifted:
        return shifted[-1]
    raise UsageError(
        f"no deployment {wanted!r} in the log, and no function of that name that shifted traffic",
        hint="glam deployments lists the deployments and their ids",
    )


def _verdict(v: Verdict) -> str:
    words = {
        "succeeded": "promoted",
        "rolled_back": "rolled back",
        "failed": "failed",
        "superseded": "was superseded",
        "running": "is still running",
    }
    text = words.get(v.outcome, v.outcome)
    if v.at is not None:
        text += f" at +{v.at:.1f} s"
    return text + (f": {v.reason}" if v.reason else "")


def print_whatif(result: WhatIf) -> None:
    print(f"what-if of deployment {result.deployment_id} ({result.function})")
    print(f"  schedule   {result.schedule}")
    print(f"  recorded   {result.recorded_schedule}")
    for line in result.alarms:
        print(f"  {line}")
    print(f"  replayed from {result.start.isoformat(timespec='seconds')} (+0 s), no AWS calls")
    print()
    for moment in result.timeline:
        print(f"  +{moment.at:7.1f} s  {moment.what}")
    print()
    if result.verdict is not None:
        print(f"replayed: it would have {_verdict(result.verdict)}")
    print(f"recorded: it {_verdict(result.recorded)}")
    for note in result.notes:
        print(f"note: {note}")
