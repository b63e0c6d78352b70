"""Notifications from ``glam run --once --config glam.toml`` in a subprocess on the embedded
AWS: the file names a Slack-compatible sink (on 127.0.0.1) by an environment variable; the
sink hears a deployment's start and its promote, with a link through the public URL."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from engine.local import LocalAwsThread
from tests.notify.test_notify import Sink
from tests.runtime.support import Setup, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
NOW = {"type": "ALL_AT_ONCE", "waitInterval": 0}


async def test_glam_run_announces_a_deployment_to_slack(
    setup: Setup, local_aws: LocalAwsThread, sink: Sink, tmp_path: Path
) -> None:
    write_function(setup.repo, setup.outputs, traffic=NOW)
    setup.repo.commit("add orders")
    config = tmp_path / "glam.toml"
    config.write_text(
        "\n".join(
            [
                "[engine]",
                f'db = "{setup.db}"',
                f'region = "{setup.region}"',
                f'endpoint_url = "{setup.endpoint_url}"',
                'public_url = "https://glam.example"',
                "poll = 0.2",
                "[[repository]]",
                f'path = "{setup.repo.path}"',
                "[[repository.notify]]",
                'kind = "slack"',
                'url = "GLAM_TEST_SLACK_URL"',
                'events = ["started", "promoted", "rolled_back"]',
            ]
        )
        + "\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["GLAM_TEST_SLACK_URL"] = sink.url
    args = [sys.executable, "-m", "engine", "run", "--config", str(config), "--once"]
    with anyio.fail_after(90):
        done = await anyio.run_process(args, env=env, cwd=ROOT, check=False)
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, output
    texts = [p["text"] for p in sink.received]
    assert texts == [
        f":rocket: deployment started: orders ({setup.region})",
        f":white_check_mark: deployment promoted: orders ({setup.region})",
    ]
    button = sink.received[1]["blocks"][-1]["elements"][0]
    assert button["url"].startswith("https://glam.example/api/v1/deployments/")
    assert sink.url not in output  # the URL is a secret: never logged
    local_aws.journal.check_invariants()
