"""``glam run --listen`` in a process of its own: it serves on loopback, refuses to expose
itself, and stops on SIGTERM with its server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import anyio
import pytest

from tests.runtime.support import Setup, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
GLAM = [sys.executable, "-c", "from engine.cli.main import main; main()"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["GLAM_TEST_TOKEN"] = "t0ken-for-the-cli-test"
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_glam_run_listen_serves_and_stops_on_sigterm(setup: Setup) -> None:
    """The engine process answers /healthz and the API on 127.0.0.1, logs where it serves
    (never the token), and exits 0 within seconds of SIGTERM."""
    write_function(setup.repo, setup.outputs, traffic={"type": "ALL_AT_ONCE", "waitInterval": 0})
    setup.repo.commit("add orders")
    port = _free_port()
    command = [
        *GLAM, "run", "--repo", str(setup.repo.path), "--db", str(setup.db),
        "--endpoint-url", setup.endpoint_url, "--region", setup.region, "--poll", "0.5",
        "--listen", str(port), "--api-token-env", "GLAM_TEST_TOKEN",
    ]  # fmt: skip
    log_file = setup.db.parent.parent / "glam-run.log"
    with log_file.open("wb") as sink:
        process = await anyio.open_process(
            command, env=_env(), cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT
        )
    async with process:
        try:
            url = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as http:
                with anyio.fail_after(60):
                    while True:
                        try:
                            async with http.get(f"{url}/api/v1/deployments?state=finished") as got:
                                if got.status == 200 and (await got.json())["deployments"]:
                                    break
                        except aiohttp.ClientConnectionError:
                            pass  # not listening yet
                        await anyio.sleep(0.2)
                async with http.get(f"{url}/readyz") as answer:
                    assert answer.status == 200
                async with http.get(f"{url}/api/v1/functions") as answer:
                    body = await answer.json()
                assert [f["name"] for f in body["functions"]] == ["orders"]
                async with http.post(f"{url}/api/v1/sync", json={"repository": "x"}) as answer:
                    assert answer.status == 401
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                await process.wait()
        finally:
            if process.returncode is None:
                process.kill()  # it did not stop: do not leave it behind
    output = log_file.read_text()
    assert process.returncode == 0, output
    assert f"serving on http://127.0.0.1:{port}" in output
    assert "t0ken-for-the-cli-test" not in output


@pytest.mark.parametrize("how", ["flags", "configuration"])
async def test_glam_run_serving_starts_with_no_repository_and_is_given_one(
    setup: Setup, how: str
) -> None:
    """``glam run --listen`` with neither --repo nor --config, or ``--config`` with a
    ``[server]`` and no ``[[repository]]``, watches nothing until a repository is added
    through the API, then deploys it."""
    write_function(setup.repo, setup.outputs, traffic={"type": "ALL_AT_ONCE", "waitInterval": 0})
    setup.repo.commit("add orders")
    port = _free_port()
    command = [
        *GLAM, "run", "--db", str(setup.db), "--endpoint-url", setup.endpoint_url,
        "--region", setup.region, "--poll", "0.5",
    ]  # fmt: skip
    if how == "flags":
        command += ["--listen", str(port), "--api-token-env", "GLAM_TEST_TOKEN"]
    else:
        config = setup.db.parent.parent / "glam.toml"
        config.write_text(f'[server]\nlisten = "127.0.0.1:{port}"\napi_token = "GLAM_TEST_TOKEN"\n')
        command += ["--config", str(config)]
    log_file = setup.db.parent.parent / "glam-run.log"
    with log_file.open("wb") as sink:
        process = await anyio.open_process(
            command, env=_env(), cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT
        )
    async with process:
        try:
            url = f"http://127.0.0.1:{port}/api/v1"
            auth = {"Authorization": "Bearer t0ken-for-the-cli-test"}
            async with aiohttp.ClientSession() as http:
                with anyio.fail_after(60):
                    while True:
                        try:
                            async with http.get(f"{url}/repositories") as got:
                                if got.status == 200:
                                    assert await got.json() == []
                                    break
                        except aiohttp.ClientConnectionError:
                            pass  # not listening yet
                        await anyio.sleep(0.2)
                added = {"repo_url": str(setup.repo.path), "branches": ["main"]}
                async with http.post(f"{url}/repositories/add", json=added, headers=auth) as got:
                    assert got.status == 200, await got.text()
                with anyio.fail_after(60):
                    while True:
                        async with http.get(f"{url}/deployments?state=finished") as got:
                            if (await got.json())["deployments"]:
                                break
                        await anyio.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                await process.wait()
        finally:
            if process.returncode is None:
                process.kill()  # it did not stop: do not leave it behind
    output = log_file.read_text()
    assert process.returncode == 0, output
    assert f"watching {setup.repo.path} main" in output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(["--listen", "0.0.0.0:0"], 1, "refusing to listen on 0.0.0.0", id="exposed"),
        pytest.param(
            ["--listen", "0.0.0.0:0", "--allow-remote"], 1, "needs an API token", id="no-token"
        ),
        pytest.param(["--api-token-env", "T"], 2, "need --listen", id="no-listen"),
        pytest.param(["--listen", "nope"], 1, "has no port", id="bad-address"),
    ],
)
async def test_glam_run_refuses_a_server_that_cannot_be_safe(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    command = [*GLAM, "run", "--repo", str(tmp_path), "--db", str(tmp_path / "g.db"), *args]
    with anyio.fail_after(60):
        done = await anyio.run_process(command, env=_env(), cwd=ROOT, check=False)
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == code, output
    assert message in output
    assert not (tmp_path / "g.db").exists()
