"""The call each phase of a deployment makes, built from the saga's state. Pure.

``phase_call`` is the one place that turns a phase into an AWS operation (engine.saga.effects)
with its arguments; ``PERFORMS`` says which operation each mutating step performs, which is
all a dangling intent (known in the log by its step name only) needs to find the read that
settles it. The rules that protect live traffic are checked here, before a call is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from engine.events.desired import EventSources
from engine.events.function import StepStarted
from engine.saga.effects import (
    Call,
    CreateAlias,
    CreateFunction,
    DeleteFunction,
    DeleteVersion,
    DetachSources,
    GetAlias,
    GetFunction,
    Mutation,
    PublishVersion,
    Read,
    ReconcileSources,
    UpdateAlias,
    UpdateCode,
    UpdateConfig,
)
from engine.saga.state import (
    Deployment,
    SagaState,
    assert_alias_safe,
    check_deletable,
    split_definition,
    version_marker,
)
from engine.saga.steps import PhaseStep, Step, StepName
from engine.sources_plan import union_sources

# The operation each mutating step performs. An intent in the log names only its step: the
# operation's ``resolver`` is the read that settles it, or None when repeating the step is
# harmless (it is then simply repeated). ``mutation`` builds every one against it.
PERFORMS: Mapping[Step, type[Mutation]] = {
    "create_function": CreateFunction,
    "update_config": UpdateConfig,
    "update_code": UpdateCode,
    "publish": PublishVersion,
    "create_alias": CreateAlias,
    "sources": ReconcileSources,
    "shift": UpdateAlias,
    "promote": UpdateAlias,
    "rollback_alias": UpdateAlias,
    "delete_old": DeleteVersion,
    "rollback_delete_new": DeleteVersion,
    "rollback_sources": ReconcileSources,
    "detach_sources": DetachSources,
    "delete_function": DeleteFunction,
}


def read_call(step: Step, operation: Read) -> Call:
    return Call(step=StepName(step), operation=operation)


def mutation(dep: Deployment, step: PhaseStep, operation: Mutation) -> Call:
    """The call of a mutating step, with its write-ahead intent: the attempt number, and the
    arguments it may record (never the definition: it can hold environment values)."""
    # The resolver of a dangling intent is found by its step (PERFORMS): a step must always
    # perform the same operation.
    assert type(operation) is PERFORMS.get(step), f"{step} performs {PERFORMS.get(step)}"
    attempt = dep.dangling.attempt + 1 if dep.dangling is not None else dep.attempt
    name = StepName(step)
    intent = StepStarted(
        deployment_id=dep.deployment_id, step=name, attempt=attempt, request=operation.summary()
    )
    return Call(step=name, operation=operation, intent=intent)


def _alias_arn(state: SagaState, dep: Deployment) -> str:
    arn = dep.function_arn or state.function_name
    return f"{arn}:{state.alias}" if state.alias else arn


def phase_call(state: SagaState, dep: Deployment) -> Call:
    """The call this phase makes, grouped by what it acts on."""
    name = state.function_name
    phase = dep.phase
    match phase:
        case "inspect_function" | "wait_active" | "wait_config" | "wait_code":
            return read_call(phase, GetFunction(name))
        case "readiness":
            return read_call(phase, GetFunction(name, qualifier=dep.new_version))
        case "inspect_alias" | "verify_old" | "rollback_verify":
            return read_call(phase, GetAlias(name, state.alias or ""))
        case "create_function" | "update_config" | "update_code" | "publish":
            return _function_write(state, dep, phase)
        case "create_alias" | "shift" | "promote" | "rollback_alias":
            return _alias_write(state, dep, phase)
        case "delete_old" | "rollback_delete_new" | "delete_function":
            return _delete(state, dep, phase)
        case "sources" | "rollback_sources" | "detach_sources":
            return _sources_write(state, dep, phase)
        case "bake" | "finish":
            raise AssertionError(f"phase {phase} has no call")  # handled by next_effect


def _function_write(
    state: SagaState,
    dep: Deployment,
    phase: Literal["create_function", "update_config", "update_code", "publish"],
) -> Call:
    name = state.function_name
    if phase == "publish":
        publish = PublishVersion(
            name,
            description=version_marker(dep.deployment_id),
            code_sha256=dep.code_sha256,
            revision_id=dep.revision_id,
        )
        return mutation(dep, phase, publish)
    assert dep.desired is not None
    definition = dep.desired.definition
    code, configuration = split_definition(definition)
    match phase:
        case "create_function":
            # glam publishes itself, after the function is Active, with its marker.
            request = {**definition, "FunctionName": name, "Publish": False}
            return mutation(dep, phase, CreateFunction(request))
        case "update_config":
            return mutation(dep, phase, UpdateConfig(name, configuration))
        case "update_code":
            return mutation(dep, phase, UpdateCode(name, code))


def _alias_write(
    state: SagaState,
    dep: Deployment,
    phase: Literal["create_alias", "shift", "promote", "rollback_alias"],
) -> Call:
    name, alias = state.function_name, state.alias or ""
    match phase:
        case "create_alias":
            assert dep.new_version is not None
            assert_alias_safe(dep.new_version, {})
            return mutation(dep, phase, CreateAlias(name, alias, dep.new_version))
        case "shift":
            assert dep.stable is not None
            assert dep.new_version is not None
            routing = {dep.new_version: dep.schedule[dep.shift_index]}
            assert_alias_safe(dep.stable, routing)
            return mutation(dep, phase, UpdateAlias(name, alias, dep.stable, routing))
        case "promote" | "rollback_alias":
            target = dep.new_version if phase == "promote" else dep.stable
            assert target is not None
            assert_alias_safe(target, {})
            return mutation(dep, phase, UpdateAlias(name, alias, target, routing=None))


def _delete(
    state: SagaState,
    dep: Deployment,
    phase: Literal["delete_old", "rollback_delete_new", "delete_function"],
) -> Call:
    if phase == "delete_function":
        return mutation(dep, phase, DeleteFunction(state.function_name))
    victim = dep.stable if phase == "delete_old" else dep.new_version
    assert victim is not None
    check_deletable(victim, dep.alias_version, dep.routing)
    return mutation(dep, phase, DeleteVersion(state.function_name, victim))


def _sources_write(
    state: SagaState,
    dep: Deployment,
    phase: Literal["sources", "rollback_sources", "detach_sources"],
) -> Call:
    # What glam may have wired: the deployed sources and any an unsuccessful attempt left
    # behind, so nothing it attached is orphaned.
    deployed = state.deployed.event_sources if state.deployed else None
    target = (state.function_name, _alias_arn(state, dep))
    match phase:
        case "sources":
            assert dep.desired is not None
            previous = union_sources(deployed, state.stray_sources)
            return mutation(
                dep, phase, ReconcileSources(*target, dep.desired.event_sources, previous)
            )
        case "rollback_sources":
            assert dep.desired is not None
            assert deployed is not None
            attempted = union_sources(dep.desired.event_sources, state.stray_sources)
            return mutation(dep, phase, ReconcileSources(*target, deployed, attempted))
        case "detach_sources":
            wired = union_sources(deployed, state.stray_sources) or EventSources()
            return mutation(dep, phase, DetachSources(*target, wired))
