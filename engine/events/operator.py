"""Events of the operator stream ``ops``: commands people give, with actor and reason."""

from __future__ import annotations

from typing import Literal

from engine.events.base import EventBase


class OperatorCommandIssued(EventBase):
    type: Literal["OperatorCommandIssued"] = "OperatorCommandIssued"
    command: Literal["promote", "abort", "retry", "allow_deletes"]
    target: str  # a function stream, or a commit sha for allow_deletes
    reason: str
