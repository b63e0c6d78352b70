"""The deployment recipes in docs/deploy stay usable: the systemd unit passes
``systemd-analyze verify`` (with this checkout's glam in ExecStart), and the Dockerfile is
well formed, runs glam in exec form, and its command is one glam accepts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli.main import app

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy"
INSTRUCTIONS = {
    "FROM", "RUN", "COPY", "ADD", "USER", "WORKDIR", "VOLUME", "ENV", "ARG", "LABEL",
    "EXPOSE", "STOPSIGNAL", "ENTRYPOINT", "CMD", "HEALTHCHECK", "SHELL", "ONBUILD",
}  # fmt: skip


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    glam = Path(sys.executable).parent / "glam"
    unit = (DEPLOY / "glam.service").read_text()
    assert "ExecStart=/opt/glam/bin/glam run --config /etc/glam/glam.toml" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    # The documented user and path exist on the target host, not here.
    local = unit.replace("/opt/glam/bin/glam", str(glam))
    local = local.replace("User=glam", "User=root").replace("Group=glam", "Group=root")
    (tmp_path / "glam.service").write_text(local)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "glam.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "glam.service" not in done.stderr, done.stderr


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = text.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        word, _, rest = line.strip().partition(" ")
        out.append((word, rest.strip()))
    return out


def test_dockerfile_is_well_formed_and_runs_glam() -> None:
    steps = _instructions((DEPLOY / "Dockerfile").read_text())
    assert steps[0][0] == "FROM"
    assert {word for word, _ in steps} <= INSTRUCTIONS
    by_word = dict(steps)
    entrypoint = json.loads(by_word["ENTRYPOINT"])  # exec form: glam is PID 1 and gets SIGTERM
    command = json.loads(by_word["CMD"])
    assert entrypoint == ["glam"]
    assert by_word["STOPSIGNAL"] == "SIGTERM"
    assert "USER" in by_word  # not root
    result = CliRunner().invoke(app, [*command, "--help"])  # every option of CMD exists
    assert result.exit_code == 0, result.output
