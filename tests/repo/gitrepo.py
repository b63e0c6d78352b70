"""Real Git repositories in temporary folders, made with the git CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


class GitRepo:
    def __init__(self, path: Path, branch: str = "main"):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", branch)

    def git(self, *args: str) -> str:
        env = {**os.environ, **GIT_ENV}
        out = subprocess.run(
            ["git", *args], cwd=self.path, env=env, check=True, capture_output=True, text=True
        )
        return out.stdout.strip()

    def write(self, rel: str, content: str | bytes | Any) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        elif isinstance(content, str):
            target.write_text(content)
        else:
            target.write_text(json.dumps(content, indent=2))

    def remove(self, rel: str) -> None:
        self.git("rm", "-q", rel)

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


def function_files(
    repo: GitRepo,
    prefix: str,
    name: str,
    *,
    key: str = "v1.zip",
    env: dict[str, str] | None = None,
    percent: int = 20,
    sources: Any = None,
    inputs: Any = None,
) -> None:
    """Write a minimal valid function group at ``prefix``."""
    definition: dict[str, Any] = {
        "FunctionName": name,
        "Role": "arn:aws:iam::123456789012:role/exec",
        "Handler": "app.handler",
        "Runtime": "python3.12",
        "Code": {"S3Bucket": "code", "S3Key": key},
    }
    if env is not None:
        definition["Environment"] = {"Variables": env}
    repo.write(f"{prefix}_lambdadef.json", definition)
    repo.write(
        f"{prefix}_lambdadepdef.json",
        {
            "alias": "live",
            "environment": {"region": "eu-west-1"},
            "trafficShiftingConfig": {"type": "CANARY", "percent": percent, "waitInterval": 5},
        },
    )
    if sources is not None:
        repo.write(f"{prefix}_lambdaeventsourcedef.json", sources)
    if inputs is not None:
        repo.write(f"{prefix}_lambdainput.json", inputs)
