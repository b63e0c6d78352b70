"""The journal: every call that reached the embedded AWS, in arrival order.

Tests and benchmarks read it to check what glam did rather than what AWS let it do: the
invariants below hold for the calls glam *attempted*, including the ones the proxy refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

# Lambda operations that do not count against the control-plane quota: the data plane.
DATA_PLANE = frozenset({"Invoke", "InvokeAsync", "InvokeWithResponseStream"})


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
        self, operation: str | None = None, *, function: str | None = None
    ) -> list[JournalEntry]:
        """Entries of one operation and/or function."""
        return [
            e
            for e in self._entries
            if (operation is None or e.operation == operation)
            and (function is None or e.function == function)
        ]

    def referenced_version_deletes(self) -> list[JournalEntry]:
        """DeleteFunction calls that targeted a version an alias or its routing referenced."""
        return [e for e in self._entries if e.operation == "DeleteFunction" and e.referenced_by]

    def max_rate(
        self, bucket: str = "control", *, window: float = 1.0, region: str | None = None
    ) -> int:
        """The most calls counted against ``bucket`` in any ``window`` seconds (attempts,
        including the ones refused with 429)."""
        times = sorted(
            e.t
            for e in self._entries
            if e.quota_bucket == bucket and (region is None or e.region == region)
        )
        return _max_in_window(times, window)

    def check_invariants(self, *, control_rps: int = 15, get_function_rps: int = 100) -> None:
        """Raise ``AssertionError`` naming the first broken invariant: no delete of a
        referenced version attempted; no quota exceeded in any 1 s window, per region."""
        bad = self.referenced_version_deletes()
        if bad:
            e = bad[0]
            raise AssertionError(
                f"DeleteFunction {e.function}:{e.qualifier} attempted while referenced by "
                f"{', '.join(e.referenced_by)} (seq {e.seq})"
            )
        for region in {e.region for e in self._entries}:
            for bucket, limit in (("control", control_rps), ("get_function", get_function_rps)):
                peak = self.max_rate(bucket, region=region)
                if peak > limit:
                    raise AssertionError(
                        f"{peak} {bucket} calls within 1 s in {region}, quota is {limit}"
                    )


def _max_in_window(times: Iterable[float], window: float) -> int:
    ordered = list(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
