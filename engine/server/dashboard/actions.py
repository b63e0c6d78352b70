"""The dashboard's operator buttons and its sign-in.

A button is a plain form post (it works without JavaScript) with a required reason. It gives
the command through ``engine.commands.issue_command``, as ``glam promote`` and ``POST
/api/v1/functions/{f}/promote`` do: the same check against the log (a refusal is the line the
CLI prints, shown on the page with 409), the same ``OperatorCommandIssued`` with actor
(``dashboard``) and reason, handed over by the engine's operators loop, woken at once.

Only a browser signed in with the server's write token may post (``session``), only from the
dashboard's own pages, and only to a dashboard running inside an engine: ``glam dashboard
--db`` reads.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from engine.commands import COMMANDS, Command, issue_command
from engine.errors import GlamError
from engine.server.app import status_of
from engine.server.auth import token_matches
from engine.server.dashboard.board import Board
from engine.server.dashboard.render import moment_of, render
from engine.server.dashboard.session import same_origin, sign_in, sign_out, signed_in

ACTOR = "dashboard"
_COMMANDS: dict[str, Command] = {c: c for c in COMMANDS}
MAX_REASON = 500


async def command(request: web.Request, board: Board, name: str, target: str) -> web.Response:
    """Give ``name`` to ``target`` (a function stream, or a commit sha for allow_deletes)."""
    back = f"/dashboard/functions/{quote(target)}" if name != "allow_deletes" else "/dashboard/"
    given = _COMMANDS.get(name)
    if given is None:
        return await _refused(request, board, 404, f"no operator command {name!r}", back)
    if board.engine is None:
        message = "this dashboard only reads the log (glam dashboard): give commands with glam"
        return await _refused(request, board, 405, message, back)
    if not same_origin(request):
        return await _refused(request, board, 403, "posted from another site: refused", back)
    expected = await board.auth.expected() if board.writable else None
    if not signed_in(request, expected):
        why = (
            "sign in with the API token to give operator commands"
            if board.writable
            else "operator commands need an API token, and none is configured"
        )
        return await _refused(request, board, 401, why, back)
    form = await request.post()
    reason = str(form.get("reason", "")).strip()
    if not reason:
        return await _refused(request, board, 400, "a reason is required, for the log", back)
    if len(reason) > MAX_REASON:
        too_long = f"a reason has {MAX_REASON} characters at most"
        return await _refused(request, board, 400, too_long, back)
    try:
        issued = await issue_command(board.store, given, target, reason=reason, actor=ACTOR)
    except GlamError as exc:
        return await _refused(request, board, status_of(exc), exc.one_line(), back)
    board.engine.wake_operators()
    await board.state.caught_up(issued.record.position)
    where = back if name != "allow_deletes" else "/dashboard/"
    raise web.HTTPSeeOther(f"{where}?done={name}&event={issued.record.position}")


async def _refused(
    request: web.Request, board: Board, status: int, message: str, back: str
) -> web.Response:
    moment = await moment_of(board, None, board.position)
    return await render(
        request,
        board,
        "error",
        moment,
        status=status,
        title="refused · glam",
        message=message,
        back=back,
    )


async def sign_in_page(request: web.Request, board: Board) -> web.Response:
    moment = await moment_of(board, None, board.position)
    return await render(
        request,
        board,
        "sign_in",
        moment,
        title="sign in · glam",
        next=_next(request.query.get("next")),
    )


async def sign_in_post(request: web.Request, board: Board) -> web.Response:
    form = await request.post()
    target = _next(str(form.get("next", "")))
    expected = await board.auth.expected() if board.auth.configured else None
    given = str(form.get("token", ""))
    if not same_origin(request) or not token_matches(given, expected):
        moment = await moment_of(board, None, board.position)
        problem = (
            "no API token is configured on this server"
            if expected is None
            else "that is not the server's API token"
        )
        return await render(
            request,
            board,
            "sign_in",
            moment,
            status=401,
            title="sign in · glam",
            next=target,
            problem=problem,
        )
    assert expected is not None
    answer = web.HTTPSeeOther(target)
    sign_in(answer, expected, secure=request.secure)
    raise answer


async def sign_out_post(request: web.Request, board: Board) -> web.Response:
    answer = web.HTTPSeeOther("/dashboard/")
    sign_out(answer)
    raise answer


def _next(value: str | None) -> str:
    """Where to go after signing in: a dashboard page of this server, nothing else."""
    if value and value.startswith("/dashboard") and "//" not in value and "\\" not in value:
        return value
    return "/dashboard/"
