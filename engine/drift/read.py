"""The live side of a drift comparison, read through the ports.

Per function, in this order, each read only when the one before says there is something to
read:

    GetFunction $LATEST             configuration, CodeSha256, tags (the poll budget)
    GetAlias                        the alias's version and routing (the control plane)
    GetFunction <version>           the version the alias serves (the poll budget)
    GetFunctionCodeSigningConfig    only when code signing is configured
    SourcesApi.inspect              only when the function has event sources: the mappings
                                    (ListEventSourceMappings), each push source's permission
                                    (GetPolicy), target (DescribeTargetHealth) or integration
                                    and route (GetIntegrations, GetRoute)

The ports pace every call; the engine hands this the background lane of its limiters
(engine.runtime.providers), so drift reads wait for deployments, never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.drift.compare import Expected, LiveFunction
from engine.ports import CodeObjects, LambdaApi, SourceDifference, SourcesApi


async def read_live(lambda_api: LambdaApi, sources: SourcesApi, expected: Expected) -> LiveFunction:
    """What AWS serves for ``expected``'s function (module docstring)."""
    name = expected.name
    latest = await lambda_api.get_function(name)
    if latest is None:
        return LiveFunction(latest=None)
    alias = await lambda_api.get_alias(name, expected.alias)
    served = None
    if alias is not None:
        served = await lambda_api.get_function(name, alias.function_version)
    signing = await lambda_api.code_signing_config(name) if expected.signing else None
    found: tuple[SourceDifference, ...] = ()
    wired = expected.desired.event_sources
    if alias is not None and (wired.mappings or wired.push):
        arn = latest.arn.removesuffix(":$LATEST") or name
        found = tuple(await sources.inspect(name, f"{arn}:{expected.alias}", wired))
    return LiveFunction(
        latest=latest,
        alias=alias,
        served=served,
        signing_read=expected.signing,
        signing=signing,
        sources=found,
    )


async def code_sha256(
    code_objects: CodeObjects | None, definition: Mapping[str, Any]
) -> str | None:
    """The CodeSha256 of ``definition``'s S3 code object, read from S3 (None: not S3 code, no
    S3 access, or no such object)."""
    code = dict(definition.get("Code") or {})
    if code_objects is None or "S3Key" not in code or "ZipFile" in code or "ImageUri" in code:
        return None
    version = code.get("S3ObjectVersion")
    return await code_objects.code_sha256(
        str(code.get("S3Bucket", "")), str(code["S3Key"]), str(version) if version else None
    )
