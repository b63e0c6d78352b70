"""``LambdaApi`` on aiobotocore: paced, translated, and retried only where that is safe.

Every call waits for the account+region's shared :class:`RateLimiter` (GetFunction on the poll
budget), and every failure leaves as a GlamError (engine/aws/errors.py). What is retried here:

- throttling (``AwsThrottled``): the limiter pauses everyone for Retry-After, then jittered
  backoff. A throttled request was not applied, so this is safe for mutations too;
- retryable read failures (5xx, dropped connection on a read), and a connection that was never
  established (nothing was sent);
- ``ResourceConflictException`` while an update is in progress, or ``ResourceNotReady``: poll
  GetFunction until ``State`` is not Pending and ``LastUpdateStatus`` is not InProgress (with a
  deadline), then repeat.

What is never retried here: ``AwsAmbiguous`` (a 5xx or a lost response on a mutation). The
outcome is unknown, so the saga reads AWS before deciding anything (the write-ahead rule:
a StepStarted with no outcome after it is resolved by reading AWS).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from engine.aws.errors import translate
from engine.aws.ratelimit import Pacer
from engine.aws.rules import LATEST, refuse_unsafe_alias, zip_bytes
from engine.errors import (
    AwsAmbiguous,
    AwsConflict,
    AwsError,
    AwsInvalid,
    AwsNotFound,
    AwsThrottled,
)
from engine.ports import AliasInfo, Clock, FunctionInfo, InvokeAnswer, VersionInfo
from engine.runtime.clock import SYSTEM_CLOCK

log = logging.getLogger("glam.aws")


@dataclass(frozen=True, slots=True)
class CallRetry:
    """How glam repeats one failed AWS call that is safe to repeat (data, not code paths).
    A saga step that still fails is retried as a whole by the saga's own policy, above this.

    ``attempts`` counts calls (1 = no retry). The n-th retry waits ``min(cap, base * 2**n)``
    shortened by up to ``jitter`` of itself at random, so concurrent sagas spread out.
    ``settle_timeout`` bounds the wait for an in-progress update; ``settle_poll`` is the
    GetFunction polling interval while waiting.
    """

    attempts: int = 6
    base: float = 0.25
    cap: float = 8.0
    jitter: float = 0.5
    settle_timeout: float = 300.0
    settle_poll: float = 1.0

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        raw = min(self.cap, self.base * 2.0 ** max(0, retry - 1))
        return raw * (1.0 - self.jitter * rng.random())


# Fields of the update requests, taken from botocore's service model so that a field AWS adds
# later passes through without a glam release; everything else in a definition is ignored.
def _members(client: Any, operation: str) -> frozenset[str]:
    shape = client.meta.service_model.operation_model(operation).input_shape
    return frozenset(shape.members)


class AwsLambda:
    """The Lambda control plane of one account and region (``engine.ports.LambdaApi``).

    ``client`` is an open aiobotocore ``lambda`` client; ``limiter`` the shared limiter of its
    account and region. ``clock`` (``engine.ports.Clock``) and ``rng`` are injectable so tests
    never wait.
    Deletes are idempotent: deleting what is already gone succeeds.
    """

    def __init__(
        self,
        client: Any,
        limiter: Pacer,
        *,
        policy: CallRetry | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._policy = policy or CallRetry()
        self._clock = clock
        self._rng = rng or random.Random()
        self._config_fields = _members(client, "UpdateFunctionConfiguration")
        self._code_fields = _members(client, "UpdateFunctionCode")

    # ---- reads -------------------------------------------------------------------------------

    async def get_function(self, name: str, qualifier: str | None = None) -> FunctionInfo | None:
        """The function (``$LATEST`` or a version), or None when it does not exist."""
        kwargs: dict[str, Any] = {"FunctionName": name}
        if qualifier:
            kwargs["Qualifier"] = qualifier
        try:
            answer = await self._call("GetFunction", "get_function", kwargs, poll=True)
        except AwsNotFound:
            return None
        info = function_info(answer.get("Configuration") or {})
        tags = {str(k): str(v) for k, v in (answer.get("Tags") or {}).items()}
        image = str((answer.get("Code") or {}).get("ImageUri") or "")
        return replace(info, tags=tags, image_uri=image)

    async def list_versions(self, name: str) -> list[VersionInfo]:
        """Published versions, oldest first (``$LATEST`` excluded); [] if no such function."""
        versions: list[VersionInfo] = []
        marker: str | None = None
        while True:
            kwargs: dict[str, Any] = {"FunctionName": name, "MaxItems": 50}
            if marker:
                kwargs["Marker"] = marker
            try:
                answer = await self._call(
                    "ListVersionsByFunction", "list_versions_by_function", kwargs
                )
            except AwsNotFound:
                return []
            for item in answer.get("Versions") or []:
                if item.get("Version") != LATEST:
                    versions.append(version_info(item))
            marker = answer.get("NextMarker")
            if not marker:
                break
        versions.sort(key=lambda v: int(v.version) if v.version.isdigit() else 0)
        return versions

    async def get_alias(self, name: str, alias: str) -> AliasInfo | None:
        """The alias, or None when it (or the function) does not exist."""
        try:
            answer = await self._call(
                "GetAlias", "get_alias", {"FunctionName": name, "Name": alias}
            )
        except AwsNotFound:
            return None
        return alias_info(answer)

    # ---- mutations ---------------------------------------------------------------------------

    async def create_function(self, request: Mapping[str, Any]) -> FunctionInfo:
        """CreateFunction with the rendered definition (``Code.ZipFile`` may be base64 text)."""
        kwargs = dict(request)
        if isinstance(kwargs.get("Code"), Mapping):
            kwargs["Code"] = _code_request(kwargs["Code"])
        answer = await self._call(
            "CreateFunction", "create_function", kwargs, mutating=True, settle=None
        )
        return function_info(answer)

    async def update_function_configuration(
        self, name: str, configuration: Mapping[str, Any], revision_id: str | None = None
    ) -> FunctionInfo:
        """UpdateFunctionConfiguration with the fields of ``configuration`` that the operation
        accepts (a full CreateFunction request may be passed: Code, Tags, Publish... are left
        out)."""
        kwargs = {k: v for k, v in configuration.items() if k in self._config_fields}
        kwargs["FunctionName"] = name
        if revision_id:
            kwargs["RevisionId"] = revision_id
        answer = await self._call(
            "UpdateFunctionConfiguration",
            "update_function_configuration",
            kwargs,
            mutating=True,
            settle=name,
        )
        return function_info(answer)

    async def update_function_code(
        self, name: str, code: Mapping[str, Any], revision_id: str | None = None
    ) -> FunctionInfo:
        """UpdateFunctionCode from a ``Code`` mapping (ZipFile | S3Bucket/S3Key | ImageUri)."""
        kwargs = {k: v for k, v in _code_request(code).items() if k in self._code_fields}
        kwargs["FunctionName"] = name
        if revision_id:
            kwargs["RevisionId"] = revision_id
        answer = await self._call(
            "UpdateFunctionCode", "update_function_code", kwargs, mutating=True, settle=name
        )
        return function_info(answer)

    async def publish_version(
        self,
        name: str,
        *,
        code_sha256: str | None,
        revision_id: str | None,
        description: str | None = None,
    ) -> VersionInfo:
        """PublishVersion guarded by CodeSha256 and RevisionId when given: AWS refuses to
        publish anything but the code and configuration the saga checked. Without a
        ``description`` the version keeps the function's own."""
        kwargs: dict[str, Any] = {"FunctionName": name}
        if description is not None:
            kwargs["Description"] = description
        if code_sha256:
            kwargs["CodeSha256"] = code_sha256
        if revision_id:
            kwargs["RevisionId"] = revision_id
        answer = await self._call(
            "PublishVersion", "publish_version", kwargs, mutating=True, settle=name
        )
        return version_info(answer)

    async def delete_version(self, name: str, version: str) -> None:
        """Delete one published version; a version already gone is not an error."""
        if not version.isdigit():
            raise AwsInvalid(
                f"DeleteFunction: {version!r} is not a published version",
                operation="DeleteFunction",
                hint="only numbered versions are deleted one by one",
            )
        try:
            await self._call(
                "DeleteFunction",
                "delete_function",
                {"FunctionName": name, "Qualifier": version},
                mutating=True,
                settle=name,
            )
        except AwsNotFound:
            return

    async def delete_function(self, name: str) -> None:
        """Delete the function and all its versions; a function already gone is not an error."""
        try:
            await self._call(
                "DeleteFunction",
                "delete_function",
                {"FunctionName": name},
                mutating=True,
                settle=name,
            )
        except AwsNotFound:
            return

    async def invoke(self, function: str, payload: Mapping[str, Any]) -> InvokeAnswer:
        """Invoke (RequestResponse), paced on the poll budget (the data plane does not count
        against the control plane's quota); a 5xx or lost answer is ambiguous."""
        kwargs = {
            "FunctionName": function,
            "InvocationType": "RequestResponse",
            "Payload": json.dumps(dict(payload)).encode(),
        }
        answer = await self._call("Invoke", "invoke", kwargs, mutating=True, poll=True)
        body = answer.get("Payload")
        data: bytes = await body.read() if body is not None else b""
        return InvokeAnswer(payload=data, function_error=answer.get("FunctionError") or None)

    async def create_alias(
        self, name: str, alias: str, version: str, routing: Mapping[str, float] | None = None
    ) -> AliasInfo:
        """CreateAlias at ``version``, with routing when given."""
        weights = refuse_unsafe_alias("CreateAlias", version, routing)
        kwargs: dict[str, Any] = {"FunctionName": name, "Name": alias, "FunctionVersion": version}
        if weights:
            kwargs["RoutingConfig"] = {"AdditionalVersionWeights": weights}
        answer = await self._call("CreateAlias", "create_alias", kwargs, mutating=True, settle=name)
        return alias_info(answer)

    async def update_alias(
        self,
        name: str,
        alias: str,
        version: str,
        routing: Mapping[str, float] | None,
        revision_id: str | None = None,
    ) -> AliasInfo:
        """Point the alias at ``version``; ``routing`` None or empty clears the routing."""
        weights = refuse_unsafe_alias("UpdateAlias", version, routing)
        kwargs: dict[str, Any] = {
            "FunctionName": name,
            "Name": alias,
            "FunctionVersion": version,
            # An empty map is how AWS clears routing; leaving RoutingConfig out keeps the old one.
            "RoutingConfig": {"AdditionalVersionWeights": weights},
        }
        if revision_id:
            kwargs["RevisionId"] = revision_id
        answer = await self._call("UpdateAlias", "update_alias", kwargs, mutating=True, settle=name)
        return alias_info(answer)

    async def delete_alias(self, name: str, alias: str) -> None:
        """DeleteAlias; an alias already gone is not an error."""
        try:
            await self._call(
                "DeleteAlias",
                "delete_alias",
                {"FunctionName": name, "Name": alias},
                mutating=True,
                settle=name,
            )
        except AwsNotFound:
            return

    # ---- function-level attributes (not versioned) -------------------------------------------

    async def tag_function(self, arn: str, tags: Mapping[str, str]) -> None:
        """TagResource: set ``tags`` on the function ``arn`` (unqualified)."""
        kwargs = {"Resource": arn, "Tags": dict(tags)}
        await self._call("TagResource", "tag_resource", kwargs, mutating=True)

    async def untag_function(self, arn: str, keys: Sequence[str]) -> None:
        """UntagResource: remove the tags ``keys`` from the function ``arn``."""
        kwargs = {"Resource": arn, "TagKeys": list(keys)}
        await self._call("UntagResource", "untag_resource", kwargs, mutating=True)

    async def code_signing_config(self, name: str) -> str | None:
        """The ARN of the function's code-signing configuration, or None."""
        answer = await self._call(
            "GetFunctionCodeSigningConfig",
            "get_function_code_signing_config",
            {"FunctionName": name},
        )
        return str(answer.get("CodeSigningConfigArn") or "") or None

    async def put_code_signing_config(self, name: str, arn: str) -> None:
        """PutFunctionCodeSigningConfig."""
        await self._call(
            "PutFunctionCodeSigningConfig",
            "put_function_code_signing_config",
            {"FunctionName": name, "CodeSigningConfigArn": arn},
            mutating=True,
            settle=name,
        )

    async def delete_code_signing_config(self, name: str) -> None:
        """DeleteFunctionCodeSigningConfig; none to delete is not an error."""
        try:
            await self._call(
                "DeleteFunctionCodeSigningConfig",
                "delete_function_code_signing_config",
                {"FunctionName": name},
                mutating=True,
                settle=name,
            )
        except AwsNotFound:
            return

    # ---- the one call path -------------------------------------------------------------------

    async def _call(
        self,
        operation: str,
        method: str,
        kwargs: dict[str, Any],
        *,
        mutating: bool = False,
        poll: bool = False,
        settle: str | None = None,
    ) -> Any:
        """Call ``method`` paced and translated, retrying what is safe to retry (module doc)."""
        policy = self._policy
        retries = 0
        settle_deadline: float | None = None
        while True:
            # The call counts against the quota until its answer is back (engine.aws.ratelimit).
            async with self._limiter.call(poll=poll):
                try:
                    answer = await getattr(self._client, method)(**kwargs)
                except Exception as exc:  # every failure is translated
                    error = translate(exc, operation, mutating=mutating)
                else:
                    if isinstance(answer, dict):
                        answer.pop("ResponseMetadata", None)
                    return answer

            if isinstance(error, AwsAmbiguous) or not error.retryable:
                raise error from None
            if isinstance(error, AwsConflict) and settle is not None:
                # Waiting for the update is not a blind retry: it does not count as an attempt,
                # but it has its own deadline.
                now = self._clock.monotonic()
                if settle_deadline is None:
                    settle_deadline = now + policy.settle_timeout
                if now >= settle_deadline:
                    raise error from None
                log.debug("%s on %s: update in progress, waiting", operation, settle)
                await self._wait_settled(settle, settle_deadline, error)
                continue
            retries += 1
            if retries >= policy.attempts:
                raise error from None
            if isinstance(error, AwsThrottled):
                self._limiter.throttled(error.retry_after, poll=poll)
            delay = policy.delay(retries, self._rng)
            log.debug("%s: %s; retry %d in %.2fs", operation, error.code or error, retries, delay)
            await self._clock.sleep(delay)

    async def _wait_settled(self, name: str, deadline: float, cause: AwsError) -> None:
        """Poll GetFunction until no update is in progress and the function is not Pending.

        It sleeps first: AWS just said "in progress", and a conflict that GetFunction does not
        show (it lags a little) must not turn into a tight loop of repeated calls."""
        while True:
            await self._clock.sleep(self._policy.settle_poll)
            info = await self.get_function(name)
            if info is None:
                return  # gone: the repeated call will say so precisely
            if info.state != "Pending" and info.last_update_status != "InProgress":
                return
            if self._clock.monotonic() >= deadline:
                raise cause


