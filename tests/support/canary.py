"""Secret canaries: unique values planted where secrets live (credentials, tokens, a function's
environment, template inputs) and a scan of every place glam writes for them.

    scan = CanaryScan([Canary("aws secret key", SECRET), Canary("env", VALUE, {"log database"})])
    scan.text("stderr of glam run", err)
    scan.sqlite("log database", db)
    scan.tree("data folder", data_dir, skip=("glam.db",))
    scan.assert_clean()

A canary is looked for as written, percent-encoded (a URL) and JSON-escaped, in text and in
bytes. ``allowed`` names the sinks where it belongs (the log holds a function's environment:
it is the desired state glam deploys); a sink matches an allowed name it starts with. A new
sink (metrics, an API answer, a JSON log) is one more call to ``text``, ``file`` or ``tree``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote


@dataclass(frozen=True)
class Canary:
    """One planted value: what it stands for, the value, the sinks where it may appear."""

    name: str
    value: str
    allowed: frozenset[str] = field(default_factory=frozenset)

    def forms(self) -> list[str]:
        return sorted({self.value, quote(self.value, safe=""), json.dumps(self.value)[1:-1]})


@dataclass(frozen=True)
class Leak:
    canary: str
    sink: str
    context: str  # what surrounds it, the value itself replaced by <CANARY>

    def __str__(self) -> str:
        return f"{self.canary} in {self.sink}: ...{self.context}..."


class CanaryScan:
    """Collects leaks over the sinks it is shown; ``assert_clean`` fails naming each one."""

    def __init__(self, canaries: Iterable[Canary]) -> None:
        self.canaries = list(canaries)
        self.sinks: list[str] = []
        self.found: list[Leak] = []

    def text(self, sink: str, text: str) -> None:
        self.sinks.append(sink)
        for canary in self.canaries:
            for form in canary.forms():
                at = text.find(form)
                if at >= 0 and not self._allowed(canary, sink):
                    context = text[max(0, at - 60) : at + len(form) + 60].replace(form, "<CANARY>")
                    self.found.append(Leak(canary.name, sink, context.replace("\n", " ")))
                    break

    def data(self, sink: str, data: bytes) -> None:
        self.text(sink, data.decode("utf-8", errors="replace"))

    def file(self, sink: str, path: Path) -> None:
        if path.is_file():
            self.data(f"{sink} ({path.name})", path.read_bytes())

    def tree(self, sink: str, folder: Path, *, skip: Iterable[str] = ()) -> None:
        """Every regular file under ``folder``, except those whose name starts with one of
        ``skip``."""
        skipped = tuple(skip)
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink() and not path.name.startswith(skipped):
                self.data(f"{sink} ({path.relative_to(folder)})", path.read_bytes())

    def sqlite(self, sink: str, path: Path) -> None:
        """An SQLite database: its files as bytes (main, ``-wal``, ``-shm``) and every text
        cell of every table as SQLite gives it back (what a page-level scan may miss)."""
        for suffix in ("", "-wal", "-shm"):
            self.file(sink, Path(f"{path}{suffix}"))
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                cells = conn.execute(f'SELECT * FROM "{table}"').fetchall()  # noqa: S608
                self.text(f"{sink} (table {table})", json.dumps(cells, default=str))
        finally:
            conn.close()

    def _allowed(self, canary: Canary, sink: str) -> bool:
        return any(sink.startswith(name) for name in canary.allowed)

    def leaks(self) -> list[Leak]:
        return list(self.found)

    def assert_clean(self) -> None:
        assert not self.found, "secrets leaked:\n" + "\n".join(str(leak) for leak in self.found)
