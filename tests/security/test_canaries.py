"""The secrets canary suite (redteam X1-X9, issue 17): canary values in the AWS credentials,
in a git token (given by ``--token-env`` and, separately, in the URL), in a function's
environment and in a template input, and every place glam writes scanned for them.

Scanned: stdout and stderr of ``glam run -v`` (both token forms), ``plan --render`` and
``--json``, ``status`` (all, one, ``--json``), ``events`` (text and ``--json``), ``replay``
(text, ``--json``, ``--verify``) and ``db info``; the log database (file, ``-wal``, ``-shm``
and every table); the repository mirror's config and the whole data folder. glam has no JSON
log, metrics or API yet: when it does, each is one more sink here.

Credentials and tokens may appear nowhere. A function's environment (and the template input
that fills it) may appear in the log database only: that is the desired state glam deploys,
kept in a file only its owner can read. Everything that shows events or definitions masks it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

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


@pytest.mark.slow  # some twenty glam processes, one after another
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
        with_token = url.replace("http://", f"http://x-access-token:{URL_TOKEN}@")
        url_db = tmp_path / "url-state" / "glam.db"
        record("run (URL token)", await glam("run", "--once", "-v", "--repo", with_token,
                                             "--db", str(url_db), *aws))  # fmt: skip
        for command in (
            ["plan", "--render", "--repo", url, "--token-env", "GIT_TOKEN", "--db", str(db)],
            ["plan", "--render", "--json", "--repo", with_token],
        ):
            record(" ".join(command[:2]), await glam(*command))
    for command in (
        ["status"],
        ["status", "canary-fn"],
        ["status", "--json"],
        ["events"],
        ["events", "--json"],
        ["replay"],
        ["replay", "--json"],
        ["replay", "--verify"],
        ["db", "info"],
    ):
        record(" ".join(command), await glam(*command, "--db", str(db)))

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
