"""Running glam's command line in a test: its exit code, stdout and stderr."""

from __future__ import annotations

import sys

import pytest

from engine.cli.main import main


def run_glam(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """``glam ARGS...`` in this process (it must not be inside an event loop: glam runs its
    own; from an async test, call it in a worker thread)."""
    monkeypatch.setattr(sys, "argv", ["glam", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err
