"""Entry point of the moto subprocess: ``python -m engine.local._moto_main``.

It binds moto's WSGI application to 127.0.0.1 on a port the kernel picks (no race between
choosing a free port and binding it), prints ``PORT <n>`` on stdout, and serves until its
stdin closes or it gets SIGTERM/SIGINT. Watching stdin means the server also goes away when
its parent dies without cleaning up, so no orphan keeps a port open.
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


def main() -> None:
    """Serve moto on loopback until stdin closes or a stop signal arrives."""
    # Credentials only keep botocore inside moto from looking anywhere else for them.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # werkzeug logs one line per request; the proxy keeps its own journal instead.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    _patch_monotonic_versions()
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
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
