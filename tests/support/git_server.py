"""A read-only smart-HTTP Git server on 127.0.0.1, for tests of the Git source over HTTP.

It serves one repository at ``/repo.git`` from a thread and stops when the context exits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dulwich.repo import Repo
from dulwich.server import DictBackend
from dulwich.web import make_wsgi_chain


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines would go to stderr; Authorization headers never appear there


@contextmanager
def serve_repository(
    path: Path, *, on_request: Callable[[dict[str, Any]], None] | None = None
) -> Iterator[str]:
    """Serve ``path`` over smart HTTP; yields the URL of the repository.

    ``on_request`` sees each WSGI environ (tests use it to check what a client sent).
    """
    repo = Repo(str(path))
    repos: Any = {b"/repo.git": repo}
    backend: Any = DictBackend(repos)
    app: Any = make_wsgi_chain(backend)

    def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if on_request is not None:
            on_request(environ)
        result: Iterable[bytes] = app(environ, start_response)
        return result

    server = make_server("127.0.0.1", 0, wsgi, WSGIServer, _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="git-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/repo.git"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        repo.close()
