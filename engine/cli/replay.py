"""``glam replay``: the views folded afresh up to a position or a time, and ``--verify``:
the hash chain checked and the stored views compared with the replay.

Like every query it opens the database read-only, so it runs next to a live engine.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.cli.app import app
from engine.cli.common import DbOption, JsonOption, with_store
from engine.cli.db import chain_report, print_chain
from engine.cli.output import examples, parse_moment, print_json, table

if TYPE_CHECKING:
    from engine.store import Store
    from projections.views import Views

# The views, the history and the events are imported by the command's body, once the file's
# integrity check has started: it reads every page while they load (engine.cli.common).

# -- glam replay ---------------------------------------------------------------------------


def _parse_at(at: str) -> int | datetime:
    return parse_moment(at, option="--at")


async def _fold_until(store: Store, end: int) -> Views:
    from projections.views import Views

    views = Views()
    while views.position < end:
        batch = await store.read_all(views.position + 1, limit=min(5000, end - views.position))
        if not batch:
            break
        for record in batch:
            views.apply(record)
    return views


@app.command(
    epilog=examples(
        "glam replay --at 120            # the views as they were after event 120",
        "glam replay --at 2026-03-01T10:00:00Z --json",
        "glam replay --verify            # hash chain and stored views checked: exit 1 if not",
    )
)
def replay(
    db: DbOption = None,
    at: Annotated[
        str | None, typer.Option(help="Stop at this log position or ISO-8601 time.")
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(help="Check the hash chain and that the stored views equal the replay."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Fold the log into fresh views, up to --at, and print them: the state as it was then.
    --at folds only from the nearest snapshot the engine saved before it. With --verify,
    everything is folded from position 0, and it exits 1 naming the first position that
    does not check out."""
    target = _parse_at(at) if at is not None else None

    warnings: list[str] = []  # printed once the file's check has passed

    async def body(store: Store) -> tuple[Any, dict[str, Any]]:
        from projections.functions import NAME as FUNCTIONS
        from projections.history import History
        from projections.planner import verify_rows
        from projections.runner import PROJECTION
        from projections.views import SnapshotUnreadable, Views, differences

        last = await store.last_position()
        if isinstance(target, datetime):
            end = await store.position_at(target)
        else:
            end = last if target is None else min(target, last)
        report: dict[str, Any] = {}
        if verify:
            report["chain"] = await chain_report(store)
            if not report["chain"]["ok"]:
                return _shown(Views(), as_json), report  # an altered log cannot be trusted
            checkpoint, stored = await store.load_views(PROJECTION)
            replayed = await _fold_until(store, checkpoint)
            diffs = differences(stored, replayed.to_rows())
            first = None
            if diffs:
                first = min(_row_position(s, r) for _, s, r in diffs)
            report["views"] = {
                "ok": not diffs,
                "checkpoint": checkpoint,
                "differing_rows": [f"{v}/{k}" for (v, k), _, _ in diffs],
                "first_bad_position": first,
            }
            planner = await verify_rows(store)
            if planner is not None:
                report["planner"] = planner
        if target is None or verify:
            return _shown(await _fold_until(store, end), as_json), report
        travel = History(store)
        try:
            if as_json:
                return _shown(await travel.at(end), as_json), report
            # Text prints every function and the last deployments and commits: only those
            # rows are read of the snapshot, not the whole history.
            views = await travel.at(end, whole=(FUNCTIONS,), recent=RECENT)
            return _shown(views, as_json), report
        except SnapshotUnreadable as exc:
            warnings.append(f"warning: {exc.one_line()}; folding from position 0")
            return _shown(await travel.at(end, snapshots=False), as_json), report

    shown, report = with_store(db, body, check_beside=True)
    for warning in warnings:
        print(warning, file=sys.stderr)
    ok = all(part["ok"] for part in report.values())
    if as_json:
        print_json({**shown, **({"verify": report} if verify else {})})
    else:
        if "views" in report or not verify:
            _print_views(shown)
        _print_report(report)
    if not ok:
        raise typer.Exit(1)


RECENT = 20  # deployments and commits listed in text; --json has them all


def _shown(views: Views, as_json: bool) -> Any:
    """What replay prints, read from the views while the log is open (rows from a snapshot
    are decoded here, so one that does not decode is noticed before anything is printed)."""
    if as_json:
        return views.as_json()
    return {
        "position": views.position,
        "functions": sorted(views.functions.values(), key=lambda r: r.stream),
        "deployments": (views.recent("deployments", RECENT), views.count("deployments")),
        "commits": (views.recent("commits", RECENT), views.count("commits")),
    }


def _row_position(stored: str | None, replayed: str | None) -> int:
    positions = [json.loads(text)["position"] for text in (stored, replayed) if text is not None]
    return min(positions) if positions else 0


def _print_views(shown: dict[str, Any]) -> None:
    table(
        f"functions at position {shown['position']}",
        ["function", "alias", "stable", "new", "weight", "state", "commit"],
        [
            (
                r.stream,
                r.alias,
                r.stable_version,
                r.new_version,
                f"{r.weight:.0%}",
                r.state,
                (r.last_commit or "")[:12],
            )
            for r in shown["functions"]
        ],
    )
    deployments, count = shown["deployments"]
    table(
        _title("deployments", len(deployments), count),
        ["deployment", "function", "action", "outcome", "steps", "reason"],
        [
            (r.deployment_id, r.function, r.action, r.outcome or r.state, len(r.steps), r.reason)
            for r in deployments
        ],
    )
    commits, count = shown["commits"]
    table(
        _title("commits", len(commits), count),
        ["commit", "summary", "planned", "rejected", "held deletes"],
        [
            (r.sha[:12], r.summary, len(r.planned), len(r.rejections), len(r.held_deletes))
            for r in commits
        ],
    )


def _title(view: str, shown: int, count: int) -> str:
    if shown == count:
        return view
    return f"{view} (the last {shown} of {count:,}; --json lists them all)"


def _print_report(report: dict[str, Any]) -> None:
    chain = report.get("chain")
    if chain is not None:
        print_chain(chain)
    views = report.get("views")
    if views is not None:
        if views["ok"]:
            print(f"stored views: equal to the replay (checkpoint {views['checkpoint']})")
        else:
            print(
                f"stored views: DIFFER from the replay from position "
                f"{views['first_bad_position']} ({', '.join(views['differing_rows'][:5])})",
                file=sys.stderr,
            )
    planner = report.get("planner")
    if planner is not None:
        if planner["ok"]:
            print(f"stored plan inputs: equal to the replay (checkpoint {planner['checkpoint']})")
        else:
            print(
                "stored plan inputs: DIFFER from the replay "
                f"({', '.join(planner['differing_rows'][:5])})",
                file=sys.stderr,
            )
