"""The reads a deployment makes before it changes anything, and what they decide. Pure.

    inspect_function ($LATEST, compared with the definition)
      → hash_code        only for S3 code the log has no CodeSha256 for
      → inspect_alias    only when the log does not know the alias's routing
      → inspect_stable   the version the alias serves, compared with the definition
      → inspect_signing  only when code signing is or was configured
      → decide           publish iff the stable version does not serve the definition;
                         update $LATEST only in what it differs in; set function-level
                         attributes first; a create-only difference fails before anything

Each read records what it found (engine.saga.results: member names, never values); the
decision is made from those records alone, so a replayed log decides the same.
"""

from __future__ import annotations

from dataclasses import replace

from engine.definitions.normalize import code_key, zip_sha256
from engine.saga.moves import alias_from, finish, go_on, next_phase, settings_alias
from engine.saga.results import AliasRead, FunctionRead
from engine.saga.state import Deployment, SagaState
from engine.saga.steps import Phase


def after_inspect_function(state: SagaState, dep: Deployment, read: FunctionRead) -> Deployment:
    deleting = dep.request.action == "delete"
    if dep.request.action == "remove_alias":
        return _remove_alias(state, dep, read)
    if not read.found:
        if deleting:
            return finish(dep, "succeeded", "the function was already absent")
        return replace(next_phase(dep, "create_function"), path="create")
    dep = replace(dep, function_arn=read.arn)
    if deleting:
        return replace(next_phase(dep, "detach_sources"), path="delete")
    if dep.desired is None:
        return finish(dep, "failed", "a deployment without a desired state")
    dep = replace(
        dep,
        code_sha256=read.code_sha256,
        revision_id=read.revision_id,
        latest_differs=read.differs,
        latest_code=read.code_sha256,
        latest_image=read.image_uri,
        tags_set=read.tags_set,
        tags_removed=read.tags_removed,
        stable=state.stable_version,
        first_sight=state.stable_version is None,
    )
    if read.create_only:
        return finish(dep, "failed", _create_only_reason(dep, read.create_only))
    alias = settings_alias(dep)
    deployed_alias = state.deployed.settings.alias if state.deployed else None
    moving = state.stable_version is not None and deployed_alias not in (None, alias)
    dep = replace(
        dep,
        routing_known=state.alias_known == alias and state.stable_version is not None,
        old_alias=deployed_alias if moving else None,
        alias_exists=state.alias_known == alias and state.stable_version is not None,
        expected_code=_expected_code(state, dep),
    )
    return deciding(state, dep)


def _remove_alias(state: SagaState, dep: Deployment, read: FunctionRead) -> Deployment:
    """An alias the definition no longer names, released by an operator: delete it. Its event
    sources moved to the new alias with the deployment that changed it; the function and the
    alias the definition names are left as they are. Never the alias glam deploys to."""
    alias = dep.request.alias
    dep = replace(dep, path="remove_alias", stable=state.stable_version)
    if not read.found:
        return finish(dep, "succeeded", "the function was already absent")
    current = state.deployed.settings.alias if state.deployed else None
    if not alias or alias == current:
        why = f"alias {alias!r} is the one the definition names" if alias else "no alias named"
        return finish(dep, "failed", f"not removed: {why}")
    dep = replace(dep, function_arn=read.arn, old_alias=alias)
    return next_phase(dep, "delete_alias")


def _create_only_reason(dep: Deployment, differs: dict[str, str]) -> str:
    definition = dep.desired.definition if dep.desired else {}
    file = f"{dep.desired.prefix}_lambdadef.json" if dep.desired else "the definition"
    what = "; ".join(
        f"{member} is {definition.get(member, 'left to its default')!r} in {file} but "
        f"{live!r} in AWS"
        for member, live in sorted(differs.items())
    )
    return (
        f"{what}: AWS sets {', '.join(sorted(differs))} only when a function is created. "
        "Put the live value back in the file, or give the function a new FunctionName (glam "
        "creates it; the old one is removed once its definition is deleted); nothing was changed"
    )


def _expected_code(state: SagaState, dep: Deployment) -> str | None:
    """The CodeSha256 the desired code has, when it can be known without a read: inline code
    by its digest, S3 code by the log's record of it. Image code is compared by its URI."""
    definition = dep.desired.definition if dep.desired else {}
    code = dict(definition.get("Code") or {})
    if "ZipFile" in code:
        return zip_sha256(code)
    if "ImageUri" in code:
        return None
    return state.code_record(code_key(definition))


def _is_s3(dep: Deployment) -> bool:
    code = dict(dep.desired.definition.get("Code") or {}) if dep.desired else {}
    return "S3Key" in code and "ZipFile" not in code and "ImageUri" not in code


def _signing_wanted(state: SagaState, dep: Deployment) -> bool:
    """Code signing is read only when it is or was configured."""
    wanted = dep.desired is not None and bool(dep.desired.definition.get("CodeSigningConfigArn"))
    had = state.deployed is not None and bool(state.deployed.definition.get("CodeSigningConfigArn"))
    return wanted or had


