"""The complete desired state of a function, and the live one in the same shape. Pure.

A ``_lambdadef.json`` is a CreateFunction request, and a member it leaves out means AWS's
default. To compare it with what AWS serves, both sides are brought to one shape, the request
shape of UpdateFunctionConfiguration, with every member filled in:

- the desired side (``desired_configuration``): the definition's members, each missing one
  given the default AWS applies (``DEFAULTS``; docs/desired-state.md says where each comes
  from), nested members too (``TracingConfig.Mode``, ``VpcConfig.Ipv6AllowedForDualStack``);
- the live side (``live_configuration``): a ``FunctionConfiguration`` as GetFunction answers
  it, mapped to the request shape: ``Layers`` objects to their ARNs, ``VpcConfig`` without
  ``VpcId``, ``Environment`` and ``ImageConfigResponse`` without their ``Error``,
  ``SnapStart`` without ``OptimizationStatus``, absent or null members as their defaults.

The members come from botocore's model, so a member AWS adds later is compared as soon as
botocore knows it: one with a known default is reset when the file drops it; one without
(``Role``, ``Handler``, ``Runtime``, a member newer than this table) is compared only where
the file sets it, because there is nothing to reset it to.

Which CreateFunction members are what, from the model (``member_kinds``):

    configuration   UpdateFunctionConfiguration's members     versioned: a new version
    code            the Code members, and Architectures       versioned: UpdateFunctionCode
    function level  Tags, CodeSigningConfigArn                 their own APIs, not versioned
    create only     the rest (PackageType, TenancyConfig)     AWS cannot change them
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from engine.definitions.lambdadef import create_function_shape, lambda_model

if TYPE_CHECKING:
    import botocore.model

# Members a request carries that are not attributes of the function.
_REQUEST_ONLY = frozenset({"FunctionName", "RevisionId", "Publish", "PublishTo", "DryRun"})
# Function-level attributes with APIs of their own (TagResource/UntagResource,
# Put/DeleteFunctionCodeSigningConfig): not versioned, not in UpdateFunctionConfiguration.
FUNCTION_LEVEL = frozenset({"Tags", "CodeSigningConfigArn"})
# Where the code is: the members of CreateFunction's ``Code``.
CODE_SOURCES = ("ZipFile", "S3Bucket", "S3Key", "S3ObjectVersion", "ImageUri")
# Tag keys AWS itself sets (CloudFormation, Service Catalog...): never glam's to remove.
_AWS_TAG_PREFIX = "aws:"

# AWS's default for each member a definition may leave out, in the request shape.
# ``LoggingConfig.LogGroup`` defaults to ``/aws/lambda/<FunctionName>``, filled in per function.
DEFAULTS: Mapping[str, Any] = {
    "Description": "",
    "Timeout": 3,
    "MemorySize": 128,
    "Environment": {"Variables": {}},
    "Layers": [],
    "VpcConfig": {"SubnetIds": [], "SecurityGroupIds": [], "Ipv6AllowedForDualStack": False},
    "DeadLetterConfig": {"TargetArn": ""},
    "KMSKeyArn": "",
    "TracingConfig": {"Mode": "PassThrough"},
    "FileSystemConfigs": [],
    "ImageConfig": {},
    "EphemeralStorage": {"Size": 512},
    "SnapStart": {"ApplyOn": "None"},
    "LoggingConfig": {"LogFormat": "Text"},
    "Architectures": ["x86_64"],
    "PackageType": "Zip",
}
# Log levels apply to JSON logs only; AWS fills these in when the format is JSON.
_JSON_LOG_LEVELS = {"ApplicationLogLevel": "INFO", "SystemLogLevel": "INFO"}
# Lists whose order AWS does not keep: compared as sets.
_UNORDERED = frozenset({"SubnetIds", "SecurityGroupIds"})


@lru_cache(maxsize=1)
def member_kinds() -> Mapping[str, frozenset[str]]:
    """CreateFunction's members by kind (module docstring), from botocore's model."""
    model = lambda_model()
    create = frozenset(create_function_shape().members)
    config = frozenset(_members(model, "UpdateFunctionConfiguration")) - _REQUEST_ONLY
    code = frozenset(_members(model, "UpdateFunctionCode")) - _REQUEST_ONLY - set(CODE_SOURCES)
    code_attributes = (code & create) | {"Code"}
    create_only = create - config - code_attributes - FUNCTION_LEVEL - _REQUEST_ONLY
    return {
        "configuration": config & create,
        "code": code_attributes,
        "function": FUNCTION_LEVEL & create,
        "create_only": create_only,
    }


def _members(model: botocore.model.ServiceModel, operation: str) -> list[str]:
    return list(model.operation_model(operation).input_shape.members)


def configuration_members() -> frozenset[str]:
    """The members UpdateFunctionConfiguration sets (and CreateFunction takes)."""
    return member_kinds()["configuration"]


def create_only_members() -> frozenset[str]:
    """The members only CreateFunction sets: a change AWS cannot apply to a function."""
    return member_kinds()["create_only"]


# -- the two sides ---------------------------------------------------------------------------


def desired_configuration(definition: Mapping[str, Any]) -> dict[str, Any]:
    """Every configuration member of ``definition`` (a CreateFunction request), AWS's default
    where it has none; members with no known default only where the definition sets them."""
    name = _plain_name(str(definition.get("FunctionName", "")))
    members = configuration_members()
    wanted = {k: definition[k] for k in members if k in definition}
    return _complete(wanted, name, members)


def live_configuration(configuration: Mapping[str, Any], function_name: str = "") -> dict[str, Any]:
    """A ``FunctionConfiguration`` (GetFunction's ``Configuration``) in the request shape,
    every member with a known default filled in as AWS would report it (``function_name``
    names the default log group when the configuration does not name the function)."""
    live: dict[str, Any] = {}
    for key, value in configuration.items():
        if value is None:
            continue
        match key:
            case "Layers":
                live[key] = [
                    layer.get("Arn") if isinstance(layer, Mapping) else layer for layer in value
                ]
            case "VpcConfig":
                live[key] = {k: v for k, v in value.items() if k != "VpcId"}
            case "Environment":
                live[key] = {k: v for k, v in value.items() if k != "Error"}
            case "ImageConfigResponse":
                live["ImageConfig"] = dict(value.get("ImageConfig") or {})
            case "SnapStart":
                live[key] = {k: v for k, v in value.items() if k != "OptimizationStatus"}
            case _:
                live[key] = value
    name = str(configuration.get("FunctionName") or function_name)
    members = configuration_members() | {"Architectures"} | create_only_members()
    return _complete({k: v for k, v in live.items() if k in members}, name, members)


def _complete(
    values: Mapping[str, Any], function_name: str, members: frozenset[str]
) -> dict[str, Any]:
    """``values`` with the defaults of ``members`` filled in and nested members normalised."""
    out: dict[str, Any] = {k: copy.deepcopy(v) for k, v in DEFAULTS.items() if k in members}
    if "LoggingConfig" in members:
        out["LoggingConfig"] = _default_logging(function_name)
    for key, value in values.items():
        default = out.get(key)
        if isinstance(default, dict) and isinstance(value, Mapping):
            merged = {**default, **copy.deepcopy(dict(value))}
            if key == "Environment" and merged.get("Variables") is None:
                merged["Variables"] = {}
            out[key] = merged
        else:
            out[key] = copy.deepcopy(value)
    logging = out.get("LoggingConfig")
    if isinstance(logging, dict):
        if logging.get("LogFormat") == "JSON":
            out["LoggingConfig"] = {**_JSON_LOG_LEVELS, **logging}
        else:
            out["LoggingConfig"] = {k: v for k, v in logging.items() if k not in _JSON_LOG_LEVELS}
    return {key: _canonical(key, value) for key, value in out.items()}


def _default_logging(function_name: str) -> dict[str, Any]:
    return {**DEFAULTS["LoggingConfig"], "LogGroup": f"/aws/lambda/{function_name}"}


def _canonical(key: str, value: Any) -> Any:
    """``value`` with the lists AWS keeps unordered sorted, recursively."""
    if isinstance(value, Mapping):
        return {k: _canonical(k, v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        items = [_canonical(key, v) for v in value]
        if key in _UNORDERED:
            return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, default=str))
        return items
    return value


def _plain_name(name: str) -> str:
    if name.startswith("arn:"):
        parts = name.split(":")
        return parts[6] if len(parts) > 6 else name
    return name


# -- comparing -------------------------------------------------------------------------------


def differences(definition: Mapping[str, Any], configuration: Mapping[str, Any]) -> tuple[str, ...]:
    """The members whose live value (``configuration``, GetFunction's) differs from the
    desired one: configuration members, and ``Architectures`` (set with the code). Sorted."""
    desired = desired_configuration(definition)
    desired["Architectures"] = _canonical(
        "Architectures", definition.get("Architectures", DEFAULTS["Architectures"])
    )
    live = live_configuration(configuration, _plain_name(str(definition.get("FunctionName", ""))))
    return tuple(sorted(k for k, v in desired.items() if live.get(k) != v))


def create_only_differences(
    definition: Mapping[str, Any], configuration: Mapping[str, Any]
) -> dict[str, Any]:
    """Create-only members whose live value differs from the desired one: member -> live
    value (``None`` when AWS reports none)."""
    live = live_configuration(configuration)
    found: dict[str, Any] = {}
    for key in sorted(create_only_members()):
        default = DEFAULTS.get(key)
        if key not in definition and default is None:
            continue  # no default: only a value the file sets is compared
        wanted = _canonical(key, definition.get(key, default))
        if live.get(key, None if key in definition else default) != wanted:
            found[key] = configuration.get(key)
    return found


def tag_changes(
    definition: Mapping[str, Any], live_tags: Mapping[str, str] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(keys to set, keys to remove)`` to make the function's tags the definition's ``Tags``
    (none when it has none); tags AWS set itself (``aws:...``) are left alone."""
    wanted = {str(k): str(v) for k, v in (definition.get("Tags") or {}).items()}
    live = {str(k): str(v) for k, v in (live_tags or {}).items()}
    to_set = tuple(sorted(k for k, v in wanted.items() if live.get(k) != v))
    to_remove = tuple(
        sorted(k for k in live if k not in wanted and not k.startswith(_AWS_TAG_PREFIX))
    )
    return to_set, to_remove


def configuration_update(definition: Mapping[str, Any], members: tuple[str, ...]) -> dict[str, Any]:
    """The UpdateFunctionConfiguration request that sets ``members`` to their desired values
    (defaults included: a member the file dropped is reset)."""
    desired = desired_configuration(definition)
    return {k: desired[k] for k in members if k in desired}


def code_update(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The UpdateFunctionCode request: the code's source and the architecture (default
    ``x86_64``, so a dropped ``Architectures`` is reset)."""
    code = {k: v for k, v in dict(definition.get("Code") or {}).items() if k != "SourceKMSKeyArn"}
    code["Architectures"] = list(definition.get("Architectures", DEFAULTS["Architectures"]))
    return code


# -- the code --------------------------------------------------------------------------------


def code_key(definition: Mapping[str, Any]) -> str:
    """A stable text naming where the code is (the ZipFile by its digest): two definitions
    with the same key deploy the same code object."""
    code = dict(definition.get("Code") or {})
    source = {k: code[k] for k in CODE_SOURCES if k in code}
    if "ZipFile" in source:
        source["ZipFile"] = zip_sha256(code) or ""
    return json.dumps(source, sort_keys=True, default=str)


def zip_sha256(code: Mapping[str, Any]) -> str | None:
    """What Lambda reports as CodeSha256 for inline code (the base64 SHA-256 of the archive),
    or None when the code is not inline (or not valid base64)."""
    value = code.get("ZipFile")
    if value is None:
        return None
    try:
        archive = (
            bytes(value)
            if isinstance(value, bytes | bytearray)
            else base64.b64decode(str(value), validate=True)
        )
    except ValueError:
        return None
    return base64.b64encode(hashlib.sha256(archive).digest()).decode()
