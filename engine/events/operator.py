"""Events of the operator stream ``ops``: commands people give, with actor and reason."""

from __future__ import annotations

from typing import Literal

from engine.events.base import OpsEvent

OPS_STREAM = "ops"  # the one stream of operator commands

# ``promote_step`` is ``glam promote --step``: the bake in progress ends, one step on.
# ``hold``, ``resume`` and ``extend`` pause, unpause and lengthen the bake
# (docs/progressive-delivery.md).
OperatorCommand = Literal[
    "promote", "abort", "retry", "allow_deletes", "hold", "resume", "extend", "promote_step"
]


class OperatorCommandIssued(OpsEvent):
    """``glam promote|abort|retry|allow-deletes|hold|resume|extend``: the actor is in the
    metadata. The engine hands it to its target as an ``OperatorRequested``
    (engine.events.function)."""

    type: Literal["OperatorCommandIssued"] = "OperatorCommandIssued"
    command: OperatorCommand
    target: str  # a function stream, or a commit sha for allow_deletes
    reason: str
    seconds: int | None = None  # how much longer an extend makes the bake
    # The deployment the CLI checked the command against: the one in flight (abort, promote)
    # or the rolled-back one (retry). The engine ignores the command when that deployment is
    # no longer the one it would act on, so a late hand-over never reaches a newer deployment.
    deployment_id: str | None = None
