"""The deployment saga: pure state, schedule and decisions (see engine.saga.saga).

The names below are loaded on first use rather than at import: the event models use the
step vocabulary (engine.saga.steps), and the saga's modules use the event models, so this
package must be importable while the events are still loading.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.saga.effects import (
        Call,
        CallOutcome,
        Done,
        Effect,
        Failed,
        Ok,
        Record,
        SagaContext,
        Wait,
        Waited,
    )
    from engine.saga.replay import evolve, fold
    from engine.saga.saga import next_effect, on_outcome
    from engine.saga.schedule import DEFAULT_POLICY, SagaPolicy, StepRetry, weights
    from engine.saga.state import (
        Deployment,
        InvariantViolation,
        SagaState,
        initial_state,
        version_marker,
    )
    from engine.saga.steps import StepName

_HOMES = {
    "engine.saga.effects": (
        "Call",
        "CallOutcome",
        "Done",
        "Effect",
        "Failed",
        "Ok",
        "Record",
        "SagaContext",
        "Wait",
        "Waited",
    ),
    "engine.saga.replay": ("evolve", "fold"),
    "engine.saga.saga": ("next_effect", "on_outcome"),
    "engine.saga.schedule": ("DEFAULT_POLICY", "SagaPolicy", "StepRetry", "weights"),
    "engine.saga.state": (
        "Deployment",
        "InvariantViolation",
        "SagaState",
        "initial_state",
        "version_marker",
    ),
    "engine.saga.steps": ("StepName",),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "DEFAULT_POLICY",
    "Call",
    "CallOutcome",
    "Deployment",
    "Done",
    "Effect",
    "Failed",
    "InvariantViolation",
    "Ok",
    "Record",
    "SagaContext",
    "SagaPolicy",
    "SagaState",
    "StepName",
    "StepRetry",
    "Wait",
    "Waited",
    "evolve",
    "fold",
    "initial_state",
    "next_effect",
    "on_outcome",
    "version_marker",
    "weights",
]

if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        module = _HOME_OF.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