def deciding(state: SagaState, dep: Deployment) -> Deployment:
    """The next read the decision needs, or the decision once every one is made."""
    if _is_s3(dep) and dep.expected_code is None and not dep.code_hashed:
        return next_phase(dep, "hash_code")
    if not dep.routing_known:
        return next_phase(dep, "inspect_alias")
    if dep.stable is not None and dep.stable_read != dep.stable:
        return next_phase(dep, "inspect_stable")
    if _signing_wanted(state, dep) and not dep.signing_read:
        return next_phase(dep, "inspect_signing")
    return _decide(state, dep)


def _code_matches(dep: Deployment, sha: str | None, image: str | None) -> bool:
    code = dict(dep.desired.definition.get("Code") or {}) if dep.desired else {}
    if "ImageUri" in code:
        return image == str(code["ImageUri"])
    return dep.expected_code is not None and sha == dep.expected_code


def _decide(state: SagaState, dep: Deployment) -> Deployment:
    """Publish iff the stable version does not serve the definition; update $LATEST only in
    what it differs in; function-level attributes first, before anything is published."""
    assert dep.desired is not None
    primary_serves = (
        dep.stable is not None
        and dep.stable_differs == ()
        and _code_matches(dep, dep.stable_code, dep.stable_image)
    )
    todo = _attribute_phases(dep)
    config_differs = [m for m in dep.latest_differs or () if m != "Architectures"]
    skip_config = dep.latest_differs is not None and not config_differs
    skip_code = (
        dep.latest_differs is not None
        and "Architectures" not in dep.latest_differs
        and _code_matches(dep, dep.latest_code, dep.latest_image)
    )
    if primary_serves:
        if state.latest_drift:
            # $LATEST was found changed outside glam: set it back, nothing is published.
            todo += _latest_phases(skip_config, skip_code)
        if dep.alias_routing:
            # Traffic split onto another version outside glam, while the alias's own version
            # serves the definition: back to that version alone, as a rollback would.
            todo += ("reset_alias",)
        if dep.old_alias is not None and not dep.alias_exists:
            todo += ("create_alias",)
        dep = replace(dep, path="sources_only", todo=(*todo, "sources"))
        return go_on(dep)
    todo += _latest_phases(skip_config, skip_code)
    dep = replace(dep, path="update", skip_config=skip_config, skip_code=skip_code)
    return go_on(replace(dep, todo=(*todo, "publish")))


def _latest_phases(skip_config: bool, skip_code: bool) -> tuple[Phase, ...]:
    """The updates of $LATEST: its configuration, its code, each only where it differs."""
    phases: tuple[Phase, ...] = ()
    if not skip_config:
        phases += ("update_config", "wait_config")
    if not skip_code:
        phases += ("update_code", "wait_code")
    return phases


def _attribute_phases(dep: Deployment) -> tuple[Phase, ...]:
    """The function-level attributes to set: code signing (only once read), then tags."""
    assert dep.desired is not None
    phases: list[Phase] = []
    if dep.signing_read:
        wanted = dep.desired.definition.get("CodeSigningConfigArn") or None
        if wanted and wanted != dep.signing:
            phases.append("put_signing")
        elif not wanted and dep.signing:
            phases.append("delete_signing")
    if dep.tags_set:
        phases.append("tag")
    if dep.tags_removed:
        phases.append("untag")
    return tuple(phases)


def after_inspect_stable(state: SagaState, dep: Deployment, read: FunctionRead) -> Deployment:
    """The version the alias serves, compared with the definition. Read through the alias
    when the log knew its routing: an alias moved by hand shows as another version, and its
    routing is read before anything is decided."""
    if not read.found:
        if not dep.alias_read:
            # The alias (or its version) is gone: learn what the alias is now.
            return deciding(state, replace(dep, routing_known=False, stable=None))
        return _decide(state, replace(dep, stable_read=dep.stable, stable_differs=None))
    dep = replace(
        dep,
        stable_read=read.version,
        stable_differs=read.differs,
        stable_code=read.code_sha256,
        stable_image=read.image_uri,
    )
    if read.version != dep.stable and not dep.alias_read:
        return deciding(state, replace(dep, stable=read.version, routing_known=False))
    return deciding(state, dep)


def after_inspect_alias(state: SagaState, dep: Deployment, read: AliasRead) -> Deployment:
    dep = alias_from(
        replace(dep, alias_exists=read.found, routing_known=True, alias_read=True), read
    )
    # An alias on $LATEST (made outside glam) has no version to fall back to: deploy as a
    # first deployment, switching the alias to the new version without routing.
    on_version = read.found and read.function_version not in (None, "$LATEST")
    if on_version:
        stable = read.function_version
    elif not read.found and dep.old_alias is not None:
        stable = state.stable_version  # the new alias starts where the old one serves
    else:
        stable = None
    return deciding(state, replace(dep, stable=stable))
