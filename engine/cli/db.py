"""``glam db``: the log as a database: describe it, copy it to another backend, key its chain.

    glam db info [--db LOG]                      backend, size, views, the chain's head, keying
    glam db copy --from LOG --to LOG             SQLite <-> PostgreSQL, chain intact, verified
    glam db key --key-file FILE [--db LOG]       HMAC-key the chain from the next event on

A log is an SQLite path or a ``postgresql://`` URL (``--db`` defaults to ``$GLAM_DB``, then
``./.glam/glam.db``). The chain key is read from ``--key-file`` or ``$GLAM_CHAIN_KEY_FILE``, the
witness from ``--witness`` or ``$GLAM_WITNESS``; neither is ever written to the log.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import anyio
import typer

from engine.cli.app import app
from engine.cli.common import DEFAULT_DB, JsonOption
from engine.cli.output import examples
from engine.errors import UsageError

if TYPE_CHECKING:
    from engine.store import Store

db_app = typer.Typer(
    name="db",
    help="The event log as a database: info, copy between SQLite and PostgreSQL, key the chain.",
    no_args_is_help=True,
)
app.add_typer(db_app)

LogOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="The log: an SQLite path or a postgresql:// URL. Default: $GLAM_DB, else "
        "./.glam/glam.db",
        show_default=False,
    ),
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="File holding the chain key (default: $GLAM_CHAIN_KEY_FILE).",
        show_default=False,
    ),
]
WitnessOption = Annotated[
    Path | None,
    typer.Option(
        "--witness",
        help="Witness file of the log's head (default: $GLAM_WITNESS).",
        show_default=False,
    ),
]


def log_location(value: str | None) -> str:
    """``--db`` as given (a URL keeps its ``//``), else ``$GLAM_DB``, else the default."""
    import os

    return value or os.environ.get("GLAM_DB") or str(DEFAULT_DB)


@db_app.command(
    "info",
    epilog=examples(
        "glam db info                          # backend, size, position, chain head",
        "glam db info --db postgresql://glam@db.internal/glam --json",
    ),
)
def info_command(
    db: LogOption = None,
    key_file: KeyFileOption = None,
    witness: WitnessOption = None,
    as_json: JsonOption = False,
) -> None:
    """Describe the log: backend, size, views, the head of its chain, keyed or not."""
    from engine.store.copy import log_info
    from engine.store.integrity import Integrity

    options = Integrity.from_env().override(key_file=key_file, witness=witness)
    described = anyio.run(lambda: log_info(log_location(db), integrity=options))
    if as_json:
        print(json.dumps(described.as_dict(), indent=2, sort_keys=True))
        return
    for line in described.lines():
        print(line)


@db_app.command(
    "copy",
    epilog=examples(
        "glam db copy --from .glam/glam.db --to postgresql://glam@db.internal/glam",
    ),
)
def copy_command(
    source: Annotated[
        str, typer.Option("--from", help="The log to copy (left as it is).", show_default=False)
    ],
    target: Annotated[
        str,
        typer.Option("--to", help="An empty log, or a copy to resume.", show_default=False),
    ],
    key_file: KeyFileOption = None,
) -> None:
    """Copy every event to another log (SQLite or PostgreSQL), chain intact, verify the copy
    and fold its views. Stop the engine first; run it again to resume a copy that stopped."""
    from engine.store.copy import copy_log
    from engine.store.integrity import Integrity

    if not source or not target:
        raise UsageError("--from and --to name two logs", hint="e.g. --from glam.db --to URL")
    options = Integrity.from_env().override(key_file=key_file)

    def progress(position: int, last: int) -> None:
        print(f"copied {position:,} of {last:,} events", file=sys.stderr, flush=True)

    def folding(last: int) -> None:
        print(f"folding the views of the copy up to {last:,}", file=sys.stderr, flush=True)

    report = anyio.run(
        lambda: copy_log(source, target, progress=progress, folding=folding, integrity=options)
    )
    resumed = f" ({report.already:,} were there already)" if report.already else ""
    print(
        f"copied {report.copied:,} events from {report.source} to {report.target}{resumed}; "
        f"both end at position {report.position:,}, hash {report.last_hash[:16] or '-'}; "
        f"views at {report.views_at:,}"
    )


@db_app.command(
    "key",
    epilog=examples(
        "head -c 32 /dev/urandom | base64 > /etc/glam/chain.key && chmod 600 /etc/glam/chain.key",
        "glam db key --key-file /etc/glam/chain.key --db .glam/glam.db",
    ),
)
def key_command(
    key_file: Annotated[
        Path,
        typer.Option(
            "--key-file",
            envvar="GLAM_CHAIN_KEY_FILE",
            help="File holding the new chain key (default: $GLAM_CHAIN_KEY_FILE).",
            show_default=False,
        ),
    ],
    db: LogOption = None,
) -> None:
    """Key the log's hash chain with an HMAC from its next event on. The whole log is
    verified first; the engine must be stopped (this takes its lock). Keep the key outside the
    database's folder: from now on every glam that writes to the log needs it."""
    from engine.store import open_store
    from engine.store.integrity import Integrity, load_key

    key = load_key(key_file)
    location = log_location(db)

    async def go() -> int:
        # Opened without the key: a writer given a key refuses a log that is not keyed yet.
        async with open_store(location, exclusive=True, integrity=Integrity()) as opened:
            store = cast("Store", opened)  # open_store types it by the ports it serves
            return await store.key_from_next(key)

    start = anyio.run(go)
    print(f"the log is keyed from position {start:,} on; keep {key_file} safe and private")


# -- the chain, for `glam status` and `glam replay --verify` ----------------------------------


async def chain_line(store: Store) -> str:
    """One line: the head of the log's chain, how far it is verified, keyed or not."""
    from engine.store.copy import head_line

    last = await store.last_position()
    rows = await store.read_rows(last, 1) if last else []
    chain = store.integrity.chain
    keyed = f"keyed from {chain.keyed_from}, key id {chain.key_id}" if chain.keyed else "sha256"
    return (
        f"log head: {head_line(last, rows[0].hash if rows else '')} "
        f"(chain {keyed}, verified up to position {store.head.position:,})"
    )


async def chain_report(store: Store) -> dict[str, Any]:
    """Walk the whole chain; what ``glam replay --verify`` reports of it."""
    from engine.errors import StoreError
    from engine.store.integrity import ChainWalk, walk_chain

    integrity = store.integrity
    chain = integrity.chain
    try:
        walk = await walk_chain(store, chain)
    except StoreError as exc:  # a row SQLite itself cannot give back (a damaged byte)
        walk = ChainWalk(store.head.position + 1, exc.message, integrity.head, 0)
    report: dict[str, Any] = {
        "ok": walk.first_bad is None,
        "first_bad_position": walk.first_bad,
        "reason": walk.reason,
        "head": {"position": walk.head.position, "hash": walk.head.hash},
        "keyed_from": chain.keyed_from,
    }
    if walk.first_bad is None and walk.unchecked:
        report |= {
            "ok": False,
            "reason": f"keyed from position {chain.keyed_from}: the content of "
            f"{walk.unchecked} events cannot be checked without the key "
            "(set $GLAM_CHAIN_KEY_FILE)",
        }
    elif walk.first_bad is None and integrity.options.key is not None and not chain.keyed:
        report |= {
            "ok": False,
            "reason": "a chain key is configured but this log does not say it is keyed: it "
            "never was (`glam db key` keys it) or its note saying so was removed",
        }
    return report


def print_chain(chain: dict[str, Any]) -> None:
    from engine.store.copy import head_line

    keyed = f", keyed from {chain['keyed_from']}" if chain["keyed_from"] else ""
    head = head_line(chain["head"]["position"], chain["head"]["hash"])
    if chain["ok"]:
        print(f"hash chain: ok ({head}{keyed})")
    elif chain["first_bad_position"] is None:
        print(f"hash chain: NOT VERIFIED: {chain['reason']}", file=sys.stderr)
    else:
        print(
            f"hash chain: BROKEN at position {chain['first_bad_position']}: {chain['reason']}",
            file=sys.stderr,
        )


__all__ = ["chain_line", "chain_report", "db_app", "log_location", "print_chain"]