def _code_request(code: Mapping[str, Any]) -> dict[str, Any]:
    request = dict(code)
    archive = zip_bytes(code)
    if archive is not None:
        request["ZipFile"] = archive
    return request


def function_info(config: Mapping[str, Any]) -> FunctionInfo:
    """A ``FunctionConfiguration`` as the port's ``FunctionInfo``."""
    raw = {k: v for k, v in config.items() if k != "ResponseMetadata"}
    return FunctionInfo(
        name=str(raw.get("FunctionName", "")),
        arn=str(raw.get("FunctionArn", "")),
        version=str(raw.get("Version", LATEST)),
        # Emulators may omit the state fields; absent means settled.
        state=str(raw.get("State") or "Active"),
        last_update_status=str(raw.get("LastUpdateStatus") or "Successful"),
        code_sha256=str(raw.get("CodeSha256", "")),
        revision_id=str(raw.get("RevisionId", "")),
        description=str(raw.get("Description", "")),
        state_reason=str(raw.get("StateReason") or raw.get("LastUpdateStatusReason") or ""),
        configuration=raw,
    )


def version_info(config: Mapping[str, Any]) -> VersionInfo:
    """A published version's ``FunctionConfiguration`` as ``VersionInfo``."""
    return VersionInfo(
        version=str(config.get("Version", "")),
        code_sha256=str(config.get("CodeSha256", "")),
        description=str(config.get("Description", "")),
        revision_id=str(config.get("RevisionId", "")),
    )


def alias_info(answer: Mapping[str, Any]) -> AliasInfo:
    """An ``AliasConfiguration`` as ``AliasInfo`` (routing empty when there is none)."""
    routing = (answer.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return AliasInfo(
        name=str(answer.get("Name", "")),
        function_version=str(answer.get("FunctionVersion", "")),
        routing={str(k): float(v) for k, v in routing.items()},
        revision_id=str(answer.get("RevisionId", "")),
        arn=str(answer.get("AliasArn", "")),
    )
