"""The secrets canary suite (redteam X1-X9, issue 17): canary values in the AWS credentials,
in a git token (given by ``--token-env`` and, separately, in the URL), in a function's
environment and in a template input, and every place glam writes scanned for them.

Scanned: stdout and stderr of ``glam run -v`` (both token forms), ``plan --render`` and
``--json``, ``status`` (all, one, ``--json``), ``events`` (text and ``--json``), ``replay``
(text, ``--json``, ``--verify``), ``db info``, ``deployments``, ``commits`` and ``drift`` (text
and ``--json``) and ``whatif`` of the deployment; the pages ``glam dashboard`` serves (the
overview, the function, the deployment, every event); the log database (file, ``-wal``, ``-shm``
and every table); the repository mirror's config and the whole data folder. The engine
serving HTTP adds its API answers, /metrics, refused requests and its JSON log
(test_no_secret_reaches_the_server_or_its_json_log).

Credentials and tokens may appear nowhere. A function's environment (and the template input
that fills it) may appear in the log database only: that is the desired state glam deploys,
kept in a file only its owner can read. Everything that shows events or definitions masks it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.local import LocalAwsThread
from tests.repo.gitrepo import GitRepo
from tests.support.canary import Canary, CanaryScan
from tests.support.git_server import serve_repository

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
ACCESS_KEY = "AKIAZZCANARYAK000001"
SECRET_KEY = "CanarySecretKey0000000000000000000000Zz9"
SESSION_TOKEN = "CANARYSESSIONTOKENfQoGZXIvYXdzEJr//////////wEaDA"
GIT_TOKEN = "ghp_CANARYgitTOKENviaENV0000000000000001"
URL_TOKEN = "ghp_CANARYgitTOKENinURL00000000000000002"
ENV_SECRET = "CANARY-env-value-hunter2"
ENV_PLAIN = "CANARYplainvalue42"
INPUT_SECRET = "CANARY-template-input-77"
API_TOKEN = "glamapi_CANARYbearerTOKEN0000000000003"
LOG = "log database"

CANARIES = [
    Canary("AWS access key id", ACCESS_KEY),
    Canary("AWS secret access key", SECRET_KEY),
    Canary("AWS session token", SESSION_TOKEN),
    Canary("git token (--token-env)", GIT_TOKEN),
    Canary("git token (in the URL)", URL_TOKEN),
    Canary("environment value, secret-looking name", ENV_SECRET, frozenset({LOG})),
    Canary("environment value, plain name", ENV_PLAIN, frozenset({LOG})),
    Canary("template input", INPUT_SECRET, frozenset({LOG})),
]


def _write_function(repo: GitRepo, outputs: dict[str, Any]) -> None:
    value = {k: v["value"] for k, v in outputs.items()}
    prefix = "apps/canary/canary"
    repo.write(
        f"{prefix}_lambdadef.json",
        '{"FunctionName": "canary-fn", "Role": "{{ role }}", "Handler": "h.handler",'
        ' "Runtime": "python3.12", "Code": {"S3Bucket": "{{ bucket }}", "S3Key": "{{ key }}"},'
        ' "Environment": {"Variables": {"DB_PASSWORD": "' + ENV_SECRET + '",'
        ' "PLAIN": "' + ENV_PLAIN + '", "STRIPE_KEY": "{{ api_key }}"}}}',
    )
    repo.write(
        f"{prefix}_lambdadepdef.json",
        {"alias": "live", "trafficShiftingConfig": {"type": "ALL_AT_ONCE", "waitInterval": 1}},
    )
    repo.write(
        f"{prefix}_lambdainput.json",
        {
            "role": value["lambda_exec_role_arn"],
            "bucket": value["s3_bucket_name"],
            "key": value["s3_object_blue_key"],
            "api_key": INPUT_SECRET,
        },
    )


async def glam(*args: str, extra_env: dict[str, str] | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
    env |= {
        "PYTHONPATH": str(ROOT),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "GIT_TOKEN": GIT_TOKEN,
        **(extra_env or {}),
    }
    with anyio.fail_after(120):
        done = await anyio.run_process(
            [sys.executable, "-m", "engine", *args], env=env, cwd=ROOT, check=False
        )
    return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode()


@pytest.mark.slow  # some twenty glam processes
async def test_no_secret_reaches_any_sink(
    local_aws: LocalAwsThread, demo_account: dict[str, Any], tmp_path: Path
) -> None:
    outputs = demo_account
    repo = GitRepo(tmp_path / "repo")
    _write_function(repo, outputs)
    repo.commit("a function with secrets in its environment")
    scan = CanaryScan(CANARIES)
    data = tmp_path / "state"
    db = data / "glam.db"
    aws = ["--endpoint-url", local_aws.endpoint_url, "--region", local_aws.region]

    def record(command: str, result: tuple[int, str, str]) -> None:
        code, out, err = result
        scan.text(f"stdout of glam {command}", out)
        scan.text(f"stderr of glam {command}", err)
        assert code in (0, 1), f"glam {command} exited {code}: {err[-2000:]}"

    with serve_repository(repo.path) as url:
        run = await glam("run", "--once", "-v", "--repo", url, "--token-env", "GIT_TOKEN",
                         "--db", str(db), *aws)  # fmt: skip
        record("run --token-env", run)
        assert run[0] == 0, run[2][-3000:]
        # A second version, so that a deployment shifts traffic (what `glam whatif` replays).
        definition = repo.path / "apps/canary/canary_lambdadef.json"
        definition.write_text(
            definition.read_text().replace('"Handler"', '"Description": "v2", "Handler"')
        )
        repo.commit("a second version")
        again = await glam("run", "--once", "-v", "--repo", url, "--token-env", "GIT_TOKEN",
                           "--db", str(db), *aws)  # fmt: skip
        record("run --token-env (second version)", again)
        assert again[0] == 0, again[2][-3000:]
        with_token = url.replace("http://", f"http://x-access-token:{URL_TOKEN}@")
        url_db = tmp_path / "url-state" / "glam.db"
        record("run (URL token)", await glam("run", "--once", "-v", "--repo", with_token,
                                             "--db", str(url_db), *aws))  # fmt: skip
        for command in (
            ["plan", "--render", "--repo", url, "--token-env", "GIT_TOKEN", "--db", str(db)],
            ["plan", "--render", "--json", "--repo", with_token],
        ):
            record(" ".join(command[:2]), await glam(*command))
    # Independent readers of one log: a few at a time, as people and scripts run them.
    limiter = anyio.CapacityLimiter(3)

    async def read(command: list[str]) -> None:
        async with limiter:
            record(" ".join(command), await glam(*command, "--db", str(db)))

    commands = (
        ["status"],
        ["status", "canary-fn"],
        ["status", "--json"],
        ["events"],
        ["events", "--json"],
        ["replay"],
        ["replay", "--json"],
        ["replay", "--verify"],
        ["db", "info"],
        ["deployments"],
        ["deployments", "--json"],
        ["commits"],
        ["commits", "--json"],
        ["drift", *aws],
        ["drift", "--json", *aws],
    )
    async with anyio.create_task_group() as tg:
        for command in commands:
            tg.start_soon(read, command)
    _, out, _ = await glam("deployments", "--json", "--db", str(db))
    deployment = _values_of(json.loads(out), "deployment_id")[-1]  # the second version's
    for command in (
        ["whatif", deployment, "--type", "LINEAR", "--percent", "50", "--interval", "1"],
        ["whatif", deployment, "--type", "CANARY", "--percent", "10", "--json"],
    ):
        record(" ".join(command[:1] + command[2:]), await glam(*command, "--db", str(db)))
    _, out, _ = await glam("status", "--json", "--db", str(db))
    stream = next(iter(_values_of(json.loads(out), "stream")))
    _, out, _ = await glam("events", "--json", "--db", str(db))
    positions = [json.loads(line)["position"] for line in out.splitlines() if line.strip()]
    await _scan_dashboard(scan, db, stream, deployment, positions)

    for log in (db, url_db):
        scan.sqlite(LOG, log)
        assert oct(log.stat().st_mode & 0o777) == "0o600"
    for folder in (data, url_db.parent):
        scan.tree("data folder", folder, skip=("glam.db",))
        for config in folder.rglob("config"):
            scan.file("mirror config", config)
        assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert len(scan.sinks) > 40
    scan.assert_clean()
    # The control: the scan does see a canary where it is (the log holds the environment).
    control = CanaryScan([Canary("environment value", ENV_SECRET)])
    control.sqlite(LOG, db)
    assert control.leaks()


def _values_of(data: Any, key: str) -> list[Any]:
    """Every value of ``key`` anywhere in a JSON document, in document order."""
    found: list[Any] = []
    if isinstance(data, dict):
        for name, value in data.items():
            if name == key and isinstance(value, str | int):
                found.append(value)
            found.extend(_values_of(value, key))
    elif isinstance(data, list):
        for item in data:
            found.extend(_values_of(item, key))
    return found


async def _scan_dashboard(
    scan: CanaryScan, db: Path, stream: str, deployment: str, positions: list[int]
) -> None:
    """Serve the log with ``glam dashboard`` and scan its pages: the overview, the function's
    page, the deployment's, and the page of every event."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
    env |= {"PYTHONPATH": str(ROOT), "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_SESSION_TOKEN": SESSION_TOKEN}  # fmt: skip
    command = [sys.executable, "-m", "engine", "dashboard", "--db", str(db), "--listen",
               "127.0.0.1:0"]  # fmt: skip
    server = await anyio.to_thread.run_sync(
        lambda: subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    )
    try:
        assert server.stdout is not None
        with anyio.fail_after(60):
            first = await anyio.to_thread.run_sync(server.stdout.readline)
        assert first.startswith("glam dashboard: http://"), first
        base = first.split()[2].rstrip("/")
        pages = [
            f"{base}/",
            f"{base}/functions/{quote(stream)}",
            f"{base}/deployments/{quote(deployment)}",
            *(f"{base}/events/{position}" for position in positions),
        ]
        assert len(pages) > 5
        async with aiohttp.ClientSession() as session:
            for page in pages:
                with anyio.fail_after(30):
                    async with session.get(page) as answer:
                        body = await answer.text()
                assert answer.status == 200, (page, body[:500])
                scan.text(f"dashboard page {page.removeprefix(base)}", body)
    finally:
        server.send_signal(signal.SIGINT)
        _, err = await anyio.to_thread.run_sync(lambda: server.communicate(timeout=30))
    scan.text("stderr of glam dashboard", err)
    scan.text("stdout of glam dashboard", first)


