"""AWS names checked before glam acts on them: regions, account ids, function names and ARNs,
alias names.

Each check says what is wrong and what AWS would accept, at plan time; without them a bad name
surfaces minutes later as retries against a region that does not exist, a wait on a function
that can never be created, or a function left without its alias.

    region         one of the regions in botocore's partition data (``partitions.json``)
    account        twelve digits
    FunctionName   the forms CreateFunction accepts, and only those: ``my-function``,
                   ``arn:aws:lambda:us-west-2:123456789012:function:my-function`` and
                   ``123456789012:function:my-function``; no qualifier
    alias          CreateAlias's pattern and length from botocore's Lambda model
                   (not only digits, so not ``7``; not ``$LATEST``)
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import botocore
import botocore.loaders

from engine.definitions.lambdadef import lambda_model
from engine.errors import DefinitionError

_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_ACCOUNT = re.compile(r"\d{12}")
_FULL_ARN = re.compile(
    r"arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[^:]*):(?P<account>[^:]*)"
    r":function:(?P<name>[^:]*)(?P<qualifier>:.*)?"
)
_PARTIAL_ARN = re.compile(r"(?P<account>[^:]*):function:(?P<name>[^:]*)(?P<qualifier>:.*)?")


@dataclass(frozen=True, slots=True)
class Partition:
    id: str
    regions: frozenset[str]


@lru_cache(maxsize=1)
def partitions() -> tuple[Partition, ...]:
    """The partitions and their regions, from the installed botocore (and ``$AWS_DATA_PATH``)."""
    loader = botocore.loaders.create_loader(os.environ.get("AWS_DATA_PATH"))
    try:
        data = loader.load_data("partitions")
        items = [
            (p["id"], p.get("regionRegex", ""), p.get("regions", {})) for p in data["partitions"]
        ]
    except Exception:  # an older botocore: the same data lives in endpoints.json
        data = loader.load_data("endpoints")
        items = [(p["partition"], p["regionRegex"], p["regions"]) for p in data["partitions"]]
    out = []
    for pid, regex, regions in items:
        # Pseudo-regions such as "aws-global" do not match the partition's own pattern.
        pattern = re.compile(regex) if regex else None
        real = {r for r in regions if pattern is None or pattern.match(r)}
        out.append(Partition(pid, frozenset(real)))
    return tuple(out)


def partition_of(region: str) -> str | None:
    for partition in partitions():
        if region in partition.regions:
            return partition.id
    return None


def check_region(region: str, where: str, file: str) -> str:
    """``region`` if botocore knows it; its partition id is ``partition_of(region)``."""
    if partition_of(region) is not None:
        return region
    known = sorted(r for p in partitions() for r in p.regions)
    near = difflib.get_close_matches(region.lower(), known, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]!r}?" if near else "use a region such as 'us-east-1'"
    raise DefinitionError(
        f"{where} {_show(region)} is not an AWS region",
        file=file,
        hint=f"{hint} (glam knows the regions of botocore {botocore.__version__})",
    )


def check_account(account: str, where: str, file: str) -> str:
    if not _ACCOUNT.fullmatch(account):
        raise DefinitionError(
            f"{where} {_show(account)} is not an AWS account id",
            file=file,
            hint="an account id is 12 digits",
        )
    return account


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """A ``FunctionName`` as written: the plain name, and what an ARN form adds."""

    name: str
    partition: str | None = None
    region: str | None = None
    account: str | None = None


_FORMS = (
    "use the function name (my-function), its ARN "
    "(arn:aws:lambda:us-east-1:123456789012:function:my-function) "
    "or a partial ARN (123456789012:function:my-function)"
)


def parse_function_name(value: Any, file: str) -> FunctionRef:
    """The function a ``FunctionName`` names, in the forms CreateFunction accepts."""
    if not isinstance(value, str):
        raise DefinitionError("FunctionName must be a string", file=file, hint=_FORMS)
    shape = lambda_model().operation_model("CreateFunction").input_shape.members["FunctionName"]
    longest = int(shape.metadata.get("max", 140))
    if len(value) > longest:
        raise DefinitionError(
            f"FunctionName is {len(value)} characters, more than the {longest} AWS accepts",
            file=file,
            hint=_FORMS,
        )
    if ":" not in value:
        if not _NAME.fullmatch(value):
            raise DefinitionError(
                f"FunctionName {_show(value)} is not a valid function name",
                file=file,
                hint="1 to 64 letters, digits, hyphens or underscores",
            )
        return FunctionRef(name=value)
    full = _FULL_ARN.fullmatch(value)
    partial = None if full else _PARTIAL_ARN.fullmatch(value)
    match = full or partial
    if match is None:
        head, _, tail = value.partition(":")
        if head not in ("arn", "function") and _NAME.fullmatch(head) and ":" not in tail:
            raise DefinitionError(
                f"FunctionName {_show(value)} has a qualifier; CreateFunction takes the function "
                "itself",
                file=file,
                hint="remove ':...'; traffic goes to the deployment definition's alias",
            )
        raise DefinitionError(
            f"FunctionName {_show(value)} is not a function name or ARN", file=file, hint=_FORMS
        )
    if match.group("qualifier"):
        raise DefinitionError(
            f"FunctionName {_show(value)} has a qualifier; CreateFunction takes the function "
            "itself",
            file=file,
            hint="remove the last ':...'; the alias is the deployment definition's alias",
        )
    name = match.group("name")
    if not _NAME.fullmatch(name):
        raise DefinitionError(
            f"FunctionName {_show(value)} names an invalid function name {_show(name)}",
            file=file,
            hint="1 to 64 letters, digits, hyphens or underscores",
        )
    account = check_account(match.group("account"), "the account in FunctionName", file)
    if partial is not None:
        return FunctionRef(name=name, account=account)
    region = check_region(match.group("region"), "the region in FunctionName", file)
    partition = match.group("partition")
    if partition_of(region) != partition:
        raise DefinitionError(
            f"FunctionName's ARN is in partition {partition!r} but region {region!r} is in "
            f"{partition_of(region)!r}",
            file=file,
            hint=f"use arn:{partition_of(region)}:lambda:{region}:...",
        )
    return FunctionRef(name=name, partition=partition, region=region, account=account)


def check_alias(alias: str, file: str) -> str:
    """``alias`` if CreateAlias accepts it as a name (botocore's pattern and length)."""
    shape = lambda_model().operation_model("CreateAlias").input_shape.members["Name"]
    low, high = int(shape.metadata.get("min", 1)), int(shape.metadata.get("max", 128))
    pattern = shape.metadata.get("pattern")
    if not low <= len(alias) <= high:
        raise DefinitionError(
            f"alias is {len(alias)} characters; AWS accepts {low} to {high}",
            file=file,
            hint="shorten the alias",
        )
    if pattern and not re.fullmatch(pattern, alias):
        reason = (
            "is only digits (AWS keeps those for versions)"
            if alias.isdigit()
            else (
                "is reserved for the unpublished version" if alias == "$LATEST" else "is not valid"
            )
        )
        raise DefinitionError(
            f"alias {_show(alias)} {reason}",
            file=file,
            hint="use letters, digits, hyphens or underscores, not only digits, e.g. 'live'",
        )
    return alias


def _show(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:80] + "…")
