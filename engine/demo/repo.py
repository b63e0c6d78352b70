"""The demo's sample repository: three functions in Gitmoxi's Lambda format, and the git CLI
commits that change them act by act.

The layout is the one real repositories in this format use::

    lambda/core-infra/terraform/terraform_output.json   what `terraform output -json` prints
    lambda/lambda-sqs/orders_*.json                     fed by an SQS queue (pull mapping)
    lambda/lambda-api/hello_*.json                      behind the HTTP API route
    lambda/lambda-elb/status_*.json                     behind the ALB target group

Every function takes its role, bucket, keys, queue, API and target group from the terraform
output through a ``ref`` input file, exactly as a team whose infrastructure is in Terraform
would. Commits are made with the ``git`` command a user would run (the engine reads the
repository with its own Git library, like any clone it watches).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

TERRAFORM_OUTPUT = "lambda/core-infra/terraform/terraform_output.json"
ALIAS = "PROD"
# Two of engine.local.account.ALARM_NAMES.
ERRORS_ALARM = "glam-demo-errors"
LATENCY_ALARM = "glam-demo-latency"


@dataclass(frozen=True)
class SampleFunction:
    """One function of the sample: where its files live and what it is called in AWS."""

    prefix: str
    name: str
    role: str  # what feeds it, in words


SQS = SampleFunction("lambda/lambda-sqs/orders", "glam-demo-orders", "SQS queue (pull)")
API = SampleFunction("lambda/lambda-api/hello", "glam-demo-hello", "HTTP API route GET /test")
ELB = SampleFunction("lambda/lambda-elb/status", "glam-demo-status", "ALB target group")
FUNCTIONS = (SQS, API, ELB)
# The parts they play: act 2 ships a good version of CANARY, act 3 a broken one of BROKEN, act 4
# deletes RETIRED. Each act has a function of its own, so each function's history tells one
# story in `glam status` and `glam events --stream`.
CANARY, BROKEN, RETIRED = API, ELB, SQS
_ALARMS = {CANARY: [LATENCY_ALARM], BROKEN: [ERRORS_ALARM], RETIRED: []}

_INPUT = {
    "ref": {"file": [TERRAFORM_OUTPUT], "type": "TERRAFORM"},
    "owner": "demo-team",
}


def _definition(fn: SampleFunction, *, code_key: str, handler: str, version: str) -> Any:
    """The ``CreateFunction`` request, a Jinja template over the terraform outputs."""
    return {
        "FunctionName": fn.name,
        "Role": "{{ lambda_exec_role_arn }}",
        "Handler": handler,
        "Runtime": "python3.12",
        "Code": {"S3Bucket": "{{ s3_bucket_name }}", "S3Key": f"{{{{ {code_key} }}}}"},
        "Description": f"glam demo: {fn.role}",
        "Timeout": 15,
        "MemorySize": 128,
        "Environment": {"Variables": {"APP_VERSION": version, "OWNER": "{{ owner }}"}},
        "Tags": {"app": "glam-demo"},
    }


def _deployment(*, wait: int, alarms: list[str]) -> Any:
    return {
        "alias": ALIAS,
        "environment": {"region": "us-east-1"},
        "trafficShiftingConfig": {"type": "CANARY", "percent": 50, "waitInterval": wait},
        "alarms": {"alarmNames": alarms},
        # The embedded AWS makes a version Active within a second: check every second.
        "readinessCheck": {"waitInterval": 1, "maxRetries": 5},
    }


def _sources(fn: SampleFunction) -> Any:
    if fn is SQS:
        return {
            "PullEventSources": {
                "EventSourceMapping": {
                    "EventSourceArn": "{{ sqs_queue_arn }}",
                    # Unqualified on purpose: glam points it at the alias, so queue traffic
                    # follows the blue/green shift.
                    "FunctionName": fn.name,
                    "BatchSize": 10,
                }
            }
        }
    if fn is API:
        return {
            "PushEventSources": [
                {
                    "Service": "apigateway.amazonaws.com",
                    "ApiId": "{{ api_id }}",
                    "RouteId": "{{ route_id }}",
                    "AliasStageVariableName": "lambdaAlias",
                }
            ]
        }
    return {
        "PushEventSources": [
            {
                "Service": "elasticloadbalancing.amazonaws.com",
                "TargetGroupArn": "{{ target_group_arn }}",
            }
        ]
    }


def initial_files(outputs: dict[str, Any], *, wait: int) -> dict[str, Any]:
    """Every file of the first commit, path -> JSON value."""
    files: dict[str, Any] = {TERRAFORM_OUTPUT: outputs}
    for fn in FUNCTIONS:
        code_key = "s3_object_sqs_key" if fn is SQS else "s3_object_blue_key"
        module = "test_lambda_sqs" if fn is SQS else "test_lambda_function"
        handler = f"{module}.lambda_handler"
        files[f"{fn.prefix}_lambdadef.json"] = _definition(
            fn, code_key=code_key, handler=handler, version="1.0 (blue)"
        )
        files[f"{fn.prefix}_lambdadepdef.json"] = _deployment(wait=wait, alarms=_ALARMS[fn])
        files[f"{fn.prefix}_lambdaeventsourcedef.json"] = _sources(fn)
        files[f"{fn.prefix}_lambdainput.json"] = _INPUT
    return files


def green_definition() -> Any:
    """Act 2: CANARY's new, good version (the green code)."""
    return _definition(
        CANARY,
        code_key="s3_object_green_key",
        handler="test_lambda_function.lambda_handler",
        version="2.0 (green)",
    )


