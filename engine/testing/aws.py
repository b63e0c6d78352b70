"""``FakeAws``: an in-memory Lambda control plane, CloudWatch alarms and S3 code objects.

A real implementation of ``engine.ports.LambdaApi``, ``AlarmsApi`` and ``CodeObjects`` for the
fast tests — not
a mock: it keeps state, numbers versions, changes RevisionId on every mutation and refuses what
AWS refuses. Rules it enforces:

- ``CreateFunction`` leaves the function ``Pending`` for ``pending_polls`` GetFunction calls;
  an update leaves ``LastUpdateStatus`` ``InProgress`` for ``update_polls`` calls. Meanwhile
  Update*, PublishVersion and DeleteFunction(version) fail with a retryable ``AwsConflict``.
- Versions are numbered 1, 2, ...; PublishVersion with nothing changed since the last version
  returns that version (as AWS does); CodeSha256/RevisionId guards are checked.
- Aliases: target ``$LATEST``, more than one additional version, a weight outside [0, 1] or an
  unknown version -> ``AwsInvalid``; deleting a version an alias or its routing references ->
  ``AwsConflict`` (not retryable).
- Deletes are idempotent, as in the adapter: deleting what is gone succeeds.

Code in S3 has the CodeSha256 of an object ``put_object`` stored, or else a stable stand-in
digest of its reference (``code_sha256`` answers None for an object never stored).

Tests steer it with ``fail_next`` (raise an error on the next call of an operation),
``apply_then_fail`` (apply the call, then raise ``AwsAmbiguous``: the response was lost),
``fail_activation``, ``set_alarm``/``delete_alarm``, and read ``journal``: every call as
``(operation, args)`` in order, failed ones included.
"""

from __future__ import annotations

import copy
import itertools
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import anyio

from engine.aws.rules import LATEST, code_sha256, refuse_unsafe_alias
from engine.errors import AwsAmbiguous, AwsConflict, AwsError, AwsInvalid
from engine.ports import AliasInfo, FunctionInfo, InvokeAnswer, VersionInfo
from engine.testing.aws_records import (
    Alias,
    Function,
    Version,
    info_of,
    not_found,
    precondition,
    sha256_of,
    version_info_of,
)

# Keys of a CreateFunction request that are not part of the function's configuration.
_NOT_CONFIGURATION = frozenset(
    {"Code", "Publish", "Tags", "PublishTo", "FunctionName", "CodeSigningConfigArn"}
)
_CODE_SOURCES = ("ZipFile", "S3Bucket", "S3Key", "S3ObjectVersion", "ImageUri")
_T = TypeVar("_T")
_ALARM_STATES = frozenset({"OK", "ALARM", "INSUFFICIENT_DATA"})


