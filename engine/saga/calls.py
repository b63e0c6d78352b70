"""The call each phase of a deployment makes, built from the saga's state. Pure.

``phase_call`` is the one place that turns a phase into an AWS operation (engine.saga.effects)
with its arguments; ``PERFORMS`` says which operation each mutating step performs, which is
all a dangling intent (known in the log by its step name only) needs to find the read that
settles it. The rules that protect live traffic are checked here, before a call is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from engine.definitions.normalize import code_update, configuration_members, configuration_update
from engine.events.desired import EventSources
from engine.events.function import StepStarted
from engine.saga.effects import (
    Call,
    CreateAlias,
    CreateFunction,
    DeleteAlias,
    DeleteFunction,
    DeleteSigning,
    DeleteVersion,
    DetachSources,
    GetAlias,
    GetFunction,
    GetSigning,
    HashCode,
    InvokeHook,
    Mutation,
    PublishVersion,
    PutSigning,
    Read,
    ReconcileSources,
    TagFunction,
    UntagFunction,
    UpdateAlias,
    UpdateCode,
    UpdateConfig,
)
from engine.saga.hooks import POINTS, payload
from engine.saga.state import (
    Deployment,
    SagaState,
    assert_alias_safe,
    check_deletable,
)
from engine.saga.steps import HookStep, PhaseStep, Step, StepName
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
    "reset_alias": UpdateAlias,
    "sources": ReconcileSources,
    "shift": UpdateAlias,
    "promote": UpdateAlias,
    "rollback_alias": UpdateAlias,
    "delete_old": DeleteVersion,
    "rollback_delete_new": DeleteVersion,
    "rollback_sources": ReconcileSources,
    "detach_sources": DetachSources,
    "detach_old_alias": ReconcileSources,
    "delete_function": DeleteFunction,
    "delete_alias": DeleteAlias,
    "tag": TagFunction,
    "untag": UntagFunction,
    "put_signing": PutSigning,
    "delete_signing": DeleteSigning,
    "hook_before": InvokeHook,
    "hook_after": InvokeHook,
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


def _alias_arn(state: SagaState, dep: Deployment, alias: str | None = None) -> str:
    arn = dep.function_arn or state.function_name
    alias = alias or state.alias
    return f"{arn}:{alias}" if alias else arn


def _unqualified_arn(state: SagaState, dep: Deployment) -> str:
    return dep.function_arn or state.function_name


def phase_call(state: SagaState, dep: Deployment) -> Call:
    """The call this phase makes, grouped by what it acts on."""
    name = state.function_name
    phase = dep.phase
    definition = dep.desired.definition if dep.desired else None
    match phase:
        case "inspect_function":
            return read_call(phase, GetFunction(name, against=definition))
        case "inspect_stable":
            # Through the alias while its routing comes from the log (an alias moved by hand
            # shows as another version); by number once it was read, or for a new alias.
            by_alias = not dep.alias_read and dep.old_alias is None
            qualifier = (state.alias if by_alias else None) or dep.stable
            return read_call(phase, GetFunction(name, qualifier=qualifier, against=definition))
        case "wait_active" | "wait_config" | "wait_code":
            return read_call(phase, GetFunction(name))
        case "readiness":
            return read_call(phase, GetFunction(name, qualifier=dep.new_version))
        case "inspect_alias" | "verify_old" | "rollback_verify":
            return read_call(phase, GetAlias(name, state.alias or ""))
        case "hash_code":
            code = dict(definition.get("Code") or {}) if definition else {}
            where = HashCode(
                str(code.get("S3Bucket", "")),
                str(code.get("S3Key", "")),
                code.get("S3ObjectVersion"),
            )
            return read_call(phase, where)
        case "inspect_signing":
            return read_call(phase, GetSigning(name))
        case "create_function" | "update_config" | "update_code" | "publish":
            return _function_write(state, dep, phase)
        case "create_alias" | "reset_alias" | "shift" | "promote" | "rollback_alias":
            return _alias_write(state, dep, phase)
        case "delete_old" | "rollback_delete_new" | "delete_function" | "delete_alias":
            return _delete(state, dep, phase)
        case "sources" | "rollback_sources" | "detach_sources" | "detach_old_alias":
            return _sources_write(state, dep, phase)
        case "tag" | "untag" | "put_signing" | "delete_signing":
            return _attribute_write(state, dep, phase)
        case "hook_before" | "hook_after":
            return _hook(state, dep, phase)
        case "alarm_check" | "bake" | "gate" | "finish":
            # Waits, the gate's read (it needs the time: engine.saga.gate) and the end.
            raise AssertionError(f"phase {phase} is handled by next_effect")


def _function_write(
    state: SagaState,
    dep: Deployment,
    phase: Literal["create_function", "update_config", "update_code", "publish"],
) -> Call:
    name = state.function_name
    if phase == "publish":
        # No Description: the version keeps the function's, the user's. What finds it after a
        # lost answer is the highest version known before it and the code it must have.
        stable = int(dep.stable) if dep.stable and dep.stable.isdigit() else 0
        publish = PublishVersion(
            name,
            code_sha256=dep.code_sha256,
            revision_id=dep.revision_id,
            known_version=max(state.highest_version, stable),
        )
        return mutation(dep, phase, publish)
    assert dep.desired is not None
    definition = dep.desired.definition
    match phase:
        case "create_function":
            # glam publishes itself, after the function is Active.
            request = {**definition, "FunctionName": name, "Publish": False}
            return mutation(dep, phase, CreateFunction(request))
        case "update_config":
            return mutation(dep, phase, UpdateConfig(name, _configuration_update(dep)))
        case "update_code":
            return mutation(dep, phase, UpdateCode(name, code_update(definition)))


def _configuration_update(dep: Deployment) -> dict[str, object]:
    """Only what $LATEST differs in, each member at its desired value (a member the file
    dropped at AWS's default). Forced (AWS published nothing new): the Description alone, so
    that $LATEST counts as changed. Not compared (a log of an earlier glam): what the file
    sets."""
    assert dep.desired is not None
    definition = dep.desired.definition
    if dep.forced:
        members: tuple[str, ...] = ("Description",)
    elif dep.latest_differs is None:
        members = tuple(sorted(set(definition) & configuration_members()))
    else:
        members = tuple(m for m in dep.latest_differs if m != "Architectures")
    return configuration_update(definition, members)


def _alias_write(
    state: SagaState,
    dep: Deployment,
    phase: Literal["create_alias", "reset_alias", "shift", "promote", "rollback_alias"],
) -> Call:
    name, alias = state.function_name, state.alias or ""
    match phase:
        case "create_alias":
            # A new alias of a function already served elsewhere starts on that version (the
            # shift then moves it); a first alias goes straight to the new version.
            target = dep.stable if dep.old_alias is not None and dep.stable else dep.new_version
            assert target is not None
            assert_alias_safe(target, {})
            return mutation(dep, phase, CreateAlias(name, alias, target))
        case "shift":
            assert dep.stable is not None
            assert dep.new_version is not None
            routing = {dep.new_version: dep.schedule[dep.shift_index]}
            assert_alias_safe(dep.stable, routing)
            return mutation(dep, phase, UpdateAlias(name, alias, dep.stable, routing))
        case "promote" | "rollback_alias" | "reset_alias":
            target = dep.new_version if phase == "promote" else dep.stable
            assert target is not None
            assert_alias_safe(target, {})
            return mutation(dep, phase, UpdateAlias(name, alias, target, routing=None))


def _delete(
    state: SagaState,
    dep: Deployment,
    phase: Literal["delete_old", "rollback_delete_new", "delete_function", "delete_alias"],
) -> Call:
    if phase == "delete_function":
        return mutation(dep, phase, DeleteFunction(state.function_name))
    if phase == "delete_alias":
        return mutation(dep, phase, DeleteAlias(state.function_name, dep.old_alias or ""))
    victim = dep.stable if phase == "delete_old" else dep.new_version
    assert victim is not None
    check_deletable(victim, dep.alias_version, dep.routing)
    return mutation(dep, phase, DeleteVersion(state.function_name, victim))


def _sources_write(
    state: SagaState,
    dep: Deployment,
    phase: Literal["sources", "rollback_sources", "detach_sources", "detach_old_alias"],
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
        case "detach_old_alias":
            # Only from the old alias, and nothing the new alias carries the same way (an API
            # route that reaches the alias through a stage variable is wired once for both).
            assert dep.old_alias is not None
            assert dep.desired is not None
            carried = {s for s in dep.desired.event_sources.push if s.stage_variable}
            wired = deployed or EventSources()
            previous = EventSources(
                push=tuple(s for s in wired.push if s not in carried), mappings=wired.mappings
            )
            old_arn = _alias_arn(state, dep, dep.old_alias)
            detach = ReconcileSources(state.function_name, old_arn, EventSources(), previous)
            return mutation(dep, phase, detach)


def _attribute_write(
    state: SagaState,
    dep: Deployment,
    phase: Literal["tag", "untag", "put_signing", "delete_signing"],
) -> Call:
    """A function-level attribute, set with its own API before anything is published."""
    assert dep.desired is not None
    definition = dep.desired.definition
    name = state.function_name
    match phase:
        case "tag":
            tags = {str(k): str(v) for k, v in (definition.get("Tags") or {}).items()}
            wanted = {k: tags[k] for k in dep.tags_set if k in tags}
            return mutation(dep, phase, TagFunction(_unqualified_arn(state, dep), wanted))
        case "untag":
            untag = UntagFunction(_unqualified_arn(state, dep), dep.tags_removed)
            return mutation(dep, phase, untag)
        case "put_signing":
            arn = str(definition.get("CodeSigningConfigArn") or "")
            return mutation(dep, phase, PutSigning(name, arn))
        case "delete_signing":
            return mutation(dep, phase, DeleteSigning(name))


def _hook(state: SagaState, dep: Deployment, phase: HookStep) -> Call:
    """The invoke of the traffic hook configured at this point."""
    point = POINTS[phase]
    hook = dep.desired.settings.hooks.at(point) if dep.desired else None
    assert hook is not None, f"{phase} entered with no {point} hook"
    invoke = InvokeHook(
        hook.function, payload(state, dep, point), float(hook.timeout_seconds), point
    )
    return mutation(dep, phase, invoke)