def broken_definition() -> Any:
    """Act 3: a version of BROKEN that deploys fine and then fails every request: it points
    at the wrong zip (the SQS handler's), so its handler module does not exist."""
    return _definition(
        BROKEN,
        code_key="s3_object_sqs_key",
        handler="test_lambda_function.lambda_handler",
        version="2.1 (broken)",
    )


class SampleRepo:
    """A fresh git repository at ``path`` on branch ``main``, written through the git CLI.

    Blocking (files and subprocesses): call its methods from a worker thread in async code.
    """

    BRANCH = "main"

    def __init__(self, path: Path) -> None:
        self.path = path
        git = shutil.which("git")
        if git is None:
            raise ConfigError(
                "the demo needs the git command to write its sample repository",
                hint="install git (e.g. apt-get install git) and run the demo again",
            )
        self._git = git

    def git(self, *args: str) -> str:
        # A fixed identity and no system config: the demo works on a machine where git was
        # never configured; `commit` also turns off signing and hooks a user may have set.
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "glam demo",
            "GIT_AUTHOR_EMAIL": "demo@glam.invalid",
            "GIT_COMMITTER_NAME": "glam demo",
            "GIT_COMMITTER_EMAIL": "demo@glam.invalid",
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        done = subprocess.run(
            [self._git, *args], cwd=self.path, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise ConfigError(
                f"git {args[0]} failed in {self.path}: {done.stderr.strip() or done.returncode}",
                hint="check that the demo folder is writable and git works (git --version)",
            )
        return done.stdout.strip()

    def init(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q")
        # Not `init -b`: older git has no such option.
        self.git("symbolic-ref", "HEAD", f"refs/heads/{self.BRANCH}")

    def write(self, files: dict[str, Any]) -> None:
        for rel, value in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(value, indent=2) + "\n")

    def remove(self, rel: str) -> None:
        self.git("rm", "-q", rel)

    def commit(self, message: str) -> str:
        """Commit everything in the work tree; return the new commit id."""
        self.git("add", "-A")
        self.git(
            "-c",
            "commit.gpgsign=false",
            "-c",
            "core.hooksPath=.git/hooks",
            "commit",
            "-q",
            "--no-verify",
            "-m",
            message,
        )
        return self.git("rev-parse", "HEAD")
