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


def main() -> None:
    """Serve moto on loopback until stdin closes or a stop signal arrives."""
    # Credentials only keep botocore inside moto from looking anywhere else for them.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # werkzeug logs one line per request; the proxy keeps its own journal instead.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

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
