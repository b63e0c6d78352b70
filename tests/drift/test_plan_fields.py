"""``glam plan`` shows per function the fields a deployment changes (old → new, environment
values masked), in text and --json: a function deployed on the embedded AWS by the engine
(real Git, real SQLite), then its files changed."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from engine.local import LocalAwsThread
from tests.drift.support import DEPDEF, lambda_call
from tests.drift.test_cli import _glam
from tests.runtime.support import PREFIX, Setup, outcomes, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

DEF = f"{PREFIX}_lambdadef.json"
ALL_AT_ONCE = {"type": "ALL_AT_ONCE", "waitInterval": 1}


async def _plan(setup: Setup, *args: str) -> tuple[int, str]:
    return await anyio.to_thread.run_sync(
        lambda: _glam(
            "plan",
            "--repo",
            str(setup.repo.path),
            "--db",
            str(setup.db),
            "--region",
            setup.region,
            *args,
        )
    )


def _edit(setup: Setup, path: str, **changes: Any) -> None:
    current = json.loads((setup.repo.path / path).read_text())
    current.update(changes)
    setup.repo.write(path, {k: v for k, v in current.items() if v is not None})


async def _deployed(setup: Setup, **definition: Any) -> None:
    write_function(setup.repo, setup.outputs, traffic=ALL_AT_ONCE)
    _edit(setup, DEF, **definition)
    setup.repo.commit("orders")
    assert outcomes(await setup.run_once()) == ["succeeded"]


async def test_a_removed_memory_size_shows_aws_default(setup: Setup) -> None:
    await _deployed(setup, MemorySize=256, Environment={"Variables": {"TOKEN": "t0ken-old"}})
    _edit(setup, DEF, MemorySize=None, Environment={"Variables": {"TOKEN": "t0ken-new"}})
    setup.repo.commit("memory back to the default, a new token")
    code, output = await _plan(setup)
    assert code == 1, output
    assert "MemorySize: 256 → 128" in output
    assert "Environment.Variables.TOKEN: *** → ***" in output
    assert "t0ken" not in output
    code, output = await _plan(setup, "--json")
    (action,) = json.loads(output)["actions"]
    assert {"path": "MemorySize", "old": 256, "new": 128} in action["fields"]


async def test_a_tag_change(setup: Setup) -> None:
    await _deployed(setup, Tags={"team": "payments"})
    _edit(setup, DEF, Tags={"team": "billing", "tier": "gold"})
    setup.repo.commit("tags")
    code, output = await _plan(setup)
    assert code == 1, output
    assert "tags.team: payments → billing" in output
    assert "tags.tier: (absent) → gold" in output
    # Tags are not in a version: the plan says nothing will be published, as the saga does.
    assert "~ update" in output
    assert "nothing to publish" in output
    assert "~ new version" not in output


async def test_a_region_change_names_the_field(setup: Setup) -> None:
    await _deployed(setup)
    depdef = json.loads((setup.repo.path / DEPDEF).read_text())
    setup.repo.write(DEPDEF, depdef | {"environment": {"region": "eu-west-1"}})
    setup.repo.commit("to eu-west-1")
    code, output = await _plan(setup)
    assert code == 1, output
    assert "+ create" in output
    assert "settings.region: (absent) → eu-west-1" in output, output


async def test_a_create_only_change_is_refused_at_plan_time(setup: Setup) -> None:
    """PackageType cannot change on an existing function: the plan refuses it, naming the
    file and the fix, and the engine deploys nothing for it."""
    await _deployed(setup)
    _edit(setup, DEF, PackageType="Image", Code={"ImageUri": "1.dkr.ecr/x:1"}, Runtime=None)
    _edit(setup, DEF, Handler=None)
    setup.repo.commit("to an image")
    code, output = await _plan(setup)
    assert code == 2, output
    assert "only a new function can take this change: PackageType: Zip → Image" in output
    assert f"{PREFIX}_lambdadef.json" in output
    assert "or give the function a new FunctionName" in output
    report = await setup.run_once()
    assert outcomes(report) == []


async def test_live_compares_with_aws_and_adopts_what_matches(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """--live: the fields are AWS's values against the definition's; once AWS serves the
    definition (changed and published by hand), the function is adopted as it is."""
    await _deployed(setup)
    _edit(setup, DEF, Description="now described")
    setup.repo.commit("a description")
    args = ("--live", "--endpoint-url", setup.endpoint_url)
    code, output = await _plan(setup, *args)
    assert code == 1, output
    assert '$LATEST.Description: "" → now described' in output, output
    await lambda_call(
        local_aws,
        "update_function_configuration",
        FunctionName="orders",
        Description="now described",
    )
    await lambda_call(local_aws, "get_function", FunctionName="orders")
    version = (await lambda_call(local_aws, "publish_version", FunctionName="orders"))["Version"]
    await lambda_call(
        local_aws, "update_alias", FunctionName="orders", Name="live", FunctionVersion=version
    )
    _, output = await _plan(setup, *args, "--json")
    (action,) = json.loads(output)["actions"]
    assert action.get("adopt") is True, action
    assert action["fields"] == []
