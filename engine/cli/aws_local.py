"""``glam aws-local``: the embedded AWS in the foreground, until Ctrl-C."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import anyio
import typer

from engine.cli.app import app
from engine.cli.output import examples

_HELP = """Run an embedded AWS on 127.0.0.1: moto behind glam's fidelity and fault proxy.

State lives as long as this process. Keep it running in one terminal and, from another, point
glam at it: `glam run --endpoint-url <endpoint>` with the printed `export` lines.

Fidelity (off with --no-fidelity): new functions stay Pending and updated ones InProgress for a
moment (Update*/PublishVersion get 409 meanwhile); alias routing with $LATEST, more than one
extra version, a weight outside [0, 1] or an unpublished version gets 400; deleting a version an
alias references gets 409; a duplicate event source mapping gets 409; more than 15 control-plane
requests/s (GetFunction: 100/s) get 429 with Retry-After.

--faults SPEC: clauses separated by ';': `seed=N`, or `OPERATION:rule=value[,rule=value]` where
OPERATION is an API name or `*` and rule is throttle=SHARE (429), error=SHARE (500),
apply_then_fail=SHARE (forwarded, then 500), apply_then_drop=SHARE (forwarded, then the
connection drops) or latency=50ms. Example:
`seed=7;UpdateAlias:throttle=0.3;PublishVersion:apply_then_fail=0.5;*:latency=50ms`.
Change it while running: `curl -d 'SPEC' <endpoint>/_glam/faults`; read every call with
`curl <endpoint>/_glam/journal`.
"""


@app.command(
    "aws-local",
    help=_HELP,
    epilog=examples(
        "glam aws-local --port 4566",
        "glam aws-local --port 0 --with-account /tmp/outputs.json   # with the demo account",
    ),
)
def aws_local(
    port: Annotated[
        int, typer.Option("--port", help="Proxy port on 127.0.0.1 (0: any free port).")
    ] = 4566,
    no_fidelity: Annotated[
        bool, typer.Option("--no-fidelity", help="Plain moto behaviour: no real-Lambda rules.")
    ] = False,
    faults: Annotated[
        str, typer.Option("--faults", help="Fault spec, e.g. 'seed=7;UpdateAlias:throttle=0.3'.")
    ] = "",
    with_account: Annotated[
        Path | None,
        typer.Option(
            "--with-account",
            help="Build the demo account at start and write its terraform-style outputs here.",
        ),
    ] = None,
) -> None:
    # Imported here so that the rest of the CLI works without the optional 'local' extra.
    from engine.local import Fidelity, LocalAws, parse_faults
    from engine.local.account import build_account

    spec = parse_faults(faults)  # a bad spec fails before anything starts

    async def serve() -> None:
        fidelity = Fidelity.off() if no_fidelity else Fidelity()
        async with LocalAws(fidelity=fidelity, faults=spec, port=port) as aws:
            if with_account is not None:
                outputs = await build_account(aws.endpoint_url, region=aws.region)
                await anyio.Path(with_account).write_text(json.dumps(outputs, indent=2) + "\n")
            # Listen for Ctrl-C before announcing readiness, so a stop right after it is clean.
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                print(f"glam aws-local: ready on {aws.endpoint_url}", flush=True)
                print(f"export AWS_ENDPOINT_URL={aws.endpoint_url}")
                print(f"export AWS_DEFAULT_REGION={aws.region}")
                print(f"export AWS_ACCESS_KEY_ID={aws.credentials.access_key_id}")
                print(f"export AWS_SECRET_ACCESS_KEY={aws.credentials.secret_access_key}")
                if with_account is not None:
                    print(f"# demo account outputs written to {with_account}")
                print("# fidelity: " + ("off" if no_fidelity else "on") + f"; faults: {spec}")
                print("# Ctrl-C stops it; state lives as long as this process.", flush=True)
                async for _ in signals:
                    break
        print("glam aws-local: stopped", file=sys.stderr)

    anyio.run(serve, backend="asyncio")