async def test_show_secrets_shows_them(tmp_path: Path, demo_account: dict[str, Any]) -> None:
    """Masking is the default, not a loss: asked explicitly, the values are there."""
    outputs = demo_account
    repo = GitRepo(tmp_path / "repo")
    _write_function(repo, outputs)
    repo.commit("c1")
    code, out, _ = await glam("plan", "--render", "--show-secrets", "--repo", str(repo.path))
    assert code == 1
    assert ENV_SECRET in out
    assert INPUT_SECRET in out
    code, out, _ = await glam("plan", "--render", "--repo", str(repo.path))
    assert ENV_SECRET not in out
    assert '"DB_PASSWORD": "****"' in out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Every read the engine's server answers, with the function, deployment and commit filled in.
SERVER_READS = (
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/v1/functions",
    "/api/v1/functions/canary-fn",
    "/api/v1/deployments",
    "/api/v1/deployments/{deployment}",
    "/api/v1/commits",
    "/api/v1/commits/{commit}",
    "/api/v1/repositories/watched",
    "/api/v1/repositories",
    "/api/v1/deployments/lambda",
    "/api/v1/events?since=0&limit=1000",
)


@pytest.mark.slow  # an engine process serving HTTP, read through every endpoint
async def test_no_secret_reaches_the_server_or_its_json_log(
    local_aws: LocalAwsThread, demo_account: dict[str, Any], tmp_path: Path
) -> None:
    """The engine serving HTTP with a JSON log: every API answer, /metrics (parsed as the
    Prometheus text format), the answers to refused requests, and the JSON log lines hold no
    credential, token (the API's bearer token too) or environment value."""
    repo = GitRepo(tmp_path / "repo")
    _write_function(repo, demo_account)
    repo.commit("a function with secrets in its environment")
    canaries = [*CANARIES, Canary("API bearer token", API_TOKEN)]
    scan = CanaryScan(canaries)
    db = tmp_path / "state" / "glam.db"
    log = tmp_path / "glam-run.jsonl"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    with serve_repository(repo.path) as url:
        command = [
            sys.executable, "-m", "engine", "run", "-v", "--log-format", "json",
            "--repo", url, "--token-env", "GIT_TOKEN", "--db", str(db), "--poll", "0.5",
            "--endpoint-url", local_aws.endpoint_url, "--region", local_aws.region,
            "--listen", str(port), "--api-token-env", "GLAM_API_TOKEN", "--auth-reads",
        ]  # fmt: skip
        env = _glam_env({"GLAM_API_TOKEN": API_TOKEN})
        with log.open("wb") as sink:
            process = await anyio.open_process(
                command, env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT
            )
        async with process, aiohttp.ClientSession() as http:
            try:
                deployment = await _first_finished(http, base, auth)
                commit = await _head_commit(http, base, auth)
                for path in SERVER_READS:
                    target = path.format(deployment=deployment, commit=commit)
                    async with http.get(base + target, headers=auth) as answer:
                        body = await answer.text()
                    assert answer.status == 200, (target, body[:500])
                    scan.text(f"GET {target}", body)
                    if target == "/metrics":
                        families = list(text_string_to_metric_families(body))
                        assert any(f.name.startswith("glam_") for f in families)
                for refused in (
                    http.get(f"{base}/api/v1/functions"),
                    http.get(f"{base}/api/v1/functions", headers={"Authorization": "Bearer x"}),
                    http.post(f"{base}/api/v1/sync", json={"repository": url}),
                ):
                    async with refused as answer:
                        assert answer.status == 401
                        scan.text(f"refused {answer.method} {answer.url.path}", await answer.text())
                    scan.text("refused headers", str(dict(answer.headers)))
            finally:
                process.send_signal(signal.SIGTERM)
                with anyio.fail_after(30):
                    await process.wait()
    lines = log.read_text().splitlines()
    assert [json.loads(line) for line in lines if line.startswith("{")]
    scan.text("JSON log of glam run --listen", "\n".join(lines))
    assert len(scan.sinks) > len(SERVER_READS)
    scan.assert_clean()


def _glam_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
    return env | {
        "PYTHONPATH": str(ROOT),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "GIT_TOKEN": GIT_TOKEN,
        **extra,
    }


async def _first_finished(http: aiohttp.ClientSession, base: str, auth: dict[str, str]) -> str:
    with anyio.fail_after(90):
        while True:
            try:
                async with http.get(
                    f"{base}/api/v1/deployments?state=finished", headers=auth
                ) as got:
                    if got.status == 200 and (found := (await got.json())["deployments"]):
                        return str(found[0]["deployment_id"])
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            await anyio.sleep(0.3)


async def _head_commit(http: aiohttp.ClientSession, base: str, auth: dict[str, str]) -> str:
    async with http.get(f"{base}/api/v1/commits", headers=auth) as got:
        commits = (await got.json())["commits"]
    return str(commits[-1]["sha"])
