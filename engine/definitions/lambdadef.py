"""Validation of ``_lambdadef.json`` against botocore's own ``CreateFunction`` input shape
(and, through ``check_shape``, of the mappings of ``_lambdaeventsourcedef.json`` against
``CreateEventSourceMapping``'s).

The model comes from the installed botocore, so a field AWS adds is accepted as soon as
botocore knows it, with no change to glam. Checked: unknown keys (with the nearest valid name
as the hint), required keys, the JSON type of every value, and ``Role`` against the model's
ARN pattern (an IAM role of a twelve-digit account). Enumerations and length limits
are left to AWS: an outdated botocore must not refuse a runtime AWS already accepts.
"""

from __future__ import annotations

import difflib
import os
import re
from functools import lru_cache
from typing import Any

from engine.errors import DefinitionError

_SCALARS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "blob": (str,),  # base64 text in JSON
    "timestamp": (str, int, float),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
}

_JSON_NAMES = {
    "structure": "an object",
    "map": "an object",
    "list": "a list",
    "string": "a string",
    "blob": "a base64 string",
    "boolean": "true or false",
    "integer": "an integer",
    "long": "an integer",
    "float": "a number",
    "double": "a number",
    "timestamp": "a timestamp",
}


@lru_cache(maxsize=1)
def lambda_model() -> Any:
    """botocore's Lambda service model (loaded once)."""
    # The loader and the model, not botocore.session: the session drags in the client,
    # waiters and credential providers. Imported here, on the first validation: every `glam`
    # command imports this module, few of them validate a definition.
    import botocore.loaders
    import botocore.model

    # As botocore.session does it: the installed data, plus any folders in $AWS_DATA_PATH.
    loader = botocore.loaders.create_loader(os.environ.get("AWS_DATA_PATH"))
    data = loader.load_service_model("lambda", "service-2")
    return botocore.model.ServiceModel(data, service_name="lambda")


@lru_cache(maxsize=1)
def create_function_shape() -> Any:
    """botocore's input shape of Lambda ``CreateFunction`` (loaded once)."""
    return lambda_model().operation_model("CreateFunction").input_shape


def validate_create_function(request: Any, file: str) -> dict[str, Any]:
    """Return ``request`` if it is a valid ``CreateFunction`` request, else raise
    ``DefinitionError`` naming the JSON path and, for an unknown key, the nearest valid one."""
    if not isinstance(request, dict):
        raise DefinitionError(
            "a _lambdadef.json must hold one JSON object", file=file, hint="see CreateFunction"
        )
    shape = create_function_shape()
    _check(request, shape, "", file)
    role = request.get("Role")
    pattern = shape.members["Role"].metadata.get("pattern")
    if isinstance(role, str) and pattern and not re.fullmatch(pattern, role):
        # The pattern holds the account's twelve digits: a role name alone, a short account
        # id or another service's ARN fails here, not minutes later in CreateFunction.
        shown = role if len(role) <= 80 else role[:80] + "…"
        raise DefinitionError(
            f"Role {shown!r} is not the ARN of an IAM role",
            file=file,
            hint="use the role's ARN, e.g. arn:aws:iam::123456789012:role/my-function-role",
        )
    return request


def check_shape(value: Any, shape: Any, path: str, file: str, api: str = "CreateFunction") -> None:
    """Raise ``DefinitionError`` unless ``value`` fits botocore's input ``shape`` of the Lambda
    operation ``api`` (named in the hints): known keys, required keys, JSON types. ``path``
    names ``value`` in the file ("" for the whole request)."""
    _check(value, shape, path, file, api)


def _check(value: Any, shape: Any, path: str, file: str, api: str = "CreateFunction") -> None:
    kind = shape.type_name
    where = path or "the request"
    if kind == "structure":
        if not isinstance(value, dict):
            raise _type_error(where, kind, file, api)
        members = shape.members
        for key, item in value.items():
            if key not in members:
                near = difflib.get_close_matches(key, list(members), n=1, cutoff=0.6)
                hint = (
                    f"did you mean {near[0]!r}?"
                    if near
                    else f"see the Lambda {api} API for valid keys"
                )
                raise DefinitionError(f"unknown key {_join(path, key)!r}", file=file, hint=hint)
            _check(item, members[key], _join(path, key), file, api)
        for key in shape.required_members:
            if key not in value:
                raise DefinitionError(
                    f"missing required key {_join(path, key)!r}",
                    file=file,
                    hint=f"{api} requires it",
                )
    elif kind == "list":
        if not isinstance(value, list):
            raise _type_error(where, kind, file, api)
        for index, item in enumerate(value):
            _check(item, shape.member, f"{path}[{index}]", file, api)
    elif kind == "map":
        if not isinstance(value, dict):
            raise _type_error(where, kind, file, api)
        for key, item in value.items():
            _check(item, shape.value, _join(path, key), file, api)
    else:
        accepted = _SCALARS.get(kind, (str, int, float, bool))
        if not isinstance(value, accepted) or (bool not in accepted and isinstance(value, bool)):
            raise _type_error(where, kind, file, api)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_error(where: str, kind: str, file: str, api: str) -> DefinitionError:
    return DefinitionError(
        f"{where} must be {_JSON_NAMES.get(kind, kind)}",
        file=file,
        hint=f"see the Lambda {api} API",
    )
