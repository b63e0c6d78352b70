"""The deployment saga: pure state, schedule and decisions (see engine.saga.saga)."""

from engine.saga.effects import (
    Call,
    Done,
    Effect,
    Failed,
    Ok,
    Outcome,
    Record,
    SagaContext,
    Wait,
    Waited,
)
from engine.saga.saga import next_effect, on_outcome
from engine.saga.schedule import DEFAULT_POLICY, RetryPolicy, SagaPolicy, weights
from engine.saga.state import (
    Deployment,
    InvariantViolation,
    SagaState,
    evolve,
    fold,
    initial_state,
    split_definition,
    version_marker,
)

__all__ = [
    "DEFAULT_POLICY",
    "Call",
    "Deployment",
    "Done",
    "Effect",
    "Failed",
    "InvariantViolation",
    "Ok",
    "Outcome",
    "Record",
    "RetryPolicy",
    "SagaContext",
    "SagaPolicy",
    "SagaState",
    "Wait",
    "Waited",
    "evolve",
    "fold",
    "initial_state",
    "next_effect",
    "on_outcome",
    "split_definition",
    "version_marker",
    "weights",
]
