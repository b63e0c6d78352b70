"""``glam drift [FUNCTION]``: read AWS now and compare every function glam deployed (or one)
with what the log says it deployed, field by field (docs/drift.md).

    glam drift                              every function in the log
    glam drift orders --json                one function, as JSON
    glam drift --endpoint-url http://127.0.0.1:4566    against the embedded AWS

The log is opened read-only (next to a running engine is fine); nothing is recorded or
changed: the engine's own sweep records drift. A function with a deployment in flight is
skipped. Environment values are never shown, only that they differ.

Exit codes: 0 AWS matches, 1 drift found, 2 an error (the log, AWS, a usage mistake).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import typer

from engine.cli.app import app
from engine.cli.common import DbOption, JsonOption, db_location
from engine.cli.config import ConfigOption, config_path
from engine.cli.output import examples
from engine.errors import GlamError
from engine.store import make_store

if TYPE_CHECKING:
    from engine.drift.compare import Difference
    from engine.runtime.engine import EngineConfig


@dataclass
class _Checked:
    """One function: its differences, or why it was not read."""

    stream: str
    name: str
    skipped: str = ""
    differences: tuple[Difference, ...] = field(default_factory=tuple)


@app.command(
    "drift",
    epilog=examples(
        "glam drift                   # every function: what AWS has that glam did not deploy",
        "glam drift orders --json",
    ),
)
def drift_command(
    function: Annotated[
        str | None, typer.Argument(help="A function name or stream fn:ACCOUNT:REGION:NAME.")
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option("--endpoint-url", help="AWS endpoint, as `glam run` takes it."),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option("--region", help="Region for the engine's own calls (else $AWS_REGION)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare AWS with what glam deployed, now: exit 0 none, 1 drift, 2 an error."""
    try:
        engine = _engine_config(config, endpoint_url, region)
        checked = anyio.run(_check_all, db_location(db), function, engine)
    except GlamError as exc:
        print(f"glam: {exc.one_line()}", file=sys.stderr)
        raise typer.Exit(2) from None
    if function is not None and not checked:
        print(f"glam: no function {function!r} deployed by glam in the log", file=sys.stderr)
        raise typer.Exit(2)
    if as_json:
        print(json.dumps([_as_json(c) for c in checked], indent=2, default=str))
    else:
        _print_text(checked)
    raise typer.Exit(1 if any(c.differences for c in checked) else 0)


def _engine_config(
    config: Path | None, endpoint_url: str | None, region: str | None
) -> EngineConfig:
    """The AWS side of ``glam run``'s configuration: flags, else the configuration file."""
    from dataclasses import replace

    from engine.cli.run_config import engine_config

    path = config_path(config)
    if path is None:
        return engine_config(repo="", endpoint_url=endpoint_url, region=region)
    from engine.config import load_config

    glam = load_config(path)
    base = engine_config(
        repo="",
        endpoint_url=endpoint_url or glam.engine.endpoint_url,
        region=region or glam.engine.region,
    )
    return replace(base, accounts=glam.account)


async def _check_all(db: Path | str, function: str | None, config: EngineConfig) -> list[_Checked]:
    from engine.definitions.lambdadef import lambda_model
    from engine.drift.compare import compare
    from engine.drift.read import read_live
    from engine.drift.watch import expected, watched
    from engine.runtime.clock import SystemClock
    from engine.runtime.providers import AwsProvider
    from engine.streams import parse_function_stream

    async with make_store(db, readonly=True) as store:
        requested = await store.read_selected({"DeploymentRequested"})
        streams = sorted({r.stream for r in requested})
        logs = {s: await store.read_stream(s) for s in streams}
    await anyio.to_thread.run_sync(lambda_model)  # read from disk once: not on the loop
    checked: list[_Checked] = []
    clock = SystemClock()
    accounts = {a.id: a for a in config.accounts}
    provider = AwsProvider(config.aws_config(), accounts=accounts, clock=clock)
    try:
        for stream in streams:
            account, region, name = parse_function_stream(stream)
            if function is not None and function not in (stream, name):
                continue
            w = watched(name, (r.event for r in logs[stream]))
            want = expected(w)
            if want is None:
                why = "a deployment is in flight" if not w.state.idle else "nothing deployed"
                checked.append(_Checked(stream, name, skipped=why))
                continue
            ports = await provider.region(region, account)
            live = await read_live(ports.lambda_api, ports.sources, want)
            checked.append(_Checked(stream, name, differences=compare(want, live)))
    finally:
        await provider.aclose()
    return checked


def _print_text(checked: list[_Checked]) -> None:
    if not checked:
        print("no function deployed by glam in the log")
    for c in checked:
        if c.skipped:
            print(f"{c.name} ({c.stream}): not read: {c.skipped}")
        elif not c.differences:
            print(f"{c.name} ({c.stream}): AWS matches what glam deployed")
        else:
            count = len(c.differences)
            print(f"{c.name} ({c.stream}): drift in {count} field{'s' if count > 1 else ''}")
            for d in c.differences:
                print(f"  {d.text()}")


def _as_json(c: _Checked) -> dict[str, Any]:
    return {
        "function": c.name,
        "stream": c.stream,
        "skipped": c.skipped or None,
        "drift": bool(c.differences),
        "differences": [
            {"path": d.path, "desired": d.desired, "live": d.live} for d in c.differences
        ],
    }
