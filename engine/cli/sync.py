"""``glam sync``: ask the running engine to fetch a branch now instead of at its next poll.

    glam sync --server http://glam:8080 --token-env GLAM_TOKEN --repo https://github.com/acme/lambdas.git
    glam sync --server http://glam:8080 --token-env GLAM_TOKEN --repo … --branch release

It goes through the engine's HTTP API (``POST /api/v1/sync``), which wakes that branch's loop.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Annotated

import typer

from engine.cli.app import app
from engine.cli.common import JsonOption
from engine.cli.output import examples, print_json
from engine.cli.wait import server_token
from engine.errors import GlamError, UsageError
from engine.redact import redact_url


def post_sync(server: str, token: str | None, repo: str, branch: str | None) -> dict[str, object]:
    """``POST /api/v1/sync``: the engine's answer (``{"syncing": "<repository stream>"}``)."""
    if not server.startswith(("http://", "https://")):
        raise UsageError(f"--server {server!r} is not an http(s) URL", hint="e.g. http://host:8080")
    body = {"repository": repo, **({"branch": branch} if branch else {})}
    request = urllib.request.Request(  # noqa: S310 - http(s) checked above
        f"{server.rstrip('/')}/api/v1/sync",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - as above
            answer: dict[str, object] = json.loads(response.read() or b"{}")
            return answer
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", "")
        except (ValueError, AttributeError):
            message = ""
        hints = {
            401: "pass --token-env naming the variable that holds the API token",
            404: "the engine does not watch that repository or branch",
        }
        raise GlamError(
            f"the engine answered {exc.code}" + (f": {message}" if message else ""),
            hint=hints.get(exc.code),
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise GlamError(f"cannot reach {redact_url(server)}: {exc}", retryable=True) from None


@app.command(
    epilog=examples(
        "glam sync --server http://glam:8080 --token-env GLAM_TOKEN "
        "--repo https://github.com/acme/lambdas.git",
        "glam sync --server http://glam:8080 --token-env GLAM_TOKEN --repo … --branch release",
    )
)
def sync(
    repo: Annotated[str, typer.Option("--repo", help="The repository to fetch (its URL).")],
    branch: Annotated[
        str | None, typer.Option(help="The branch (may be left out when one is watched).")
    ] = None,
    server: Annotated[
        str | None, typer.Option(help="The engine's API, e.g. http://glam:8080.")
    ] = None,
    token_env: Annotated[
        str | None, typer.Option(help="Env var holding the API token (writes need it).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Ask the running engine to fetch a branch now (through its HTTP API)."""
    if server is None:
        raise UsageError(
            "glam sync talks to the running engine through its API",
            hint="pass --server URL (the engine runs with --listen) and --token-env",
        )
    answer = post_sync(server, server_token(token_env), repo, branch)
    if as_json:
        print_json(answer)
    else:
        print(f"syncing {answer.get('syncing', redact_url(repo))}: the engine fetches it now")


__all__ = ["post_sync", "sync"]