class FakeAws:
    """In-memory ``LambdaApi`` + ``AlarmsApi`` for one account and region."""

    def __init__(
        self,
        *,
        account: str = "123456789012",
        region: str = "us-east-1",
        pending_polls: int = 1,
        update_polls: int = 1,
    ) -> None:
        self.account = account
        self.region = region
        self.pending_polls = pending_polls
        self.update_polls = update_polls
        self.journal: list[tuple[str, dict[str, Any]]] = []
        self._functions: dict[str, Function] = {}
        self._alarms: dict[str, str] = {}
        self._objects: dict[tuple[str, str], bytes] = {}
        self._revisions = itertools.count(1)
        self._faults: dict[str, deque[AwsError | None]] = defaultdict(deque)
        self._hooks: dict[str, InvokeAnswer] = {}
        self._served: dict[tuple[str, str, str], int] = {}  # (function, alias, version) -> n

    # ---- steering (tests) --------------------------------------------------------------------

    def fail_next(self, operation: str, error: AwsError, times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` (e.g. "UpdateAlias") raise ``error``
        without changing anything."""
        self._faults[operation].extend([error] * times)

    def apply_then_fail(self, operation: str, times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` take effect, then raise ``AwsAmbiguous``
        (as when the response to a mutation is lost)."""
        self._faults[operation].extend([None] * times)

    def fail_activation(self, name: str, reason: str = "injected failure") -> None:
        """The function's current (or next) Pending/InProgress period ends Failed."""
        self._fn(name, "FailActivation").fail_next_settle = reason

    def set_invocations(self, function: str, alias: str, version: str, count: int) -> None:
        """What a traffic gate reads for ``version`` through ``alias`` (any window)."""
        self._served[(function, alias, version)] = count

    def set_alarm(self, name: str, state: str) -> None:
        """Create or set a CloudWatch alarm (OK | ALARM | INSUFFICIENT_DATA)."""
        if state not in _ALARM_STATES:
            raise ValueError(f"alarm state must be one of {sorted(_ALARM_STATES)}")
        self._alarms[name] = state

    def answer_hook(self, function: str, body: bytes, function_error: str | None = None) -> None:
        """What an Invoke of ``function`` answers from now on (by default ``{}``)."""
        self._hooks[function] = InvokeAnswer(payload=body, function_error=function_error)

    def delete_alarm(self, name: str) -> None:
        self._alarms.pop(name, None)

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        """Store an S3 object: code that names it gets its CodeSha256."""
        self._objects[(bucket, key)] = data

    def tags_of(self, name: str) -> dict[str, str]:
        return dict(self._fn(name, "Tags").tags)

    def calls(self, operation: str) -> list[dict[str, Any]]:
        """The arguments of every call of ``operation``, in order."""
        return [args for op, args in self.journal if op == operation]

    def function_names(self) -> list[str]:
        return sorted(self._functions)

    # ---- LambdaApi: reads --------------------------------------------------------------------

    async def get_function(self, name: str, qualifier: str | None = None) -> FunctionInfo | None:
        await self._enter("GetFunction", FunctionName=name, Qualifier=qualifier)
        fn = self._functions.get(name)
        if fn is None:
            return None
        self._tick(fn)
        if qualifier in (None, LATEST):
            info = self._latest_info(fn)
        else:
            version = qualifier if qualifier in fn.versions else None
            if version is None and qualifier in fn.aliases:
                version = fn.aliases[qualifier].version
            if version == LATEST:
                info = self._latest_info(fn)  # an alias on $LATEST serves $LATEST
            elif version is None:
                return None
            else:
                info = info_of(fn.versions[version].configuration)
        image = str(info.configuration.get("ImageUri", ""))
        return replace(info, tags=dict(fn.tags), image_uri=image)

    async def list_versions(self, name: str) -> list[VersionInfo]:
        await self._enter("ListVersionsByFunction", FunctionName=name)
        fn = self._functions.get(name)
        if fn is None:
            return []
        return [
            VersionInfo(
                version=v.number,
                code_sha256=v.configuration["CodeSha256"],
                description=v.configuration.get("Description", ""),
                revision_id=v.configuration["RevisionId"],
            )
            for v in sorted(fn.versions.values(), key=lambda v: int(v.number))
        ]

    async def get_alias(self, name: str, alias: str) -> AliasInfo | None:
        await self._enter("GetAlias", FunctionName=name, Name=alias)
        fn = self._functions.get(name)
        if fn is None or alias not in fn.aliases:
            return None
        return self._alias_info(fn, fn.aliases[alias])

    # ---- LambdaApi: mutations ----------------------------------------------------------------

    async def create_function(self, request: Mapping[str, Any]) -> FunctionInfo:
        name = str(request.get("FunctionName", ""))
        fault = await self._enter("CreateFunction", request)
        for required in ("FunctionName", "Role", "Code"):
            if not request.get(required):
                raise AwsInvalid(
                    f"CreateFunction: {required} is required",
                    code="InvalidParameterValueException",
                    operation="CreateFunction",
                    status=400,
                    hint="add it to the function definition",
                )
        if name in self._functions:
            raise AwsConflict(
                f"CreateFunction: Function already exist: {name}",
                code="ResourceConflictException",
                operation="CreateFunction",
                status=409,
                retryable=False,
                hint="it already exists: read it and adopt it",
            )
        configuration = {
            k: copy.deepcopy(v) for k, v in request.items() if k not in _NOT_CONFIGURATION
        }
        configuration.setdefault("Description", "")
        configuration.setdefault("PackageType", "Zip")
        fn = Function(
            name=name,
            configuration=configuration,
            code_sha256=self._code_sha256(request["Code"]),
            revision=self._revision(),
            busy_polls=self.pending_polls,
            tags={str(k): str(v) for k, v in (request.get("Tags") or {}).items()},
            code_signing=request.get("CodeSigningConfigArn"),
        )
        self._set_image(fn, request["Code"])
        if fn.busy_polls <= 0:
            fn.state, fn.last_update_status = "Active", "Successful"
        self._functions[name] = fn
        if request.get("Publish"):
            self._publish(fn, None)
        return self._done(fault, "CreateFunction", self._latest_info(fn))

    async def update_function_configuration(
        self, name: str, configuration: Mapping[str, Any], revision_id: str | None = None
    ) -> FunctionInfo:
        op = "UpdateFunctionConfiguration"
        fault = await self._enter(op, configuration, FunctionName=name, RevisionId=revision_id)
        fn = self._ready(name, op, revision_id)
        for key, value in configuration.items():
            if key not in _NOT_CONFIGURATION and key != "RevisionId":
                fn.configuration[key] = copy.deepcopy(value)
        self._start_update(fn)
        return self._done(fault, op, self._latest_info(fn))

    async def update_function_code(
        self, name: str, code: Mapping[str, Any], revision_id: str | None = None
    ) -> FunctionInfo:
        op = "UpdateFunctionCode"
        fault = await self._enter(op, code, FunctionName=name, RevisionId=revision_id)
        fn = self._ready(name, op, revision_id)
        source = {k: v for k, v in code.items() if k in _CODE_SOURCES}
        if not source:
            raise AwsInvalid(
                f"{op}: no code given (ZipFile, S3Bucket/S3Key or ImageUri)",
                code="InvalidParameterValueException",
                operation=op,
                status=400,
                hint="give the new code",
            )
        fn.code_sha256 = self._code_sha256(source)
        self._set_image(fn, source)
        if "Architectures" in code:
            fn.configuration["Architectures"] = list(code["Architectures"])
        self._start_update(fn)
        return self._done(fault, op, self._latest_info(fn))

    async def publish_version(
        self,
        name: str,
        *,
        code_sha256: str | None,
        revision_id: str | None,
        description: str | None = None,
    ) -> VersionInfo:
        op = "PublishVersion"
        fault = await self._enter(
            op,
            FunctionName=name,
            Description=description,
            CodeSha256=code_sha256,
            RevisionId=revision_id,
        )
        fn = self._ready(name, op, revision_id)
        if code_sha256 and code_sha256 != fn.code_sha256:
            raise AwsInvalid(
                f"{op}: CodeSha256 {code_sha256} does not match the function's code",
                code="InvalidParameterValueException",
                operation=op,
                status=400,
                hint="the code changed since it was read: read it again",
            )
        version = self._publish(fn, description)
        return self._done(fault, op, version_info_of(version))

    async def delete_version(self, name: str, version: str) -> None:
        op = "DeleteFunction"
        fault = await self._enter(op, FunctionName=name, Qualifier=version)
        if version == LATEST or not version.isdigit():
            raise AwsInvalid(
                f"{op}: {version!r} cannot be deleted on its own",
                code="InvalidParameterValueException",
                operation=op,
                status=400,
                hint="only numbered versions are deleted one by one",
            )
        fn = self._functions.get(name)
        if fn is None or version not in fn.versions:
            self._done(fault, op, None)
            return None
        for alias in fn.aliases.values():
            if version == alias.version or version in alias.routing:
                raise AwsConflict(
                    f"{op}: version {version} is referenced by alias {alias.name}",
                    code="ResourceConflictException",
                    operation=op,
                    status=409,
                    retryable=False,
                    hint="move the alias and its routing off the version first",
                )
        del fn.versions[version]
        self._done(fault, op, None)
        return None

    async def delete_function(self, name: str) -> None:
        op = "DeleteFunction"
        fault = await self._enter(op, FunctionName=name)
        self._functions.pop(name, None)
        self._done(fault, op, None)
        return None

    async def create_alias(
        self, name: str, alias: str, version: str, routing: Mapping[str, float] | None = None
    ) -> AliasInfo:
        op = "CreateAlias"
        fault = await self._enter(
            op, FunctionName=name, Name=alias, FunctionVersion=version, Routing=dict(routing or {})
        )
        fn = self._fn(name, op)
        weights = self._check_target(fn, op, version, routing)
        if alias in fn.aliases:
            raise AwsConflict(
                f"{op}: Alias already exists: {alias}",
                code="ResourceConflictException",
                operation=op,
                status=409,
                retryable=False,
                hint="it already exists: read it and update it",
            )
        created = Alias(alias, version, weights, self._revision())
        fn.aliases[alias] = created
        return self._done(fault, op, self._alias_info(fn, created))

    async def update_alias(
        self,
        name: str,
        alias: str,
        version: str,
        routing: Mapping[str, float] | None,
        revision_id: str | None = None,
    ) -> AliasInfo:
        op = "UpdateAlias"
        fault = await self._enter(
            op,
            FunctionName=name,
            Name=alias,
            FunctionVersion=version,
            Routing=dict(routing or {}),
            RevisionId=revision_id,
        )
        fn = self._fn(name, op)
        weights = self._check_target(fn, op, version, routing)
        current = fn.aliases.get(alias)
        if current is None:
            raise not_found(op, f"alias {alias} of {name}")
        if revision_id and revision_id != current.revision:
            raise precondition(op)
        current.version, current.routing, current.revision = version, weights, self._revision()
        return self._done(fault, op, self._alias_info(fn, current))

    async def delete_alias(self, name: str, alias: str) -> None:
        op = "DeleteAlias"
        fault = await self._enter(op, FunctionName=name, Name=alias)
        fn = self._functions.get(name)
        if fn is not None:
            fn.aliases.pop(alias, None)
        self._done(fault, op, None)

    async def tag_function(self, arn: str, tags: Mapping[str, str]) -> None:
        op = "TagResource"
        fault = await self._enter(op, Resource=arn, Tags=dict(tags))
        fn = self._fn(arn.rsplit(":", 1)[-1], op)
        fn.tags.update({str(k): str(v) for k, v in tags.items()})
        self._done(fault, op, None)

    async def untag_function(self, arn: str, keys: Sequence[str]) -> None:
        op = "UntagResource"
        fault = await self._enter(op, Resource=arn, TagKeys=list(keys))
        fn = self._fn(arn.rsplit(":", 1)[-1], op)
        for key in keys:
            fn.tags.pop(key, None)
        self._done(fault, op, None)

    async def code_signing_config(self, name: str) -> str | None:
        await self._enter("GetFunctionCodeSigningConfig", FunctionName=name)
        return self._fn(name, "GetFunctionCodeSigningConfig").code_signing

    async def put_code_signing_config(self, name: str, arn: str) -> None:
        op = "PutFunctionCodeSigningConfig"
        fault = await self._enter(op, FunctionName=name, CodeSigningConfigArn=arn)
        self._fn(name, op).code_signing = arn
        self._done(fault, op, None)

    async def delete_code_signing_config(self, name: str) -> None:
        op = "DeleteFunctionCodeSigningConfig"
        fault = await self._enter(op, FunctionName=name)
        self._fn(name, op).code_signing = None
        self._done(fault, op, None)

    # ---- CodeObjects -------------------------------------------------------------------------

    async def invoke(self, function: str, payload: Mapping[str, Any]) -> InvokeAnswer:
        applied = await self._enter("Invoke", FunctionName=function, Payload=dict(payload))
        answer = self._hooks.get(function, InvokeAnswer(payload=b"{}"))
        return self._done(applied, "Invoke", answer)

    async def code_sha256(self, bucket: str, key: str, version: str | None = None) -> str | None:
        await self._enter("GetObject", Bucket=bucket, Key=key, VersionId=version)
        data = self._objects.get((bucket, key))
        return None if data is None else sha256_of(data)

    # ---- AlarmsApi ---------------------------------------------------------------------------

    async def alarm_states(self, names: Sequence[str]) -> dict[str, str]:
        await self._enter("DescribeAlarms", AlarmNames=list(names))
        return {n: self._alarms[n] for n in names if n in self._alarms}

    async def invocations(
        self, name: str, alias: str, version: str, since: datetime, until: datetime
    ) -> int:
        await self._enter("GetMetricStatistics", MetricName="Invocations", Version=version)
        return self._served.get((name, alias, version), 0)

    # ---- internals ---------------------------------------------------------------------------

    async def _enter(self, operation: str, *request: Mapping[str, Any], **args: Any) -> bool:
        """Journal the call, yield to other tasks like real I/O, and apply an injected fault:
        raise it now, or return True when the call must apply and then fail."""
        merged: dict[str, Any] = {}
        for part in request:
            merged.update(copy.deepcopy(dict(part)))
        merged.update(args)
        self.journal.append((operation, merged))
        await anyio.lowlevel.checkpoint()
        queue = self._faults.get(operation)
        if queue:
            fault = queue.popleft()
            if fault is not None:
                raise fault
            return True
        return False

    @staticmethod
    def _done(apply_then_fail: bool, operation: str, result: _T) -> _T:
        if apply_then_fail:
            raise AwsAmbiguous(
                f"{operation}: connection dropped after the request was sent (injected)",
                operation=operation,
                hint="the request may or may not have taken effect: read before repeating",
            )
        return result

    def _revision(self) -> str:
        return f"00000000-0000-4000-8000-{next(self._revisions):012d}"

    def _arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"

    def _fn(self, name: str, operation: str) -> Function:
        fn = self._functions.get(name)
        if fn is None:
            raise not_found(operation, f"function {name}")
        return fn

    def _ready(self, name: str, operation: str, revision_id: str | None) -> Function:
        """The function, if a mutation may start now (not Pending, no update in progress)."""
        fn = self._fn(name, operation)
        if fn.state == "Pending" or fn.last_update_status == "InProgress":
            raise AwsConflict(
                f"{operation}: The operation cannot be performed at this time. An update is in "
                f"progress for resource: {self._arn(name)}",
                code="ResourceConflictException",
                operation=operation,
                status=409,
                hint="an update is in progress: wait until LastUpdateStatus settles",
            )
        if revision_id and revision_id != fn.revision:
            raise precondition(operation)
        return fn

    def _tick(self, fn: Function) -> None:
        """One GetFunction poll: a Pending/InProgress period ends after its polls run out."""
        if fn.busy_polls > 0:
            fn.busy_polls -= 1
        if fn.busy_polls == 0 and (fn.state == "Pending" or fn.last_update_status == "InProgress"):
            self._settle(fn)

    def _settle(self, fn: Function) -> None:
        reason = fn.fail_next_settle
        fn.fail_next_settle = None
        if reason is None:
            fn.state, fn.last_update_status, fn.state_reason = "Active", "Successful", ""
        else:
            fn.state = "Failed" if fn.state == "Pending" else fn.state
            fn.last_update_status, fn.state_reason = "Failed", reason

    def _start_update(self, fn: Function) -> None:
        fn.revision = self._revision()
        fn.busy_polls = self.update_polls
        fn.last_update_status = "InProgress"
        if fn.busy_polls <= 0:
            self._settle(fn)

    def _code_sha256(self, code: Mapping[str, Any]) -> str:
        stored = self._objects.get((str(code.get("S3Bucket")), str(code.get("S3Key"))))
        if stored is not None and "ZipFile" not in code:
            return sha256_of(stored)
        return code_sha256(code)

    @staticmethod
    def _set_image(fn: Function, code: Mapping[str, Any]) -> None:
        if code.get("ImageUri"):
            fn.configuration["ImageUri"] = str(code["ImageUri"])
        else:
            fn.configuration.pop("ImageUri", None)

    def _publish(self, fn: Function, description: str | None) -> Version:
        fingerprint = (fn.code_sha256, repr(sorted(fn.configuration.items())))
        last = fn.published_fingerprint
        if last is not None and last[:2] == fingerprint and last[2] in fn.versions:
            # AWS publishes nothing new when neither code nor configuration changed.
            return fn.versions[last[2]]
        number = str(fn.next_version)
        fn.next_version += 1
        configuration = self._latest_configuration(fn)
        if description is not None:
            configuration["Description"] = description
        configuration.update(
            Version=number,
            FunctionArn=f"{self._arn(fn.name)}:{number}",
            RevisionId=self._revision(),
            State="Active",
            LastUpdateStatus="Successful",
        )
        version = Version(number, configuration)
        fn.versions[number] = version
        fn.published_fingerprint = (*fingerprint, number)
        fn.revision = self._revision()  # publishing changes $LATEST's RevisionId too
        return version

    def _check_target(
        self, fn: Function, operation: str, version: str, routing: Mapping[str, float] | None
    ) -> dict[str, float]:
        weights = refuse_unsafe_alias(operation, version, routing)
        for wanted in (version, *weights):
            if wanted not in fn.versions:
                raise AwsInvalid(
                    f"{operation}: version {wanted} of {fn.name} does not exist",
                    code="InvalidParameterValueException",
                    operation=operation,
                    status=400,
                    hint="publish the version before pointing an alias at it",
                )
        return weights

    def _latest_configuration(self, fn: Function) -> dict[str, Any]:
        configuration = copy.deepcopy(fn.configuration)
        configuration.update(
            FunctionName=fn.name,
            FunctionArn=self._arn(fn.name),
            Version=LATEST,
            CodeSha256=fn.code_sha256,
            RevisionId=fn.revision,
            State=fn.state,
            LastUpdateStatus=fn.last_update_status,
        )
        if fn.state_reason:
            configuration["StateReason"] = fn.state_reason
        return configuration

    def _latest_info(self, fn: Function) -> FunctionInfo:
        return info_of(self._latest_configuration(fn))

    def _alias_info(self, fn: Function, alias: Alias) -> AliasInfo:
        return AliasInfo(
            name=alias.name,
            function_version=alias.version,
            routing=dict(alias.routing),
            revision_id=alias.revision,
            arn=f"{self._arn(fn.name)}:{alias.name}",
        )
