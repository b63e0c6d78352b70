"""What glam deployed against what AWS serves, field by field. Pure.

``compare(expected, live)`` gives every ``Difference`` as (field path, desired, live), sorted
by path. The paths:

    function                      the function itself (live None: it is gone)
    $LATEST.<member>[.<key>...]   $LATEST's configuration, AWS's defaults filled in on both
                                  sides (engine.definitions.normalize), nested members one by
                                  one (``$LATEST.TracingConfig.Mode``)
    $LATEST.CodeSha256            its code (``.ImageUri`` for an image), when the deployed
                                  code's CodeSha256 is known
    stable.<member>..., stable.CodeSha256
                                  the same of the version the alias serves
    alias.FunctionVersion         the version the alias points at; desired: the one glam's
                                  last successful deployment left it on
    alias.RoutingConfig           additional version weights; desired: none
    tags.<key>                    the function's tags (``aws:`` tags are AWS's own: ignored)
    CodeSigningConfigArn          when code signing is configured
    mappings[...], permissions[...], elb[...], apigateway[...]
                                  what a reconcile of the event sources would change
                                  (engine.ports.SourceDifference)

An environment variable's value may be a secret: a difference in ``...Environment.Variables.X``
shows ``***`` for a value that is there and None for one that is not, never the value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.definitions.normalize import (
    DEFAULTS,
    desired_configuration,
    live_configuration,
    zip_sha256,
)
from engine.events.desired import DesiredFunction
from engine.ports import AliasInfo, FunctionInfo, SourceDifference

MASK = "***"
LATEST = "$LATEST"
STABLE = "stable"
ALIAS_VERSION = "alias.FunctionVersion"
ALIAS_ROUTING = "alias.RoutingConfig"
SIGNING = "CodeSigningConfigArn"
# Tag keys AWS sets itself (CloudFormation...): never glam's.
_AWS_TAG_PREFIX = "aws:"
_ENV_VALUE = ".Environment.Variables."


@dataclass(frozen=True, slots=True)
class Expected:
    """What one function should look like in AWS: the desired state glam deployed (or, for
    ``glam plan --live``, the one it would deploy), the version its alias should be on (None:
    whichever it is on) and the CodeSha256 its code gives, when known."""

    name: str
    desired: DesiredFunction
    version: str | None = None
    code_sha256: str | None = None

    @property
    def alias(self) -> str:
        return self.desired.settings.alias

    @property
    def signing(self) -> bool:
        """Whether code signing is configured (then it is read)."""
        return bool(self.desired.definition.get(SIGNING))


@dataclass(frozen=True, slots=True)
class LiveFunction:
    """What AWS serves for one function, as read (engine.drift.read). ``latest`` None: the
    function does not exist; ``alias`` None: it has no such alias; ``served``: the version
    the alias points at. Holds configurations, so environment values: never record it."""

    latest: FunctionInfo | None
    alias: AliasInfo | None = None
    served: FunctionInfo | None = None
    signing_read: bool = False
    signing: str | None = None
    sources: tuple[SourceDifference, ...] = ()


@dataclass(frozen=True, slots=True)
class Difference:
    """One field where AWS differs from what glam deployed (values masked where secret)."""

    path: str
    desired: Any
    live: Any

    def text(self) -> str:
        """``path: desired → live``, for people."""
        return f"{self.path}: {show(self.desired)} → {show(self.live)}"


def show(value: Any) -> str:
    """A value as one short line: ``(absent)`` for None, JSON otherwise."""
    if value is None:
        return "(absent)"
    if isinstance(value, str):
        return value or '""'
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def expected_code(definition: Mapping[str, Any], recorded: str | None) -> str | None:
    """The CodeSha256 ``definition``'s code gives: inline code by its digest, other code by
    ``recorded`` (what the log learnt when it was deployed); None for an image or unknown."""
    code = dict(definition.get("Code") or {})
    if "ImageUri" in code:
        return None
    if "ZipFile" in code:
        return zip_sha256(code)
    return recorded


def compare(expected: Expected, live: LiveFunction) -> tuple[Difference, ...]:
    """Every difference between ``expected`` and ``live``, sorted by path."""
    if live.latest is None:
        return (Difference("function", expected.name, None),)
    definition = expected.desired.definition
    found: list[Difference] = []
    found += _function(LATEST, expected, live.latest)
    found += _alias(expected, live.alias)
    if live.served is not None:
        found += _function(STABLE, expected, live.served)
    found += _tags(definition, live.latest.tags)
    if live.signing_read:
        wanted = str(definition.get(SIGNING) or "") or None
        if wanted != live.signing:
            found.append(Difference(SIGNING, wanted, live.signing))
    found += [Difference(d.path, d.desired, d.live) for d in live.sources]
    return tuple(sorted(found, key=lambda d: d.path))


def _function(prefix: str, expected: Expected, info: FunctionInfo) -> list[Difference]:
    """The configuration and code of one qualifier of the function."""
    definition = expected.desired.definition
    desired = desired_configuration(definition)
    desired["Architectures"] = list(definition.get("Architectures", DEFAULTS["Architectures"]))
    live = live_configuration(info.configuration, expected.name)
    found = [
        difference
        for member in sorted(desired)
        for difference in leaves(f"{prefix}.{member}", desired[member], live.get(member))
    ]
    code = dict(definition.get("Code") or {})
    if "ImageUri" in code:
        if info.image_uri != str(code["ImageUri"]):
            found.append(Difference(f"{prefix}.ImageUri", code["ImageUri"], info.image_uri or None))
    elif expected.code_sha256 and info.code_sha256 != expected.code_sha256:
        found.append(
            Difference(f"{prefix}.CodeSha256", expected.code_sha256, info.code_sha256 or None)
        )
    return found


def leaves(path: str, desired: Any, live: Any) -> Iterator[Difference]:
    """The differences under ``path``: objects key by key, anything else as one value;
    environment values masked."""
    if isinstance(desired, Mapping) and (live is None or isinstance(live, Mapping)):
        present: Mapping[str, Any] = live or {}
        for key in sorted(set(desired) | set(present)):
            yield from leaves(f"{path}.{key}", desired.get(key), present.get(key))
        return
    if isinstance(live, Mapping) and desired is None:
        for key in sorted(live):
            yield from leaves(f"{path}.{key}", None, live.get(key))
        return
    if desired != live:
        secret = _ENV_VALUE in f".{path}"
        yield Difference(path, _masked(desired, secret), _masked(live, secret))


def _masked(value: Any, secret: bool) -> Any:
    return MASK if secret and value is not None else value


def _alias(expected: Expected, alias: AliasInfo | None) -> list[Difference]:
    if alias is None:
        return [Difference(ALIAS_VERSION, expected.version or "(any version)", None)]
    found: list[Difference] = []
    if expected.version is not None and alias.function_version != expected.version:
        found.append(Difference(ALIAS_VERSION, expected.version, alias.function_version))
    if alias.routing:
        routing = {k: float(v) for k, v in sorted(alias.routing.items())}
        found.append(Difference(ALIAS_ROUTING, {}, routing))
    return found


def _tags(definition: Mapping[str, Any], tags: Mapping[str, str] | None) -> list[Difference]:
    if tags is None:
        return []  # the read carried no tags
    wanted = {str(k): str(v) for k, v in (definition.get("Tags") or {}).items()}
    live = {k: v for k, v in tags.items() if not k.startswith(_AWS_TAG_PREFIX)}
    return [
        Difference(f"tags.{key}", wanted.get(key), live.get(key))
        for key in sorted(set(wanted) | set(live))
        if wanted.get(key) != live.get(key)
    ]


def summary(found: Sequence[Difference], limit: int = 3) -> str:
    """The paths of ``found``, the first ``limit`` of them, for a one-line reason."""
    paths = [d.path for d in found]
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more
