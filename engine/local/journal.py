"""The journal: every call that reached the embedded AWS, in arrival order.

Tests and benchmarks read it to check what glam did rather than what AWS let it do: the
invariants below hold for the calls glam *attempted*, including the ones the proxy refused,
and they hold per account and region, as AWS's quotas do.

An entry never holds a request body or an answer, so no secret reaches the journal: of the
request's parameters it keeps only the ones that name things (``params``: names, ids, ARNs,
versions, types), never a value such as ``SecretString`` or a parameter's ``Value``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from engine.local.operations import ACCOUNT_ID

# Lambda operations that do not count against the control-plane quota: the data plane.
DATA_PLANE = frozenset({"Invoke", "InvokeAsync", "InvokeWithResponseStream"})

# Parameters kept in ``params``: the ones that only name or classify a resource. An allow
# list, not a deny list, so a secret under a name nobody foresaw is left out too.
_IDENTIFYING = re.compile(r"(Name|Id|Arn|ARN|Qualifier|Version|VersionStage|Type)$")
_NEVER = frozenset({"ExternalId", "AccessKeyId", "ClientRequestToken"})
_PARAMS_MAX_BODY = 64 * 1024
_PARAMS_MAX = 16
_VALUE_MAX = 200


@dataclass(frozen=True)
class JournalEntry:
    """One call. ``t`` is the proxy clock (monotonic seconds), ``at`` wall time (ISO 8601)."""

    seq: int
    t: float
    at: str
    service: str
    operation: str
    region: str
    status: int
    account: str = ACCOUNT_ID
    """The account the call was made in, from its credentials (the access key's account)."""
    function: str | None = None
    qualifier: str | None = None
    error: str | None = None
    """The error code returned (``x-amzn-ErrorType``), if any."""
    fault: str | None = None
    """The injected fault kind, if the fault injector chose one."""
    rule: str | None = None
    """The fidelity rule that refused the call, if one did."""
    version: str | None = None
    """UpdateAlias/CreateAlias: the primary version asked for; PublishVersion: the version made."""
    routing: dict[str, float] | None = None
    """UpdateAlias/CreateAlias: the additional version weights asked for."""
    referenced_by: tuple[str, ...] = ()
    """DeleteFunction of a version: the aliases that referenced it when the call arrived."""
    forwarded_status: int | None = None
    """apply_then_fail/apply_then_drop: moto's status for the call that did take effect."""
    params: dict[str, str] | None = None
    """The request parameters that name things (see the module docstring); never values."""
    duration: float = 0.0

    @property
    def quota_bucket(self) -> str | None:
        """Which Lambda quota the call counts against: ``get_function``, ``control`` or none."""
        if self.service != "lambda" or self.operation in DATA_PLANE:
            return None
        return "get_function" if self.operation == "GetFunction" else "control"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the control endpoint's format)."""
        data = asdict(self)
        data["referenced_by"] = list(self.referenced_by)
        return data


@dataclass
class Journal:
    """An append-only, in-memory list of calls, with invariant checks."""

    _entries: list[JournalEntry] = field(default_factory=list)

    def append(self, entry: JournalEntry) -> None:
        self._entries.append(entry)

    def clear(self) -> None:
        self._entries = []

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[JournalEntry]:
        # A copy: the proxy may append from another thread while a test reads.
        return iter(list(self._entries))

    @property
    def entries(self) -> list[JournalEntry]:
        """A snapshot of every entry so far."""
        return list(self._entries)

    def calls(
        self,
        operation: str | None = None,
        *,
        function: str | None = None,
        account: str | None = None,
    ) -> list[JournalEntry]:
        """Entries of one operation, function and/or account."""
        return [
            e
            for e in self._entries
            if (operation is None or e.operation == operation)
            and (function is None or e.function == function)
            and (account is None or e.account == account)
        ]

    def referenced_version_deletes(self) -> list[JournalEntry]:
        """DeleteFunction calls that targeted a version an alias or its routing referenced."""
        return [e for e in self._entries if e.operation == "DeleteFunction" and e.referenced_by]

    def max_rate(
        self,
        bucket: str = "control",
        *,
        window: float = 1.0,
        region: str | None = None,
        account: str | None = None,
    ) -> int:
        """The most calls counted against ``bucket`` in any ``window`` seconds (attempts,
        including the ones refused with 429), in one region and/or account if given.

        Without ``region`` and ``account`` it counts every call together: the quota holds
        per account and region, so :meth:`check_invariants` asks for each one."""
        times = sorted(
            e.t
            for e in self._entries
            if e.quota_bucket == bucket
            and (region is None or e.region == region)
            and (account is None or e.account == account)
        )
        return _max_in_window(times, window)

    def check_invariants(self, *, control_rps: int = 15, get_function_rps: int = 100) -> None:
        """Raise ``AssertionError`` naming the first broken invariant: no delete of a
        referenced version attempted; no quota exceeded in any 1 s window, per account and
        region."""
        bad = self.referenced_version_deletes()
        if bad:
            e = bad[0]
            raise AssertionError(
                f"DeleteFunction {e.function}:{e.qualifier} in account {e.account} attempted "
                f"while referenced by {', '.join(e.referenced_by)} (seq {e.seq})"
            )
        for account, region in sorted({(e.account, e.region) for e in self._entries}):
            for bucket, limit in (("control", control_rps), ("get_function", get_function_rps)):
                peak = self.max_rate(bucket, region=region, account=account)
                if peak > limit:
                    raise AssertionError(
                        f"{peak} {bucket} calls within 1 s in {account}/{region}, quota is {limit}"
                    )


def _max_in_window(times: Iterable[float], window: float) -> int:
    ordered = list(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def identifying_params(body: bytes, content_type: str) -> dict[str, str] | None:
    """The top-level request parameters that name things, from a JSON or form body.

    Values are cut at 200 characters and at most 16 parameters are kept; anything not
    matching the allow list (a ``SecretString``, a ``Value``, an ``ExternalId``, code, nested
    structures) is left out. ``None`` when the body has none or is not JSON or a form."""
    if not body or len(body) > _PARAMS_MAX_BODY:
        return None
    pairs: list[tuple[str, object]]
    if body[:1] == b"{":
        try:
            data = json.loads(body)
        except ValueError:
            return None
        pairs = list(data.items()) if isinstance(data, dict) else []
    elif content_type.startswith("application/x-www-form-urlencoded"):
        form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        # Action is the operation itself and Version the API's date: nothing to name.
        pairs = [(k, v) for k, v in form if k not in ("Action", "Version")]
    else:
        return None
    kept: dict[str, str] = {}
    for key, value in pairs:
        # A query-protocol key such as "Tags.member.1.Value" is judged by its last part.
        last = str(key).rsplit(".", 1)[-1]
        if last in _NEVER or not _IDENTIFYING.search(last):
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            continue
        kept[str(key)] = str(value)[:_VALUE_MAX]
        if len(kept) == _PARAMS_MAX:
            break
    return kept or None
