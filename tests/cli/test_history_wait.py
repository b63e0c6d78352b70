"""``glam deployments``, ``glam commits`` and ``glam wait`` on the golden log in a real
database; ``wait`` also while another process appends, and through a local HTTP API."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from engine.cli.main import main
from engine.store.sqlite import SqliteEventStore
from projections.runner import ProjectionRunner
from tests.golden.generate import rows

ROOT = Path(__file__).resolve().parents[2]
ORDERS_2 = "2222222222222222222222222222222222222222"


def build(path: Path, upto: int | None = None) -> Path:
    async def go() -> None:
        async with SqliteEventStore(path) as store:
            await store.import_rows(rows()[:upto])
            await ProjectionRunner(store).catch_up()

    anyio.run(go)
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return build(tmp_path / "glam.db")


def glam(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["glam", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_deployments_history_with_reasons_and_filters(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = glam(monkeypatch, capsys, "deployments", "--db", str(db), "--json")
    assert rc == 0
    shown = json.loads(out)
    assert [(d["deployment_id"], d["outcome"]) for d in shown] == [
        ("dep-1", "succeeded"),
        ("dep-2", "rolled_back"),
        ("dep-3", "failed"),
        ("dep-4", "succeeded"),
    ]
    rolled = shown[1]
    assert rolled["reason"] == "alarm orders-errors is in ALARM"
    assert rolled["commit"] == ORDERS_2
    assert rolled["duration_seconds"] == (23 - 13) * 7  # the golden log: 7 s per event
    rc, out, _ = glam(
        monkeypatch, capsys, "deployments", "orders", "--db", str(db), "--outcome", "rolled_back"
    )
    assert rc == 0
    header, *lines = out.splitlines()
    assert header.split("\t")[:5] == ["function", "action", "started", "took", "outcome"]
    assert [line.split("\t")[4] for line in lines] == ["rolled_back"]
    assert "alarm orders-errors is in ALARM" in lines[0]
    rc, _, err = glam(monkeypatch, capsys, "deployments", "ordres", "--db", str(db))
    assert rc == 1
    assert "did you mean 'orders'" in err
    rc, _, err = glam(monkeypatch, capsys, "deployments", "--db", str(db), "--outcome", "bad")
    assert rc == 2


def test_commits_observed_planned_rejected_held(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = glam(monkeypatch, capsys, "commits", "--db", str(db), "--json")
    assert rc == 0
    by_sha = {c["sha"][0]: c for c in json.loads(out)}
    assert [r["reason"] for r in by_sha["2"]["rejected"]] == [
        "Runtime 'python2.7' is not a valid value"
    ]
    assert [d["outcome"] for d in by_sha["2"]["deployments"]] == ["rolled_back"]
    assert by_sha["4"]["held_deletes"] == ["apps/orders/orders"]
    assert by_sha["4"]["deletes_allowed_by"] is not None
    rc, out, _ = glam(monkeypatch, capsys, "commits", "--db", str(db))
    assert rc == 0
    assert out.splitlines()[0].split("\t")[:5] == [
        "commit",
        "summary",
        "observed",
        "planned",
        "rejected",
    ]


@pytest.mark.parametrize(
    ("args", "code", "shown"),
    [
        pytest.param(["--commit", "1111111"], 0, "orders: succeeded", id="succeeded"),
        pytest.param(["--commit", "2222"], 1, "orders: rolled_back", id="rolled-back"),
        pytest.param(["billing"], 1, "billing: failed", id="function-failed"),
        pytest.param(["--commit", "3333", "--timeout", "1s"], 2, "", id="never-planned"),
        pytest.param(["--commit", "abcdef", "--timeout", "1s"], 2, "", id="unknown-commit"),
    ],
)
def test_wait_exit_codes(
    db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    shown: str,
) -> None:
    rc, out, err = glam(monkeypatch, capsys, "wait", "--db", str(db), *args)
    assert rc == code, err
    assert shown in out
    if code == 2:
        assert "timed out" in err


def test_wait_json_names_the_rejection(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = glam(monkeypatch, capsys, "wait", "--db", str(db), "--commit", "2222", "--json")
    assert rc == 1
    answer = json.loads(out)
    assert answer["result"] == "failed"
    assert answer["rejected"] == [
        "apps/billing/billing_lambdadef.json: Runtime 'python2.7' is not a valid value"
    ]


def wait_while_appended(db: str, append_rest: Callable[[], Awaitable[None]]) -> str:
    """``glam wait --db DB --commit 2222`` in another process, started mid-deployment: once
    it says what it waits for, ``append_rest`` appends the rollback; what it printed."""
    command = [sys.executable, "-c", "from engine.cli.main import main; main()"]
    waiter = subprocess.Popen(
        [*command, "wait", "--db", db, "--commit", "2222", "--timeout", "60s"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert waiter.stderr is not None
        # It has read the log and says what it waits for (its own --timeout bounds this).
        assert waiter.stderr.readline() == "waiting for orders: running\n"
        assert waiter.poll() is None  # still waiting: nothing finished yet
        anyio.run(append_rest)
        out, err = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 1, err
    return out


@pytest.mark.integration
def test_wait_sees_the_end_appended_by_another_process(tmp_path: Path) -> None:
    """Started mid-deployment, ``glam wait`` returns 1 once the rollback is appended: it
    follows the log, keeping nothing of its own."""
    db = build(tmp_path / "glam.db", upto=20)  # dep-2 is baking

    async def append_rest() -> None:
        async with SqliteEventStore(db) as store:
            await store.import_rows(rows()[20:23])

    out = wait_while_appended(str(db), append_rest)
    assert "orders: rolled_back (alarm orders-errors is in ALARM)" in out


@pytest.fixture
def api(db: Path) -> Iterator[str]:
    """A stand-in for the engine's ``GET /api/v1/events`` on 127.0.0.1, serving the log."""

    async def read() -> list[dict[str, object]]:
        from engine.cli.query import event_json

        async with SqliteEventStore(db, readonly=True) as store:
            return [event_json(r) for r in await store.read_all(1, limit=1000)]

    events = anyio.run(read)
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            seen.append(self.headers.get("Authorization", ""))
            query = parse_qs(url.query)
            since, limit = int(query["since"][0]), min(int(query["limit"][0]), 10)
            page = [e for e in events if int(str(e["position"])) > since][:limit]
            body = json.dumps(
                {"events": page, "next_since": page[-1]["position"] if page else since}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert seen
    assert all(h == "Bearer s3cret" for h in seen)


def test_wait_through_the_api(
    api: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GLAM_TEST_TOKEN", "s3cret")
    rc, out, _ = glam(
        monkeypatch,
        capsys,
        "wait",
        "--server",
        api,
        "--token-env",
        "GLAM_TEST_TOKEN",
        "--commit",
        "1111",
        "--timeout",
        "20s",
    )
    assert rc == 0
    assert "orders: succeeded" in out


@pytest.fixture
def sync_api() -> Iterator[tuple[str, list[tuple[str, dict[str, object]]]]]:
    """A stand-in for the engine's ``POST /api/v1/sync`` on 127.0.0.1."""
    seen: list[tuple[str, dict[str, object]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.headers.get("Authorization", ""), body))
            known = body.get("repository") == "https://github.com/acme/lambdas.git"
            answer = {"syncing": "repo:github.com/acme/lambdas#main"} if known else {}
            self.send_response(202 if known else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(answer or {"error": "not watched"}).encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_sync_asks_the_engine_through_its_api(
    sync_api: tuple[str, list[tuple[str, dict[str, object]]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, seen = sync_api
    monkeypatch.setenv("GLAM_TEST_TOKEN", "s3cret")
    base = ["sync", "--server", url, "--token-env", "GLAM_TEST_TOKEN"]
    rc, out, _ = glam(
        monkeypatch, capsys, *base, "--repo", "https://github.com/acme/lambdas.git", "--json"
    )
    assert rc == 0
    assert json.loads(out) == {"syncing": "repo:github.com/acme/lambdas#main"}
    assert seen == [("Bearer s3cret", {"repository": "https://github.com/acme/lambdas.git"})]
    rc, _, err = glam(monkeypatch, capsys, *base, "--repo", "https://x/y.git", "--branch", "dev")
    assert rc == 1
    assert "404: not watched" in err
    assert seen[-1][1] == {"repository": "https://x/y.git", "branch": "dev"}
    rc, _, err = glam(monkeypatch, capsys, "sync", "--repo", "https://x/y.git")
    assert rc == 2
    assert "--server" in err


def test_wait_for_a_commit_superseded_before_its_deployment_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A commit planned for orders, then a newer commit deploying orders before the first
    one's deployment was asked for: waiting for the first ends (exit 0, superseded)."""
    from engine.events import Event, Metadata, NewEvent
    from engine.events.function import DeploymentFinished, DeploymentRequested
    from engine.events.repo import CommitPlanned, PlannedAction

    orders, old, new = "fn:111111111111:eu-west-1:orders", "a" * 40, "b" * 40

    def plan(sha: str) -> CommitPlanned:
        action = PlannedAction(
            prefix="apps/orders/orders",
            function=orders,
            action="new_version",
            files=("apps/orders/orders_lambdadef.json",),
            reason="changed",
        )
        return CommitPlanned(sha=sha, actions=(action,))

    async def go() -> None:
        events: list[tuple[str, Event]] = [
            ("repo:example.com/r#main", plan(old)),
            ("repo:example.com/r#main", plan(new)),
            (
                orders,
                DeploymentRequested(
                    deployment_id="dep-b", commit=new, action="update", desired=None
                ),
            ),
            (orders, DeploymentFinished(deployment_id="dep-b", outcome="succeeded")),
        ]
        async with SqliteEventStore(tmp_path / "glam.db") as store:
            for i, (stream, event) in enumerate(events):
                await store.append(stream, [NewEvent(event, Metadata(event_id=f"e{i}"))])

    anyio.run(go)
    db = str(tmp_path / "glam.db")
    rc, out, _ = glam(
        monkeypatch, capsys, "wait", "--db", db, "--commit", "aaaa", "--timeout", "5s"
    )
    assert rc == 0
    assert "orders: superseded by a newer commit before it started" in out
    rc, out, _ = glam(
        monkeypatch, capsys, "wait", "--db", db, "--commit", "bbbb", "--timeout", "5s"
    )
    assert (rc, out.strip()) == (0, "orders: succeeded")
