"""Hook functions in the embedded AWS: Python code that really runs on Invoke
(engine.local._moto_invoke), so a test decides a hook's answer by the code it deploys."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from engine.local import LocalAwsThread
from engine.local.clients import aws_client

# Handlers a test deploys as a hook: what each one answers.
SUCCEEDS = "def handler(event, context):\n    return {'status': 'Succeeded', 'seen': event}\n"
FAILS = (
    "def handler(event, context):\n"
    "    return {'status': 'Failed', 'reason': 'p99 of the smoke test is 2.3 s'}\n"
)
RAISES = (
    "def handler(event, context):\n    raise RuntimeError('smoke test could not reach orders')\n"
)
SLEEPS = "import time\n\ndef handler(event, context):\n    time.sleep(5)\n    return {}\n"


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hook.py", source)
    return buffer.getvalue()


async def create_hook(
    aws: LocalAwsThread, outputs: dict[str, Any], name: str, source: str, runs_for: int = 10
) -> str:
    """Create the Python function ``name`` whose ``hook.handler`` is ``source`` (its Lambda
    ``Timeout`` is ``runs_for`` seconds); its ARN."""
    role = outputs["lambda_exec_role_arn"]["value"]
    async with aws_client("lambda", aws.moto_url, region=aws.region) as lam:
        made = await lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="hook.handler",
            Code={"ZipFile": _zip(source)},
            Timeout=runs_for,
        )
    return str(made["FunctionArn"])
