"""The limits every function's files are read and rendered under.

A template is code the repository's authors wrote, run by the engine: without limits one file
could take the engine's memory or hold the planner for ever. Each limit, when hit, makes that
one function invalid (``DefinitionRejected`` naming the file and the limit); every other
function of the commit is planned as usual. ``docs/limits.md`` lists them with their defaults.

Two layers enforce them (``engine.definitions.sandbox`` and ``engine.git.render``):

    in the sandbox     cheap checks while the template runs: ranges, string and list growth,
                       call depth, output size, a cooperative deadline
    in a process       every function is read and rendered in a worker process with an address
                       space limit and a per-file timer, killed and replaced when it overruns;
                       the engine never runs a template itself

The defaults can be changed with environment variables (``GLAM_RENDER_FILE_SECONDS`` ...), read
once by ``RenderLimits.from_env``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from engine.errors import ConfigError

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """Limits on reading and rendering the files of one function prefix.

    ``file_seconds``   wall-clock time to read, render and check one file
    ``commit_seconds`` wall-clock time to render every function a commit needs
    ``output_bytes``   size of one rendered file, and of any string or list a template builds
    ``call_depth``     nested calls (macros, recursive loops) inside one template
    ``memory_bytes``   address space of a render worker process
    ``workers``        render worker processes at most
    """

    file_seconds: float = 2.0
    commit_seconds: float = 120.0
    output_bytes: int = MIB
    call_depth: int = 64
    memory_bytes: int = 512 * MIB
    workers: int = 2

    def __post_init__(self) -> None:
        for item in fields(self):
            if not getattr(self, item.name) > 0:
                raise ConfigError(
                    f"render limit {item.name} must be positive", hint="fix the setting"
                )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RenderLimits:
        """The defaults, with ``GLAM_RENDER_<FIELD>`` overrides (``GLAM_RENDER_FILE_SECONDS=5``)."""
        env = os.environ if environ is None else environ
        changes: dict[str, float | int] = {}
        for item in fields(cls):
            raw = env.get(f"GLAM_RENDER_{item.name.upper()}")
            if raw is None or not raw.strip():
                continue
            try:
                changes[item.name] = float(raw) if item.type == "float" else int(raw)
            except ValueError:
                raise ConfigError(
                    f"GLAM_RENDER_{item.name.upper()}={raw!r} is not a number",
                    hint="unset it or give a number",
                ) from None
        return cls(**changes)  # type: ignore[arg-type]


# How a rejection for want of render time begins: the function was not rendered at all, so
# nothing is known against it, and the next plan renders it again (engine.observe).
NOT_RENDERED = "not rendered: "


def seconds(value: float) -> str:
    """``2`` -> ``"2 s"``, ``0.5`` -> ``"0.5 s"``: limits as the messages name them."""
    return f"{value:g} s"


def size(value: int) -> str:
    """``1048576`` -> ``"1 MiB"``; other sizes in bytes."""
    if value % MIB == 0:
        return f"{value // MIB} MiB"
    return f"{value} bytes"


# The bounds of a deployment definition's durations and lists (engine.definitions.settings),
# each a mistake caught when the commit is planned rather than a deployment that waits a week.
WAIT_SECONDS_MAX = 86_400
"""The longest bake after one traffic step (``waitInterval``): a day."""

TRAFFIC_STEPS_MAX = 20
"""The most steps a custom schedule (``trafficShiftingConfig.steps``) may list."""

HOOK_SECONDS_MAX = 25
"""The longest deadline of a traffic hook (``timeoutSeconds``): below the 30 s read timeout of
glam's AWS clients, so the deadline, not the connection, decides when a hook has timed out."""

GATE_INVOCATIONS_MAX = 1_000_000_000
"""The largest ``trafficGate.minInvocations``."""

SYNTHETIC_RATE_MAX = 10.0
"""The most invocations per second ``trafficGate.syntheticInvoke`` may send: synthetic traffic
is a probe for quiet functions, not a load test, and each one runs the function for real."""

SYNTHETIC_PAYLOAD_MAX = 6_000
"""The largest ``trafficGate.syntheticInvoke.payload``, in bytes of JSON (Lambda takes 6 MB
synchronously; a probe needs far less, and the payload is recorded with the settings)."""
