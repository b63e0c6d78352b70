"""Entry point of the moto subprocess: ``python -m engine.local._moto_main``.

It binds moto's WSGI application to 127.0.0.1 on a port the kernel picks (no race between
choosing a free port and binding it), prints ``PORT <n>`` on stdout, and serves until its
stdin closes or it gets SIGTERM/SIGINT. Watching stdin means the server also goes away when
its parent dies without cleaning up, so no orphan keeps a port open.

Only the proxy is meant to talk to it, so it is set up for that: no CORS headers (moto would
let any web page read its answers), the account of a call taken from its credentials alone
(never from ``MOTO_ACCOUNT_ID``), and of moto's management API only the reset the proxy
uses (``POST /moto-api/reset``); the state dump, seed and recorder answer 404.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any


def _patch_monotonic_versions() -> None:
    """Real Lambda never reuses a version number: after version 1 is deleted, the next publish
    is 3, not 2. moto numbers a new version ``len(versions) + 1``, so a publish after deleting
    the old version would hand out a number that already meant other code, and a deployment
    would look like a no-op. Number versions from a per-function counter instead (the counter
    lives in the function's entry, so deleting the whole function restarts at 1, as AWS does).
    """
    import copy

    from moto.awslambda.models import LambdaFunction, LambdaStorage

    def publish_version(
        self: LambdaStorage, name_or_arn: str, description: str = ""
    ) -> LambdaFunction | None:
        function = self.get_function_by_name_or_arn_forbid_qualifier(name_or_arn)
        entry = self._functions.get(function.function_name)
        if not entry or not entry["latest"]:
            return None
        versions: list[LambdaFunction] = entry["versions"]
        if versions and not function.code_or_config_updated:
            return versions[-1]  # nothing changed since the last publish: AWS returns it
        function.code_or_config_updated = False
        last = max([entry.get("glam_last_version", 0), *(int(v.version) for v in versions)])
        entry["glam_last_version"] = last + 1
        fn: LambdaFunction = copy.copy(entry["latest"])
        fn.set_version(last + 1)
        if description:
            fn.description = description
        versions.append(fn)
        self._arns[fn.function_arn] = fn
        return fn

    LambdaStorage.publish_version = publish_version  # type: ignore[method-assign]


def _patch_code_signing() -> None:
    """moto reads a function's code-signing configuration but cannot set or remove it: add
    PutFunctionCodeSigningConfig and DeleteFunctionCodeSigningConfig, on $LATEST's record (a
    code-signing configuration belongs to the function, not to a version)."""
    import json
    from urllib.parse import unquote

    from moto.awslambda.responses import LambdaResponse

    def put(self: LambdaResponse) -> Any:
        name = unquote(self.path.rsplit("/", 2)[-2])
        arn = self.json_body["CodeSigningConfigArn"]
        self.backend.get_function(name).code_signing_config_arn = arn
        return 200, {}, json.dumps({"CodeSigningConfigArn": arn, "FunctionName": name})

    def delete(self: LambdaResponse) -> Any:
        name = unquote(self.path.rsplit("/", 2)[-2])
        self.backend.get_function(name).code_signing_config_arn = None
        return 204, {"status": 204}, "{}"

    LambdaResponse.put_function_code_signing_config = put  # type: ignore[attr-defined]
    LambdaResponse.delete_function_code_signing_config = delete  # type: ignore[attr-defined]


# UpdateFunctionConfiguration members moto does not keep at all: kept as given and answered
# in the configuration (SnapStart with the optimisation status AWS reports).
_KEPT_MEMBERS = (
    "DeadLetterConfig",
    "FileSystemConfigs",
    "LoggingConfig",
    "SnapStart",
    "CapacityProviderConfig",
    "DurableConfig",
)


def _patch_configuration_members() -> None:
    """moto's UpdateFunctionConfiguration applies only some members (not TracingConfig,
    KMSKeyArn, EphemeralStorage, ImageConfig, and none of ``_KEPT_MEMBERS``, which its
    configuration never answers either; an Environment without Variables fails). Apply every
    member of botocore's request shape, on create too, so that what a deployment set is
    what GetFunction answers: desired == live after a deployment, as on AWS."""
    from moto.awslambda.models import ImageConfig, LambdaBackend, LambdaFunction

    update = LambdaFunction.update_configuration
    configuration = LambdaFunction.get_configuration
    create = LambdaBackend.create_function

    def keep(fn: LambdaFunction, members: dict[str, Any]) -> None:
        kept = dict(getattr(fn, "glam_members", {}))  # a new dict: versions share the old one
        kept.update({k: members[k] for k in _KEPT_MEMBERS if k in members})
        fn.glam_members = kept  # type: ignore[attr-defined]

    def update_configuration(
        self: LambdaFunction, config_updates: dict[str, Any]
    ) -> dict[str, Any]:
        updates = config_updates
        rest = dict(updates)
        for key, value in updates.items():
            match key:
                case "TracingConfig":
                    self.tracing_config = value
                case "KMSKeyArn":
                    self.kms_key_arn = value or None
                case "EphemeralStorage":
                    self.ephemeral_storage = value["Size"]
                case "ImageConfig":
                    self.image_config = ImageConfig(value)
                    self.glam_image_config = True  # type: ignore[attr-defined]
                case "Environment":
                    self.environment_vars = dict(value.get("Variables") or {})
                    del rest[key]
                case _:
                    continue
        keep(self, updates)
        return update(self, rest)

    def get_configuration(self: LambdaFunction, on_create: bool = False) -> dict[str, Any]:
        answer = configuration(self, on_create)
        for key, value in getattr(self, "glam_members", {}).items():
            if key == "SnapStart":
                apply_on = value.get("ApplyOn", "None")
                status = "Off" if apply_on == "None" else "On"
                value = {"ApplyOn": apply_on, "OptimizationStatus": status}
            answer[key] = value
        if self.package_type != "Image" and getattr(self, "glam_image_config", False):
            # moto answers ImageConfig for an image only: an update's is answered as well.
            answer["ImageConfigResponse"] = {"ImageConfig": self.image_config.response()}
        return answer

    def create_function(self: LambdaBackend, spec: dict[str, Any]) -> LambdaFunction:
        fn = create(self, spec)
        latest = self.get_function(spec["FunctionName"])
        keep(latest, spec)
        if fn is not latest:
            keep(fn, spec)
        return fn

    LambdaFunction.update_configuration = update_configuration  # type: ignore[method-assign]
    LambdaFunction.get_configuration = get_configuration  # type: ignore[method-assign]
    LambdaBackend.create_function = create_function  # type: ignore[method-assign]


def _management_api_guard(app: Any) -> Any:
    """Wrap the WSGI app: of ``/moto-api/...`` only ``POST /moto-api/reset`` gets through.

    The check sees the decoded path exactly as moto's dispatcher does, so no spelling of the
    path reaches what the guard refuses."""

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        management = path.startswith("/moto-api") or path == "/favicon.ico"
        reset = path == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST"
        if management and not reset:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        return app(environ, start_response)

    return guarded


def main() -> None:
    """Serve moto on loopback until stdin closes or a stop signal arrives."""
    # Run as a file, this folder comes first on sys.path: its modules must not stand in for
    # packages moto imports (a "responses.py" here would).
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    # Credentials only keep botocore inside moto from looking anywhere else for them.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # Read by moto.settings at import: no Access-Control-Allow-Origin: * on every answer.
    os.environ["MOTO_DISABLE_GLOBAL_CORS"] = "true"
    # It would put every call in one account whatever its credentials say.
    os.environ.pop("MOTO_ACCOUNT_ID", None)
    # werkzeug logs one line per request; the proxy keeps its own journal instead.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    _patch_monotonic_versions()
    _patch_code_signing()
    _patch_configuration_members()
    from engine.local._moto_invoke import patch_invoke, patch_routing

    patch_invoke()
    patch_routing()
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = _management_api_guard(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)

    def stop(*_: Any) -> None:
        # shutdown() blocks until serve_forever returns, so never call it on the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watch_stdin() -> None:
        sys.stdin.buffer.read()
        stop()

    threading.Thread(target=watch_stdin, daemon=True).start()
    sys.stdout.write(f"PORT {server.server_port}\n")
    sys.stdout.flush()
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
